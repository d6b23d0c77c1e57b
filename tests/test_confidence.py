"""Answer and span confidences in both settings (``sampled``: ours; ``official``: their
``confidence_score``), and the top-k log-probs the official span confidence needs from both
backends (transformers and OpenAI/vLLM)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from zoom_agent import protocol
from zoom_agent.graphs.arbitration import OFFICIAL_TOP_K, answer_confidence, span_confidence
from zoom_agent.models.base import Completion, Sampling, Turn, VLMRequest
from zoom_agent.models.chat_format import parse_completion, request_body

REPLY = "<think>ok</think>\n<answer>B</answer>\n<glue>[(1.0, 2.0)]</glue>"
# tokens: "<think>ok</think>\n", "<answer", ">B", "</answer>\n", "<glue>", "[(1.0,", " 2.0)]", "</glue>"
CUTS = [0, 18, 25, 27, 37, 43, 49, 55, 62]
OFFSETS = tuple(itertools.pairwise(CUTS))
LOGPROBS = (-0.1, -0.2, -0.7, -0.05, -0.01, -0.3, -0.4, -0.02)
TOP = tuple((lp, -3.0, -5.0) for lp in LOGPROBS)


def _completion(top: tuple[tuple[float, ...], ...] | None = TOP) -> Completion:
    assert "".join(REPLY[a:b] for a, b in OFFSETS) == REPLY
    return Completion(text=REPLY, logprobs=LOGPROBS, token_offsets=OFFSETS, top_logprobs=top)


def test_answer_confidence_both_settings() -> None:
    parsed = protocol.parse(REPLY, "zoomzero")
    # ours: the tokens overlapping the letter ("<answer" ends before it; ">B" holds it)
    assert answer_confidence(_completion(), parsed, "sampled") == pytest.approx(math.exp(-0.7))
    # theirs: the token right after "<answer" (here the same token ">B")
    assert answer_confidence(_completion(), parsed, "official") == pytest.approx(math.exp(-0.7))


def test_official_answer_confidence_reads_the_token_after_the_tag() -> None:
    # "<answer>" whole, then "B": the token after "<answer" is "B"'s, not the tag's own
    cuts = [0, 18, 26, 27, 37, 43, 49, 55, 62]
    offsets = tuple(itertools.pairwise(cuts))
    completion = Completion(text=REPLY, logprobs=LOGPROBS, token_offsets=offsets)
    parsed = protocol.parse(REPLY, "zoomzero")
    assert answer_confidence(completion, parsed, "official") == pytest.approx(math.exp(-0.7))
    assert answer_confidence(completion, parsed, "sampled") == pytest.approx(math.exp(-0.7))


def test_span_confidence_both_settings() -> None:
    parsed = protocol.parse(REPLY, "zoomzero")
    glue = [4, 5, 6, 7]  # "<glue>", "[(1.0,", " 2.0)]", "</glue>"
    ours = math.exp(sum(LOGPROBS[i] for i in glue) / len(glue))
    assert span_confidence(_completion(), parsed, "sampled") == pytest.approx(ours)
    content = [5, 6]  # their window: the glue's content, the tags left out
    theirs = sum(-sum(TOP[i]) / len(TOP[i]) for i in content) / len(content)
    assert span_confidence(_completion(), parsed, "official") == pytest.approx(theirs)
    assert span_confidence(_completion(top=None), parsed, "official") is None  # needs top-k log-probs


def test_served_request_asks_for_top_logprobs_and_reads_them() -> None:
    request = VLMRequest(turns=(Turn(role="user", content=("hi",)),), top_logprobs=OFFICIAL_TOP_K)
    assert request_body(request, [], {}, n=1)["top_logprobs"] == 20
    plain = VLMRequest(turns=(Turn(role="user", content=("hi",)),))
    assert request_body(plain, [], {}, n=1)["top_logprobs"] == 0
    items = [
        {
            "token": "a",
            "logprob": -0.5,
            "top_logprobs": [{"token": "b", "logprob": -1.5}, {"token": "a", "logprob": -0.5}],
        },
        {"token": "b", "logprob": -0.1, "top_logprobs": [{"token": "b", "logprob": -0.1}]},
    ]
    choice = {"message": {"content": "ab"}, "logprobs": {"content": items}, "finish_reason": "stop"}
    completion = parse_completion(choice, True)
    assert completion.top_logprobs == ((-0.5, -1.5), (-0.1,))
    no_top = [{"token": "a", "logprob": -0.5, "top_logprobs": []}, {"token": "b", "logprob": -0.1}]
    choice = {"message": {"content": "ab"}, "logprobs": {"content": no_top}, "finish_reason": "stop"}
    assert parse_completion(choice, True).top_logprobs is None


@pytest.mark.slow
def test_transformers_backend_returns_top_k_logprobs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model

    vlm = TransformersVLM(build_tiny_model(tmp_path / "m", "qwen2_5_vl"))
    turns = (Turn(role="user", content=("Question: which? Options: (A) x (B) y",)),)
    greedy = VLMRequest(turns=turns, sampling=Sampling(temperature=0.0, max_tokens=6), top_logprobs=20)
    (c,) = vlm.generate_sync(greedy).completions
    assert c.top_logprobs is not None and len(c.top_logprobs) == len(c.logprobs or ())
    for step, lp in zip(c.top_logprobs, c.logprobs or (), strict=True):
        assert len(step) == 20 and list(step) == sorted(step, reverse=True)
        assert lp == pytest.approx(step[0], abs=1e-6)  # greedy takes the most likely token
    # the same numbers from one forward pass over prompt + completion
    inputs = vlm.render_inputs(greedy)
    ids = torch.cat([inputs["input_ids"], torch.tensor([c.token_ids])], dim=1)
    with torch.no_grad():
        logits = vlm.model(
            input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=torch.zeros_like(ids)
        ).logits[0]
    steps = logits[inputs["input_ids"].shape[1] - 1 : -1].float().log_softmax(-1)
    assert torch.allclose(torch.topk(steps, 20, dim=-1).values, torch.tensor(c.top_logprobs), atol=1e-4)
    plain = VLMRequest(turns=turns, sampling=Sampling(temperature=0.0, max_tokens=6))
    assert vlm.generate_sync(plain).completions[0].top_logprobs is None
