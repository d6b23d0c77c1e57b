"""Fixtures of the real-server tests; the harness itself is harness.py (docs/serving.md §5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import ServedModel, build_tiny

from zoom_agent.geometry import FAMILIES, Family


@pytest.fixture(scope="session", params=FAMILIES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    from fake_vllm import free_port, make_videos

    family: Family = request.param
    tmp = tmp_path_factory.mktemp(f"vllm-{family}")
    model = build_tiny(tmp / "model", family)
    (tmp / "videos").mkdir()
    make_videos(tmp / "videos", 2, duration=20.0)
    server = ServedModel(family, model, tmp / "videos", tmp / "vllm.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
