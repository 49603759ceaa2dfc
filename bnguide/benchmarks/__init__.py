"""Speed benchmarks: scripts that print ratios against a baseline measured in the same run.

Run one with ``python -m bnguide.benchmarks.<name>``; nothing here is a timed test.
"""

__all__ = ["bn_speed"]
