"""Shared test setup: point bnguide at the local data copies so no test needs the network."""

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("BNGUIDE_DATA") and _SHARED_DATA.is_dir():
    os.environ["BNGUIDE_DATA"] = str(_SHARED_DATA)
