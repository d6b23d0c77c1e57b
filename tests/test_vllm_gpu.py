"""The served path on a real vLLM server with a tiny random Qwen-VL (GPU only; CI skips).

Starts vLLM through `zoom_agent.serve` (the exact flags users get), then checks that the
agent's conversations are accepted (frame lists, media kwargs, tool turns) and that the
server's prompt holds exactly the visual tokens `plan_clip` budgeted, i.e. every frame
arrived and the pixel bounds kept the planned sizes. Answers are meaningless (random
weights); no request may fail.

vLLM lives in its own environment (it pins torch/transformers): point
``ZOOM_AGENT_VLLM_PYTHON`` at that interpreter, or run where ``import vllm`` works.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fake_vllm import free_port, make_videos

from zoom_agent import protocol
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import GEOMETRY, Family
from zoom_agent.models.base import ModelError, Sampling, Turn, VLMRequest
from zoom_agent.types import Question, Span, VideoInfo

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def _vllm_python() -> str | None:
    if os.environ.get("ZOOM_AGENT_VLLM_PYTHON"):
        return os.environ["ZOOM_AGENT_VLLM_PYTHON"]
    return sys.executable if importlib.util.find_spec("vllm") is not None else None


def _has_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    return smi is not None and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


if _vllm_python() is None or not _has_gpu():
    pytest.skip("needs a CUDA GPU and vLLM (or ZOOM_AGENT_VLLM_PYTHON)", allow_module_level=True)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.serve import VLLMServer, build_vllm_command

    family: Family = request.param
    tmp = tmp_path_factory.mktemp(family)
    model = build_tiny_model(tmp / "model", family)
    (tmp / "videos").mkdir()
    infos = make_videos(tmp / "videos", 2, duration=8.0)
    port = free_port()
    cmd = build_vllm_command(
        str(model),
        video_root=tmp / "videos",
        port=port,
        max_model_len=8192,
        family=family,
        budget=Budget(visual_tokens=2048),
        python=_vllm_python() or sys.executable,
        extra=["--enforce-eager", "--gpu-memory-utilization", "0.3", "--max-num-seqs", "16"],
    )
    with (tmp / "vllm.log").open("w") as log:
        server = VLLMServer(cmd, port=port, output=log)
        server.start()
        try:
            server.wait_healthy(timeout=900)
        except Exception:
            server.stop()
            raise RuntimeError((tmp / "vllm.log").read_text()[-4000:]) from None
        try:
            yield family, model, infos, server.url
        finally:
            server.stop()


def test_the_agent_runs_every_question_without_a_failed_request(served):
    from zoom_agent.agent import ZoomAgent
    from zoom_agent.models.served import OpenAIVLM

    family, _, infos, url = served
    config = AgentConfig(budget=Budget(visual_tokens=1024), max_tokens=48)
    vlm = OpenAIVLM(url, family=family, timeout=120)
    questions = [
        Question(id=f"g{i}", video=info.path, question="What colour is the square?", options=("a", "b", "c"))
        for i, info in enumerate(infos * 3)
    ]
    results = asyncio.run(ZoomAgent(vlm, config).abatch(questions, concurrency=4))
    assert [r.status for r in results if r.status == "error"] == [], [r.error for r in results]
    assert vlm.stats.failures == 0 and vlm.stats.retries == 0


def test_every_planned_visual_token_reaches_the_model(served):
    from transformers import AutoTokenizer

    from zoom_agent.models.served import OpenAIVLM
    from zoom_agent.planning import plan_clip

    family, model, infos, url = served
    info: VideoInfo = infos[0]
    budget = Budget(visual_tokens=1024)
    coarse = plan_clip(info, info.whole, budget, GEOMETRY[family], role="coarse")
    zoom = plan_clip(info, Span(start=2.0, end=4.0), budget, GEOMETRY[family], role="zoom")
    request = VLMRequest(
        turns=(
            Turn(role="system", content=("Answer about the video.",)),
            Turn(role="user", content=(protocol.clip_caption(coarse), coarse, "Which colour?")),
            Turn(role="assistant", content=(protocol.format_tool_call(2.0, 4.0),)),
            Turn(role="tool", name="temporal_zoom", content=("Zoomed in on 2.0-4.0 s; the frames follow.",)),
            Turn(role="user", content=(protocol.clip_caption(zoom), zoom, "Answer now.")),
        ),
        sampling=Sampling(max_tokens=16, temperature=1.0, n=2, seed=0),
    )
    response = asyncio.run(OpenAIVLM(url, family=family).generate(request))
    assert len(response.completions) == 2
    for c in response.completions:
        assert c.token_ids and c.logprobs and c.token_offsets
        assert len(c.token_ids) == len(c.logprobs) == len(c.token_offsets)
    tokenizer = AutoTokenizer.from_pretrained(model)
    pad = tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert response.prompt_token_ids is not None
    assert response.prompt_token_ids.count(pad) == coarse.visual_tokens + zoom.visual_tokens
    if family == "qwen3_vl":  # clip-local time stamps from the request's one frame rate
        assert "seconds>" in tokenizer.decode(list(response.prompt_token_ids))


def test_images_are_refused_under_serves_default_limits(served):
    from zoom_agent.models.served import OpenAIVLM
    from zoom_agent.planning import plan_clip

    family, _, infos, url = served
    clip = plan_clip(infos[0], Span(start=1.0, end=3.0), Budget(visual_tokens=512), GEOMETRY[family])
    request = VLMRequest(turns=(Turn(role="user", content=("Look:", clip, "What is it?")),))
    vlm = OpenAIVLM(url, video_mode="images")
    with pytest.raises(ModelError, match=r"rejected the request.*image"):  # serve's default: 0 images
        asyncio.run(vlm.generate(request))
    assert vlm.stats.retries == 0
