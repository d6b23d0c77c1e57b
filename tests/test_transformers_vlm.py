"""TransformersVLM on the tiny Qwen2.5-VL and Qwen3-VL: rendering, timing, sampling, logprobs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from zoom_agent.geometry import FAMILIES, GEOMETRY, VisionGeometry
from zoom_agent.models.base import ModelError, Sampling, Turn, VLMRequest
from zoom_agent.models.hf import TransformersVLM, _trim
from zoom_agent.models.hf_render import chat_messages, clip_metadata, processor_size_bounds
from zoom_agent.models.tiny import build_tiny_model
from zoom_agent.types import ClipRef, Span

FPS, NUM_FRAMES, SRC_W, SRC_H = 10.0, 20, 64, 48
COARSE = (0, 5, 10, 15)
ZOOM = (10, 12, 14, 16)  # 1.0-1.6 s: spacing 0.2 s


@pytest.fixture(scope="module")
def video_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 64x48 mp4v clip, 20 frames at 10 fps; frame i is a distinct colour ramp."""
    import cv2

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (SRC_W, SRC_H))
    ramp = np.linspace(0, 255, SRC_W, dtype=np.uint8)[None, :, None]
    for i in range(NUM_FRAMES):
        frame = np.broadcast_to(ramp, (SRC_H, SRC_W, 3)).copy()
        frame[..., 1] = (i * 12) % 256
        writer.write(frame)
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def vlms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TransformersVLM]:
    root = tmp_path_factory.mktemp("models")
    return {f: TransformersVLM(build_tiny_model(root / f, f), max_batch=2) for f in FAMILIES}


def clip(path: str, indices: tuple[int, ...], family: str, scale: tuple[int, int], role: str) -> ClipRef:
    f = GEOMETRY[family].token_side  # type: ignore[index]
    ts = tuple(i / FPS for i in indices)
    return ClipRef(
        path=path,
        span=Span(start=ts[0], end=ts[-1]),
        frame_indices=indices,
        timestamps=ts,
        fps=FPS,
        num_source_frames=NUM_FRAMES,
        width=scale[0] * f,
        height=scale[1] * f,
        visual_tokens=len(indices) // 2 * scale[0] * scale[1],
        role=role,  # type: ignore[arg-type]
    )


def request(path: str, family: str, **sampling: Any) -> VLMRequest:
    coarse = clip(path, COARSE, family, (2, 1), "coarse")
    zoom = clip(path, ZOOM, family, (3, 2), "zoom")
    call = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 1.0, "end": 1.6}}</tool_call>'
    turns = (
        Turn(role="system", content=("You answer questions about videos.",)),
        Turn(role="user", content=(coarse, "Question: What changes?\nOptions:\nA. colour\nB. nothing")),
        Turn(role="assistant", content=(call,)),
        Turn(role="tool", content=("4 frames between 1.0 s and 1.6 s.",), name="temporal_zoom"),
        Turn(role="user", content=("Zoomed clip 1.0-1.6 s:", zoom)),
    )
    params = {"temperature": 1.0, "max_tokens": 12, "n": 1, "seed": 0} | sampling
    return VLMRequest(turns=turns, sampling=Sampling(**params))


def recompute_logprobs(vlm: TransformersVLM, req: VLMRequest, token_ids: tuple[int, ...]) -> torch.Tensor:
    """Policy log-probs of a completion from one forward pass over prompt + completion."""
    inputs = vlm.render_inputs(req)
    prompt = inputs["input_ids"]
    completion = torch.tensor([token_ids], device=prompt.device)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    with torch.no_grad():
        logits = vlm.model(
            input_ids=torch.cat([prompt, completion], dim=1),
            attention_mask=torch.ones(1, prompt.shape[1] + len(token_ids), dtype=torch.long),
            mm_token_type_ids=torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(completion)], dim=1),
            **extra,
        ).logits[0]
    steps = logits[prompt.shape[1] - 1 : -1].float().log_softmax(-1)
    return steps.gather(-1, completion[0][:, None]).squeeze(-1)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
