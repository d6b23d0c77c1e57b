"""Shared test settings: where the real annotation files and H.264 clips are.

They live in ``../shared/data`` beside the checkout (see that folder's README), or wherever
``ZOOM_AGENT_SHARED_DATA`` points. Tests that need them skip, with the reason, when absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ZOOM_AGENT_SHARED_DATA") or ROOT.parent / "shared" / "data")


def shared_data(relative: str) -> Path:
    """The path of a shared data file, or skip the calling test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (set ZOOM_AGENT_SHARED_DATA to the shared data folder)")
    return path
