"""Experiment suites (`layerkd bench`) and the results report (`layerkd report`)."""
