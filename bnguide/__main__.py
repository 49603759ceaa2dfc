"""``python -m bnguide``: see :mod:`bnguide.cli`."""

import sys

from bnguide.cli import main

if __name__ == "__main__":
    sys.exit(main())
