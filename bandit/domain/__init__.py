"""The vocabulary every stage shares: errors, the request context a channel sends, and
outcomes with what they are worth (the reward rule). Imports nothing else of ``bandit``."""
