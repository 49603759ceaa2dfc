"""Speed benchmarks: scripts that print ratios against a baseline measured in the same run.

Run one with ``python -m bnguide.benchmarks.<name>``; nothing here is a timed test.

- :mod:`~bnguide.benchmarks.bn_speed`: bnguide's batch norm against PyTorch's native kernel.
- :mod:`~bnguide.benchmarks.training_speed`: the full Ioffe & Szegedy reproduction against a
  plain per-step PyTorch loop.
- :mod:`~bnguide.benchmarks.fold_speed`: inference with BN folded into the previous layer.
- :mod:`~bnguide.benchmarks.landscape_speed`: vectorized loss-landscape measurements against a
  one-step-size-at-a-time loop.

Examples
--------
Run a benchmark from a shell; each one prints its ratios at the end:

>>> import subprocess, sys
>>> cmd = [sys.executable, "-m", "bnguide.benchmarks.bn_speed", "--quick"]
>>> subprocess.run(cmd, check=True)  # doctest: +SKIP
"""

__all__ = ["bn_speed", "fold_speed", "landscape_speed", "training_speed"]
