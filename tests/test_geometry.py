"""The model owns its vision geometry: every backend exposes it, planning reads it from the
model, and an unknown family is an error that says how to name it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fake_vllm import FakeVLLM, make_videos, serve_in_thread

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import (
    FAMILIES,
    GEOMETRY,
    PAPER_GEOMETRY,
    VisionGeometry,
    detect_geometry,
    family_from_model_name,
    family_of,
)
from zoom_agent.models import load_model
from zoom_agent.models.oracle import OracleVLM
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.models.served import OpenAIVLM
from zoom_agent.types import ClipRef, VideoInfo

CONFIG = AgentConfig(budget=Budget(visual_tokens=256), max_zoom_rounds=1)


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> VideoInfo:
    return make_videos(tmp_path_factory.mktemp("videos"), 1)[0]  # 160x120, 6 s


def on_grid(clip: ClipRef, geometry: VisionGeometry) -> bool:
    """The clip's frames sit on the model's token grid and cost what was planned."""
    p = geometry.token_side
    groups = math.ceil(clip.num_frames / geometry.temporal_patch)
    cost = groups * (clip.width // p) * (clip.height // p)
    return clip.width % p == 0 and clip.height % p == 0 and clip.visual_tokens == cost


def test_the_released_geometries() -> None:
    assert [GEOMETRY[f].token_side for f in FAMILIES] == [28, 32]
    assert all(GEOMETRY[f].temporal_patch == 2 and GEOMETRY[f].merge_size == 2 for f in FAMILIES)
    assert family_of("qwen3_vl_moe") == "qwen3_vl" and PAPER_GEOMETRY.family == "qwen2_5_vl"
    assert family_from_model_name("Qwen/Qwen2.5-VL-7B-Instruct") == "qwen2_5_vl"
    assert family_from_model_name("llava-hf/llava-1.5-7b-hf") is None
    config = {"model_type": "qwen3_vl", "vision_config": {"patch_size": 16, "spatial_merge_size": 2}}
    assert VisionGeometry.from_hf_config(config) == GEOMETRY["qwen3_vl"]
    with pytest.raises(ValueError, match="expected one of qwen2_5_vl, qwen3_vl"):
        family_of("llama")
    with pytest.raises(ValueError, match="patch_size must be a positive integer"):
        VisionGeometry("qwen2_5_vl", patch_size=0)


def test_offline_models_have_a_stated_default_and_take_another() -> None:
    assert ScriptedVLM([]).geometry == PAPER_GEOMETRY and OracleVLM([]).family == "qwen2_5_vl"
    assert ScriptedVLM([], geometry=GEOMETRY["qwen3_vl"]).family == "qwen3_vl"
    assert OracleVLM([], geometry=GEOMETRY["qwen3_vl"]).geometry.token_side == 32


def test_a_served_model_names_its_family_or_says_how_to_name_it() -> None:
    url = "http://127.0.0.1:9/v1"  # nothing listens: nothing here may need the server
    assert OpenAIVLM(url, model="Qwen/Qwen3-VL-8B-Instruct").geometry == GEOMETRY["qwen3_vl"]
    assert OpenAIVLM(url, model="whatever", family="qwen3_vl").family == "qwen3_vl"
    with pytest.raises(ValueError, match="pass family='qwen2_5_vl' or 'qwen3_vl'"):
        _ = OpenAIVLM(url).geometry
    with pytest.raises(ValueError, match="name it explicitly"):
        ZoomAgent(OpenAIVLM(url, model="my-finetune"))  # refused up front, never planned with a guess
    with pytest.raises(ValueError, match="not a supported model family"):
        OpenAIVLM(url, family="llava")  # type: ignore[arg-type]


def test_a_model_without_geometry_is_refused_with_what_it_lacks() -> None:
    class Bare:
        async def generate(self, request: object) -> object:
            raise AssertionError("never called")

    with pytest.raises(TypeError, match="exposes no vision geometry"):
        ZoomAgent(Bare())  # type: ignore[arg-type]


def test_a_local_folder_states_its_geometry(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "qwen2_5_vl", "vision_config": {"patch_size": 16}}')
    assert detect_geometry(str(tmp_path)) == VisionGeometry("qwen2_5_vl", patch_size=16)


@pytest.mark.parametrize(("served", "family"), [("Qwen/Qwen3-VL-8B-Instruct", "qwen3_vl"), ("fake", None)])
def test_a_served_qwen3_vl_plans_with_32_pixel_tokens(info: VideoInfo, served: str, family: str | None) -> None:
    """The measured bug: a served Qwen3-VL was planned on Qwen2.5-VL's 28-pixel grid (3,840
    visual tokens planned, 2,800 made by vLLM). The family now comes from the server's
    model list (or ``family=`` where the name tells nothing), and every view the server
    receives is planned on 32-pixel tokens."""
    server = FakeVLLM(model=served, trust_request_mm_kwargs=True)  # as `zoom-agent serve` starts vLLM
    with serve_in_thread(server) as url:
        vlm = load_model(url, family="qwen3_vl" if family is None else None)
        assert isinstance(vlm, OpenAIVLM) and vlm.geometry == GEOMETRY["qwen3_vl"]
        result = ZoomAgent(vlm, CONFIG).ask(info.path, "Which shape?", ["circle", "square"])
    clips = [c for t in result.turns for c in t.clips]
    assert result.status == "answered" and {c.role for c in clips} == {"coarse", "zoom"}
    assert all(on_grid(c, GEOMETRY["qwen3_vl"]) for c in clips)
    assert not all(on_grid(c, GEOMETRY["qwen2_5_vl"]) for c in clips)  # the two grids differ here
    sent = [(h, w) for m in server.media for _, _, (w, h) in m.videos]
    assert sent and all(h % 32 == 0 and w % 32 == 0 for h, w in sent)


def test_the_served_name_decides_the_family_without_being_told(info: VideoInfo) -> None:
    with serve_in_thread(FakeVLLM(model="Qwen/Qwen2.5-VL-7B-Instruct")) as url:
        assert load_model(url).family == "qwen2_5_vl"  # type: ignore[attr-defined]
    with serve_in_thread(FakeVLLM(model="my-finetune")) as url, pytest.raises(ValueError, match="pass family="):
        ZoomAgent(load_model(url))
