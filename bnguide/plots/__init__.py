"""Plotting helpers: each takes an experiment's Result (and an optional ``ax``) and returns the Axes."""
