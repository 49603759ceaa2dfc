"""Plotting helpers: each takes an experiment's Result and an optional ``ax``, returns the Axes.

Examples
--------
>>> from bnguide import style
>>> from bnguide.cache import cached_run
>>> from bnguide.experiments import regularization
>>> from bnguide.plots.practice import plot_regularization
>>> style.use()
>>> result = cached_run(regularization.run, regularization.Config())  # doctest: +SKIP
>>> ax = plot_regularization(result, "test_accuracy")  # doctest: +SKIP
"""
