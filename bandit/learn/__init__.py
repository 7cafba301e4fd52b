"""Learning from the log: training, off-policy evaluation, segments and tuning."""
