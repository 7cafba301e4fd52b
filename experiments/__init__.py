"""offer-bandit."""
