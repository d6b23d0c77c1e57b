"""Shared test settings: the hypothesis profile, and where the real data files are.

Hypothesis runs derandomized (profile ``ci``, the default): every run draws the same
examples, so a result cannot depend on the draw. ``HYPOTHESIS_PROFILE=explore`` draws fresh
random examples locally; pin what it finds with ``@example`` before committing.

The real annotation files and H.264 clips live in ``../shared/data`` beside the checkout
(see that folder's README), or wherever ``ZOOM_AGENT_SHARED_DATA`` points. Tests that need
them skip, with the reason, when absent.

Tests are offline: no test may reach a model hub (the machines have no network beyond the
package registries), so ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set for every
test and the subprocesses it starts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# deadline None: a loaded CI machine must not turn a slow example into a failure.
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, database=None, print_blob=True)
settings.register_profile("explore", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ZOOM_AGENT_SHARED_DATA") or ROOT.parent / "shared" / "data")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def shared_data(relative: str) -> Path:
    """The path of a shared data file, or skip the calling test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (set ZOOM_AGENT_SHARED_DATA to the shared data folder)")
    return path
