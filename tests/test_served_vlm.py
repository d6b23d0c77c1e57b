"""OpenAIVLM against a real local HTTP server (tests/fake_vllm.py): request shapes, frame
timing, token ids / logprobs / offsets, sampling, model names, keys, balancing, limits."""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
from typing import Any

import cv2
import numpy as np
import pytest
from fake_vllm import FakeVLLM, make_videos, serve_in_thread, tokenize

from zoom_agent import protocol
from zoom_agent.config import Budget
from zoom_agent.geometry import PAPER_GEOMETRY
from zoom_agent.models import load_model
from zoom_agent.models import served as served_mod
from zoom_agent.models.base import ModelError, Sampling, Turn, VLMRequest
from zoom_agent.models.chat_format import EncodedClip
from zoom_agent.models.served import OpenAIVLM, normalize_endpoint
from zoom_agent.planning import plan_clip
from zoom_agent.types import ClipRef, Span, VideoInfo

FAST: dict[str, Any] = {"backoff": (0.01, 0.05), "timeout": 5.0}


@pytest.fixture(scope="module")
def info(tmp_path_factory: pytest.TempPathFactory) -> VideoInfo:
    return make_videos(tmp_path_factory.mktemp("videos"), 1)[0]


def clips(info: VideoInfo) -> tuple[ClipRef, ClipRef]:
    budget = Budget(visual_tokens=256)
    coarse = plan_clip(info, info.whole, budget, PAPER_GEOMETRY, role="coarse")
    zoom = plan_clip(info, Span(start=1.0, end=3.0), budget, PAPER_GEOMETRY, role="zoom")
    return coarse, zoom


def conversation(info: VideoInfo) -> VLMRequest:
    """The zoom graph's shape: system, user(coarse), assistant, tool (text), user(zoom)."""
    coarse, zoom = clips(info)
    return VLMRequest(
        turns=(
            Turn(role="system", content=("You answer questions about videos.",)),
            Turn(role="user", content=(protocol.clip_caption(coarse), coarse, "Which colour?")),
            Turn(role="assistant", content=(protocol.format_tool_call(1.0, 3.0),)),
            Turn(role="tool", name="temporal_zoom", content=("Zoomed in on 1.0-3.0 s; the frames follow.",)),
            Turn(role="user", content=(protocol.clip_caption(zoom), zoom, "Answer now.")),
        )
    )


def frames_of(url: str) -> list[Any]:
    head, _, data = url.partition(",")
    assert head in ("data:video/jpeg;base64", "data:image/jpeg;base64")
    return [cv2.imdecode(np.frombuffer(base64.b64decode(f), np.uint8), cv2.IMREAD_COLOR) for f in data.split(",")]


async def test_frames_mode_sends_one_jpeg_frame_list_per_clip_with_one_request_rate(info: VideoInfo):
    request = conversation(info)
    coarse, zoom = clips(info)
    async with FakeVLLM() as server:
        await OpenAIVLM(server.url, **FAST).generate(request)
    body = server.requests[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert all(isinstance(body["messages"][i]["content"], str) for i in (0, 2, 3))  # text-only roles
    first, last = body["messages"][1]["content"], body["messages"][4]["content"]
    assert [p["type"] for p in last] == ["text", "video_url", "text"]
    for ref, part in ((coarse, first[-2]), (zoom, last[1])):
        frames = frames_of(part["video_url"]["url"])
        assert len(frames) == ref.num_frames and {f.shape for f in frames} == {(ref.height, ref.width, 3)}
    # one rate per request: the newest clip's; the coarse clip (other spacing) says its own
    assert body["media_io_kwargs"] == {"video": {"num_frames": -1, "fps": pytest.approx(1 / zoom.frame_spacing)}}
    assert abs(coarse.frame_spacing - zoom.frame_spacing) > 0.05
    assert [p["type"] for p in first] == ["text", "text", "video_url", "text"]
    assert f"{coarse.frame_spacing:.2f} s apart" in first[1]["text"]
    assert "mm_processor_kwargs" not in body
    kept = [(c.num_frames, c.num_frames, (c.height, c.width)) for c in (coarse, zoom)]
    assert server.media[0].videos == kept  # vLLM keeps every frame sent (num_frames -1)


async def test_clips_at_one_rate_get_no_timing_note(info: VideoInfo):
    coarse, _ = clips(info)
    request = VLMRequest(turns=(Turn(role="user", content=("A", coarse, "B", coarse)),))
    async with FakeVLLM() as server:
        await OpenAIVLM(server.url, **FAST).generate(request)
    parts = server.requests[0]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "video_url", "text", "video_url"]