async def test_generate_returns_aligned_ids_and_policy_logprobs(
    vlms: dict[str, TransformersVLM], video_path: str, family: str
) -> None:
    vlm = vlms[family]
    req = request(video_path, family, temperature=0.7, top_p=0.9, n=3, seed=3)
    reply = await vlm.generate(req)

    assert len(reply.completions) == 3 and reply.latency_s > 0
    assert list(reply.prompt_token_ids or ()) == vlm.render_inputs(req)["input_ids"][0].tolist()
    for c in reply.completions:
        assert c.token_ids and c.logprobs and len(c.token_ids) == len(c.logprobs)
        assert all(lp <= 0.0 for lp in c.logprobs)
        assert c.finish_reason in ("stop", "length")
        assert c.finish_reason == "stop" or len(c.token_ids) == req.sampling.max_tokens
        assert c.token_offsets is not None and len(c.token_offsets) == len(c.token_ids)
        assert "".join(c.text[a:b] for a, b in c.token_offsets) == c.text
        # Raw logits at temperature 1, not the tempered/top-p distribution that sampled them.
        again = recompute_logprobs(vlm, req, c.token_ids)
        assert torch.allclose(again, torch.tensor(c.logprobs), atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_clips_keep_their_planned_size_and_types(
    vlms: dict[str, TransformersVLM], video_path: str, family: str
) -> None:
    vlm = vlms[family]
    inputs = vlm.render_inputs(request(video_path, family))
    # (temporal patches, patches high, patches wide) for the coarse 2x1 and zoomed 3x2 clip
    assert inputs["video_grid_thw"].tolist() == [[2, 2, 4], [2, 4, 6]]
    video_id = vlm.model.config.video_token_id
    types_ = inputs["mm_token_type_ids"][0]
    assert int((types_ == 2).sum()) == int((inputs["input_ids"][0] == video_id).sum()) == 4 + 12  # grid / merge^2 each
    assert int((types_ == 1).sum()) == 0


@pytest.mark.slow
async def test_qwen3_prompt_states_absolute_times(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen3_vl"]
    reply = await vlm.generate(request(video_path, "qwen3_vl", max_tokens=2))
    prompt = str(vlm.tokenizer.decode(list(reply.prompt_token_ids or ())))
    times = re.findall(r"<(\d+\.\d) seconds>", prompt)
    # Qwen3-VL stamps each temporal patch with the mean time of its two frames.
    assert times == ["0.2", "1.2", "1.1", "1.5"]  # coarse (0, .5 | 1, 1.5), zoom (1, 1.2 | 1.4, 1.6)
    assert prompt.index("Zoomed clip") < prompt.index("<1.1 seconds>")


@pytest.mark.slow
def test_qwen25_grid_seconds_follow_the_real_frame_spacing(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen2_5_vl"]
    req = request(video_path, "qwen2_5_vl")
    inputs = vlm.render_inputs(req)
    temporal = vlm.processor.video_processor.temporal_patch_size
    _, clips = chat_messages(req.turns)
    expected = [temporal * c.frame_spacing for c in clips]
    assert expected == pytest.approx([1.0, 0.4])
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx(expected)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
async def test_seeded_sampling_is_reproducible(vlms: dict[str, TransformersVLM], video_path: str, family: str) -> None:
    vlm = vlms[family]
    before = torch.random.get_rng_state()
    first = await vlm.generate(request(video_path, family, n=2, seed=7, max_tokens=16))
    second = await vlm.generate(request(video_path, family, n=2, seed=7, max_tokens=16))
    other = await vlm.generate(request(video_path, family, n=2, seed=8, max_tokens=16))
    assert first.completions == second.completions
    assert [c.token_ids for c in other.completions] != [c.token_ids for c in first.completions]
    assert first.completions[0].token_ids != first.completions[1].token_ids
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is left alone


@pytest.mark.slow
async def test_greedy_n_and_chunking(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen2_5_vl"]  # max_batch=2: n=3 runs as chunks of 2 and 1
    greedy = await vlm.generate(request(video_path, "qwen2_5_vl", temperature=0.0, n=3, seed=None))
    assert len({c.token_ids for c in greedy.completions}) == 1 and len(greedy.completions) == 3
    sampled = await vlm.generate(request(video_path, "qwen2_5_vl", n=3, seed=1))
    assert len(sampled.completions) == 3


@pytest.mark.slow
async def test_stop_strings_trim_text_and_tokens(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen3_vl"]
    full = (await vlm.generate(request(video_path, "qwen3_vl", temperature=0.0, max_tokens=24))).text
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip(), "need a visible stop string from the greedy text"
    req = request(video_path, "qwen3_vl", temperature=0.0, max_tokens=24, stop=(stop,))
    cut = (await vlm.generate(req)).completions[0]
    assert cut.token_ids is not None
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop" and stop in vlm._decode(cut.token_ids)
    assert stop not in vlm._decode(cut.token_ids[:-1])
    assert len(cut.token_ids) == len(cut.logprobs or ())


@pytest.mark.slow
async def test_concurrent_requests_share_one_model(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen3_vl"]
    replies = await asyncio.gather(
        *(vlm.generate(request(video_path, "qwen3_vl", seed=s, max_tokens=6)) for s in range(4))
    )
    assert all(len(r.completions[0].token_ids or ()) > 0 for r in replies)


@pytest.mark.slow
def test_assistant_prefix_is_continued(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen2_5_vl"]
    base = request(video_path, "qwen2_5_vl")
    prefixed = base.model_copy(update={"turns": (*base.turns, Turn(role="assistant", content=("<think>",)))})
    assert vlm.render_text(prefixed) == vlm.render_text(base) + "<think>"
    assert vlm.render_text(base).endswith("<|im_start|>assistant\n")


@pytest.mark.slow
async def test_bad_clip_and_bad_turns_are_named(vlms: dict[str, TransformersVLM], video_path: str) -> None:
    vlm = vlms["qwen3_vl"]
    coarse = clip(video_path, COARSE, "qwen3_vl", (2, 1), "coarse")
    bad = VLMRequest(turns=(Turn(role="system", content=(coarse,)), Turn(role="user", content=("Q",))))
    with pytest.raises(ModelError, match="system turns take text only"):
        await vlm.generate(bad)
    missing = coarse.model_copy(update={"path": str(Path(video_path).with_name("missing.mp4"))})
    with pytest.raises(ModelError, match=r"missing\.mp4"):
        await vlm.generate(VLMRequest(turns=(Turn(role="user", content=(missing, "Q")),)))


def test_trim_keeps_eos_then_stop_strings_then_length() -> None:
    def decode(ids: Sequence[int]) -> str:
        return "".join(chr(ord("a") + i) for i in ids)

    eos = (9,)
    assert _trim([1, 2, 9, 0, 0], eos, (), decode).__dict__ == {
        "n_tokens": 3,
        "finish_reason": "stop",
        "text": None,
    }
    assert _trim([1, 2, 3], eos, (), decode).finish_reason == "length"
    cut = _trim([0, 1, 2, 3, 9], eos, ("cd",), decode)  # "abcd": stop at "cd" ends the text at "ab"
    assert (cut.n_tokens, cut.text, cut.finish_reason) == (4, "ab", "stop")
    assert _trim([0, 1, 9, 2, 3], eos, ("cd",), decode).n_tokens == 3  # EOS came first


def test_metadata_and_size_bounds_per_family() -> None:
    ref = clip("x.mp4", ZOOM, "qwen3_vl", (3, 2), "zoom")
    q3 = clip_metadata(ref, "qwen3_vl", 4, ZOOM)
    assert (q3.total_num_frames, q3.fps, q3.frames_indices) == (NUM_FRAMES, FPS, list(ZOOM))
    q25 = clip_metadata(ref, "qwen2_5_vl", 4, ZOOM)
    assert q25.sampled_fps == pytest.approx(1 / 0.2)  # the real spacing, not 4 / 20 * 10
    videos = [np.zeros((4, 64, 96, 3), np.uint8), np.zeros((3, 32, 64, 3), np.uint8)]
    side32 = {f: VisionGeometry(f, patch_size=16) for f in FAMILIES}  # 32-px tokens for both families
    assert processor_size_bounds(videos, side32["qwen2_5_vl"]) == {"shortest_edge": 2048, "longest_edge": 6144}
    assert processor_size_bounds(videos, side32["qwen3_vl"]) == {"shortest_edge": 8192, "longest_edge": 24576}
    single = ref.model_copy(update={"frame_indices": (12,), "timestamps": (1.2,)})
    assert single.frame_spacing == pytest.approx(1 / FPS)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_planned_clips_cost_what_plan_clip_says(vlms: dict[str, TransformersVLM], video_path: str, family: str) -> None:
    video = pytest.importorskip("zoom_agent.video")
    from zoom_agent.config import Budget
    from zoom_agent.planning import plan_clip

    info = video.open_video(video_path).info
    geometry = vlms[family].geometry  # read from the model's config
    assert geometry == GEOMETRY[family] and vlms[family].family == family  # type: ignore[index]
    budget = Budget(visual_tokens=64, min_frame_tokens=1)
    coarse = plan_clip(info, info.whole, budget, geometry)
    zoom = plan_clip(info, Span(start=1.0, end=1.6), budget, geometry, role="zoom")
    turns = (Turn(role="user", content=(coarse, "Zoomed:", zoom, "Q?")),)
    inputs = vlms[family].render_inputs(VLMRequest(turns=turns))
    per_clip = (inputs["video_grid_thw"].prod(-1) // 4).tolist()
    assert per_clip == [coarse.visual_tokens, zoom.visual_tokens]


@pytest.mark.slow
async def test_text_only_request_without_logprobs(vlms: dict[str, TransformersVLM]) -> None:
    vlm = vlms["qwen2_5_vl"]
    req = VLMRequest(
        turns=(Turn(role="user", content=("Say <answer>A</answer>.",)),),
        sampling=Sampling(temperature=0.0, max_tokens=5),
        want_logprobs=False,
    )
    inputs = vlm.render_inputs(req)
    assert "pixel_values_videos" not in inputs and int(inputs["mm_token_type_ids"].sum()) == 0
    reply = await vlm.generate(req)
    assert reply.completions[0].logprobs is None and reply.completions[0].token_ids
