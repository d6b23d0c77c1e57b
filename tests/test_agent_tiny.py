"""The real model path end to end: the graph's requests through the tiny Qwen-VL models,
and the command line (tiny-model, ask --json, demo)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest

from zoom_agent import protocol
from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic import make_synthetic_task
from zoom_agent.geometry import FAMILIES, GEOMETRY
from zoom_agent.models.scripted import ScriptedVLM

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory):
    return make_synthetic_task(tmp_path_factory.mktemp("synth"), num_videos=1, seed=3, size=(320, 240))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    from zoom_agent.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {f: build_tiny_model(root / f, f) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_zoomed_turn_reaches_the_real_model_with_absolute_times(family, task, models):
    from zoom_agent.models.hf import TransformersVLM

    question = task[0]
    (gt,) = question.gt_spans[:1] or pytest.skip("question without a span")
    budget = Budget(visual_tokens=256)
    scripted = ScriptedVLM(
        [
            protocol.format_tool_call(gt.start, gt.end),
            "<answer>A</answer>\n<glue>[(1.0, 2.0)]</glue>",
        ],
        geometry=GEOMETRY[family],  # plans as the real model below will tokenise
    )
    asyncio.run(ZoomAgent(scripted, AgentConfig(budget=budget)).arun(question))
    fine_request = scripted.requests[1]  # coarse clip, tool result, zoomed clip
    zoomed = fine_request.turns[-1].clips[0]
    assert zoomed.role == "zoom" and zoomed.span.start == pytest.approx(gt.start, abs=0.05)

    vlm = TransformersVLM(models[family])
    prompt = vlm.render_text(fine_request)
    # the absolute window is stated in text for every family ...
    assert f"{zoomed.span.start:.1f}-{zoomed.span.end:.1f} s" in prompt
    if family == "qwen3_vl":  # ... and Qwen3-VL's own frame stamps (one per 2 frames) are absolute too
        expanded = vlm.tokenizer.decode(vlm.render_inputs(fine_request)["input_ids"][0].tolist())
        stamps = [float(x) for x in re.findall(r"<([\d.]+) seconds>", expanded)]
        zoom_stamps = stamps[-((zoomed.num_frames + 1) // 2) :]
        assert zoom_stamps and all(zoomed.span.start <= t <= zoomed.span.end for t in zoom_stamps), stamps
    response = asyncio.run(vlm.generate(fine_request))
    done = response.completions[0]
    assert done.token_ids and done.logprobs and len(done.token_ids) == len(done.logprobs)
    assert all(lp <= 0 for lp in done.logprobs) and response.prompt_token_ids


def test_real_model_runs_through_the_agent(task, models):
    from zoom_agent.models.hf import TransformersVLM

    config = AgentConfig(budget=Budget(visual_tokens=256), max_tokens=16)
    result = asyncio.run(ZoomAgent(TransformersVLM(models["qwen2_5_vl"]), config).arun(task[0]))
    # random weights: the answer is meaningless, but the trace is real
    assert result.status in {"answered", "unanswered"}
    assert result.turns and all(t.prompt_tokens and t.completion_tokens for t in result.turns)


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoom_agent.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_cli_tiny_model_then_ask_json(tmp_path, task):
    out = _cli("tiny-model", str(tmp_path / "tiny"))
    assert out.returncode == 0, out.stderr
    question = task[0]
    args = ["ask", question.video, question.question, "--model", str(tmp_path / "tiny"), "--json"]
    args += [x for o in question.options or () for x in ("--option", o)]
    out = _cli(*args, "--visual-tokens", "256")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] in {"answered", "unanswered"} and result["turns"]


def test_cli_reports_bad_input_in_one_line(tmp_path):
    out = _cli("ask", str(tmp_path / "missing.mp4"), "q?", "--model", str(tmp_path / "nope"))
    assert out.returncode == 2 and "nope' is not a local folder: expected a local model folder" in out.stderr
    assert "Traceback" not in out.stderr


def test_demo_runs_offline(tmp_path):
    out = _cli("demo", "--out", str(tmp_path / "demo"), "--save-frames", str(tmp_path / "frames"))
    assert out.returncode == 0, out.stderr
    assert "temporal_zoom" in out.stdout and "answers are meaningless" in out.stdout
    assert sorted(p.name.split("_")[1] for p in (tmp_path / "frames").glob("*.png")) == ["coarse", "zoom"]


def test_open_ended_question_on_the_real_model(task, models):
    # no options: the prompt asks for a free-text answer, and the random model's reply either
    # parses to some text or leaves the question "unanswered", never a crash or a letter guess
    from zoom_agent.agent import make_question
    from zoom_agent.models.hf import TransformersVLM

    question = make_question(task[0].video, "What is written on the sign?")
    vlm = TransformersVLM(models["qwen2_5_vl"])
    seen = []
    original = vlm.generate

    async def recording(request):
        seen.append(request)
        return await original(request)

    vlm.generate = recording  # type: ignore[method-assign]
    config = AgentConfig(budget=Budget(visual_tokens=256), max_tokens=16)
    result = asyncio.run(ZoomAgent(vlm, config).arun(question))
    assert "<answer>YOUR ANSWER</answer>" in seen[0].turns[-1].text and "Options:" not in seen[0].turns[-1].text
    assert result.status in {"answered", "unanswered"} and result.turns
    if result.status == "answered":
        assert isinstance(result.answer, str) and result.answer.strip() and result.answer_index is None
    else:
        assert result.answer is None and result.error == "no valid answer in any turn"


def test_cli_asks_an_open_question_on_the_tiny_model(task, models):
    video = task[0].video
    out = _cli("ask", video, "What is written on the sign?", "--model", str(models["qwen2_5_vl"]), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] in {"answered", "unanswered"} and result["answer_index"] is None