async def test_images_mode_sends_timed_image_parts(info: VideoInfo):
    _, zoom = clips(info)
    request = VLMRequest(turns=(Turn(role="user", content=("Look:", zoom)),))
    async with FakeVLLM() as server:
        await OpenAIVLM(server.url, video_mode="images", **FAST).generate(request)
    body = server.requests[0]
    parts = body["messages"][0]["content"][1:]
    assert [p["type"] for p in parts] == ["text", "image_url"] * zoom.num_frames
    assert [p["text"] for p in parts[::2]] == [f"<{t:.1f} seconds>" for t in zoom.timestamps]
    assert {frames_of(p["image_url"]["url"])[0].shape for p in parts[1::2]} == {(zoom.height, zoom.width, 3)}
    assert "media_io_kwargs" not in body


async def test_token_ids_logprobs_and_offsets_are_filled(info: VideoInfo):
    async with FakeVLLM() as server:
        response = await OpenAIVLM(server.url, **FAST).generate(conversation(info))
    (c,) = response.completions
    assert "grün" in c.text and c.finish_reason == "stop" and response.model == "fake-qwen-vl"
    assert c.token_ids is not None and c.logprobs is not None and c.token_offsets is not None
    assert len(c.token_ids) == len(c.logprobs) == len(c.token_offsets) == len(tokenize(c.text)) + 1
    assert c.token_offsets[0][0] == 0 and c.token_offsets[-1] == (len(c.text), len(c.text))  # EOS
    assert all(a[1] == b[0] for a, b in itertools.pairwise(c.token_offsets))
    assert all(lp < 0 for lp in c.logprobs)
    assert response.prompt_token_ids and len(response.prompt_token_ids) > 50  # text + visual tokens
    body = server.requests[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 0 and body["return_token_ids"] is True


async def test_answer_confidence_reads_the_letter_token(info: VideoInfo):
    from zoom_agent.graphs.arbitration import answer_confidence

    async with FakeVLLM() as server:
        (c,) = (await OpenAIVLM(server.url, **FAST).generate(conversation(info))).completions
    parsed = protocol.parse(c.text, "tool", letters="ABCD")
    assert parsed.answer == "B" and c.logprobs and c.token_offsets
    at = c.text.index("<answer>B") + len("<answer>")
    (i,) = [k for k, (a, b) in enumerate(c.token_offsets) if a <= at < b]
    assert answer_confidence(c, parsed) == pytest.approx(math.exp(c.logprobs[i]))


async def test_sampling_settings_are_sent_and_greedy_n_is_asked_once(info: VideoInfo):
    turns = (Turn(role="user", content=("Say something.",)),)
    sampled = VLMRequest(
        turns=turns,
        sampling=Sampling(temperature=0.7, top_p=0.9, max_tokens=33, n=3, seed=5, stop=("</answer>",)),
    )
    greedy = VLMRequest(turns=turns, sampling=Sampling(n=4), want_logprobs=False)
    async with FakeVLLM() as server:
        vlm = OpenAIVLM(server.url, **FAST)
        assert len((await vlm.generate(sampled)).completions) == 3
        out = await vlm.generate(greedy)
    body = server.requests[0]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["n"], body["seed"]) == (
        0.7,
        0.9,
        33,
        3,
        5,
    )
    assert body["stop"] == ["</answer>"]
    assert server.requests[1]["n"] == 1 and "logprobs" not in server.requests[1]
    assert len(out.completions) == 4 and len({c.text for c in out.completions}) == 1
    assert out.completions[0].logprobs is None and out.completions[0].token_ids is None


