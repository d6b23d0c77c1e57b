"""Fixtures of the real-server tests; the harness itself is harness.py (docs/serving.md §5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import VLLM_ENV, ServedModel, build_tiny

from zoom_agent.geometry import FAMILIES, Family


@pytest.fixture(scope="session", params=FAMILIES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    from fake_vllm import free_port, make_videos

    family: Family = request.param
    tmp = tmp_path_factory.mktemp(f"vllm-{family}")
    # Rebuilt every session, at a stable path: vLLM's compile cache is keyed by it (a cold
    # start compiles for about 1.5 min on 2 cores; later sessions reuse the compiled model).
    model = build_tiny(VLLM_ENV.parent / "tiny-models" / family, family)
    (tmp / "videos").mkdir()
    make_videos(tmp / "videos", 2, duration=20.0)
    server = ServedModel(family, model, tmp / "videos", tmp / "vllm.log", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
