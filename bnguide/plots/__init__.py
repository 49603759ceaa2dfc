"""Plotting helpers: each takes an experiment's Result and an optional ``ax``, returns the Axes."""
