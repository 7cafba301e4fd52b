"""The demo: the whole loop on simulated days over HTTP (`make demo`), and the breakdown of a run."""
