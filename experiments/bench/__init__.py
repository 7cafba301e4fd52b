"""Benchmarks: the service, the log, training and retraining, each against a reference run side by side; fuzzing and a soak."""