async def test_a_final_assistant_turn_is_continued():
    turns = (Turn(role="user", content=("Q?",)), Turn(role="assistant", content=("<think>",)))
    async with FakeVLLM() as server:
        await OpenAIVLM(server.url, **FAST).generate(VLMRequest(turns=turns))
    body = server.requests[0]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


async def test_model_name_comes_from_the_server_and_a_wrong_one_is_not_retried():
    request = VLMRequest(turns=(Turn(role="user", content=("Hi",)),))
    async with FakeVLLM(model="served-name") as server:
        assert (await OpenAIVLM(server.url, **FAST).generate(request)).model == "served-name"
        wrong = OpenAIVLM(server.url, model="other", **FAST)
        with pytest.raises(ModelError, match=r"rejected the request: NotFoundError.*other") as err:
            await wrong.generate(request)
    assert server.url in str(err.value) and wrong.stats.attempts == 1 and wrong.stats.retries == 0


async def test_a_request_vllm_would_reject_fails_at_once(info: VideoInfo):
    async with FakeVLLM(limit_mm_per_prompt={"video": 1, "image": 0}) as server:
        vlm = OpenAIVLM(server.url, **FAST)
        with pytest.raises(ModelError, match="At most 1 video"):
            await vlm.generate(conversation(info))
    assert server.arrivals == 1 and vlm.stats.failures == 1


async def test_tool_turns_never_carry_clips(info: VideoInfo):
    coarse, _ = clips(info)
    request = VLMRequest(turns=(Turn(role="user", content=("Q",)), Turn(role="tool", content=("r", coarse))))
    with pytest.raises(ModelError, match=r"turn 1 \(tool\) carries a clip"):
        await OpenAIVLM("http://127.0.0.1:9/v1", **FAST).generate(request)


async def test_an_unreadable_clip_is_a_model_error(info: VideoInfo, tmp_path):
    coarse, _ = clips(info)
    gone = coarse.model_copy(update={"path": str(tmp_path / "missing.mp4")})
    request = VLMRequest(turns=(Turn(role="user", content=(gone,)),))
    with pytest.raises(ModelError, match=r"could not prepare.*missing\.mp4"):
        await OpenAIVLM("http://127.0.0.1:9/v1", **FAST).generate(request)


async def test_the_api_key_comes_from_the_environment_and_never_shows(monkeypatch):
    secret = "sk-test-0123456789-do-not-leak"
    request = VLMRequest(turns=(Turn(role="user", content=("Hi",)),))
    async with FakeVLLM(api_key=secret) as server:
        monkeypatch.setenv("ZA_TEST_KEY", secret)
        vlm = OpenAIVLM(server.url, api_key_env="ZA_TEST_KEY", **FAST)
        await vlm.generate(request)
        assert secret not in repr(vlm) and secret not in str(vars(vlm.stats))
        monkeypatch.delenv("ZA_TEST_KEY")
        keyless = OpenAIVLM(server.url, api_key_env="ZA_TEST_KEY", **FAST)
        with pytest.raises(ModelError, match="AuthenticationError") as err:
            await keyless.generate(request)
    assert secret not in str(err.value)


def test_load_model_turns_urls_into_openai_vlm():
    vlm = load_model("http://127.0.0.1:8000/v1")
    assert isinstance(vlm, OpenAIVLM) and vlm.endpoints == ("http://127.0.0.1:8000/v1",)
    pair = load_model("http://gpu1:8000,https://gpu2:9000/v1/")
    assert isinstance(pair, OpenAIVLM) and pair.endpoints == ("http://gpu1:8000/v1", "https://gpu2:9000/v1")
    assert normalize_endpoint("http://h:1/api/") == "http://h:1/api"
    for bad in ("ftp://h/v1", "http:///v1", "localhost:8000"):
        with pytest.raises(ValueError, match="is not a URL"):
            normalize_endpoint(bad)
    with pytest.raises(ValueError, match="concurrency"):
        OpenAIVLM("http://h:1", concurrency=0)
    with pytest.raises(ValueError, match="video_mode"):
        OpenAIVLM("http://h:1", video_mode="gif")  # type: ignore[arg-type]


