"""The vLLM rollout engine refuses, at start-up, a vLLM without the sync it needs.

The engine itself runs against the real vLLM in tests/vllm_cpu/test_rollout_engine.py; this
checks only the start-up guard, on objects shaped like vLLM's (an ``LLM`` whose
``collective_rpc`` runs a callable on each worker), so it runs without vLLM.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from zoom_agent.training.rollout.vllm_engine import _check_sync_support


class _Runner:
    def reload_weights(self, weights_iterator: Any = None, weights_path: str | None = None) -> None: ...


class _OldRunner:
    def reload_weights(self) -> None: ...  # reloads from disk only


def _llm(runner: Any, *, encoder_reset: bool = True) -> Any:
    engine = SimpleNamespace(reset_encoder_cache=lambda: None) if encoder_reset else SimpleNamespace()
    worker = SimpleNamespace(model_runner=runner)
    return SimpleNamespace(llm_engine=engine, collective_rpc=lambda fn: [fn(worker)])


def test_a_vllm_with_in_place_reload_and_encoder_reset_passes() -> None:
    _check_sync_support(_llm(_Runner()))


@pytest.mark.parametrize(("runner", "encoder_reset"), [(_OldRunner(), True), (_Runner(), False)])
def test_a_vllm_without_them_is_refused_with_what_is_missing(runner: Any, encoder_reset: bool) -> None:
    with pytest.raises(RuntimeError, match=r"reset_encoder_cache or an in-place reload_weights\(weights_iterator"):
        _check_sync_support(_llm(runner, encoder_reset=encoder_reset))
