"""Studies: learners compared on the simulator."""