async def test_least_outstanding_requests_favours_the_faster_replica():
    request = VLMRequest(turns=(Turn(role="user", content=("Hi",)),))
    async with FakeVLLM(latency=0.01) as fast, FakeVLLM(latency=0.25) as slow:
        vlm = OpenAIVLM([fast.url, slow.url], concurrency=4, **FAST)
        await asyncio.gather(*(vlm.generate(request) for _ in range(40)))
    assert fast.statuses[200] + slow.statuses[200] == 40
    assert fast.statuses[200] >= 30 and slow.statuses[200] >= 1


async def test_equal_replicas_share_the_load_and_the_concurrency_limit_holds():
    request = VLMRequest(turns=(Turn(role="user", content=("Hi",)),))
    async with FakeVLLM(latency=0.05) as a, FakeVLLM(latency=0.05) as b:
        vlm = OpenAIVLM([a.url, b.url], concurrency=4, **FAST)
        await asyncio.gather(*(vlm.generate(request) for _ in range(40)))
    assert a.max_in_flight + b.max_in_flight <= 4 and max(a.max_in_flight, b.max_in_flight) == 2
    assert 15 <= a.statuses[200] <= 25 and a.statuses[200] + b.statuses[200] == 40


def test_one_instance_works_across_event_loops():
    request = VLMRequest(turns=(Turn(role="user", content=("Hi",)),))
    server = FakeVLLM()
    with serve_in_thread(server) as url:
        vlm = OpenAIVLM(url, **FAST)
        for _ in range(3):  # each asyncio.run is a new loop: clients must not leak across
            assert asyncio.run(vlm.generate(request)).text
    assert server.statuses[200] == 3


async def test_each_clip_is_encoded_once(info: VideoInfo, monkeypatch):
    calls: list[ClipRef] = []
    real = served_mod.encode_clip

    def counting(ref: ClipRef, quality: int) -> EncodedClip:
        calls.append(ref)
        return real(ref, quality)

    monkeypatch.setattr(served_mod, "encode_clip", counting)
    request = conversation(info)
    async with FakeVLLM() as server:
        vlm = OpenAIVLM(server.url, **FAST)
        await asyncio.gather(*(vlm.generate(request) for _ in range(6)))
        await vlm.generate(request)
    assert sorted(c.role for c in calls) == ["coarse", "zoom"]


async def test_long_frame_lists_reach_vllm_whole(info: VideoInfo):
    dense = plan_clip(info, info.whole, Budget(visual_tokens=256), PAPER_GEOMETRY, fps=10.0)  # 60 frames > vLLM's 32
    request = VLMRequest(turns=(Turn(role="user", content=(dense,)),))
    async with FakeVLLM() as server:
        await OpenAIVLM(server.url, **FAST).generate(request)
        # the fake is faithful: a request-level fps without num_frames falls back to 32 frames
        body = dict(server.requests[0], media_io_kwargs={"video": {"fps": 2.0}})
        import aiohttp

        async with (
            aiohttp.ClientSession() as http,
            http.post(server.url + "/chat/completions", json=body) as r,
        ):
            assert r.status == 200
    assert dense.num_frames == 60
    assert [m.videos[0][:2] for m in server.media] == [(60, 60), (60, 32)]


async def test_an_untrusting_server_refuses_the_clients_media_kwargs(info: VideoInfo):
    """vLLM without --trust-request-mm-kwargs answers 400 to every frames-mode request
    (issue 10 item 1); `zoom-agent serve` therefore sets it (tests/test_serve.py)."""
    async with FakeVLLM(trust_request_mm_kwargs=False) as server:
        with pytest.raises(ModelError, match=r"rejected the request.*media_io_kwargs.*--trust-request-mm-kwargs"):
            await OpenAIVLM(server.url, **FAST).generate(conversation(info))
