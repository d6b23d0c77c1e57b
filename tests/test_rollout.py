"""Recorded rollouts on the tiny Qwen2.5-VL: token-in/token-out splicing, masks, re-render checks."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import torch

from zoom_agent import protocol
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.base import Sampling, Turn, VLMRequest
from zoom_agent.models.hf import _PolicyLogprobs
from zoom_agent.training.loop.logprobs import policy_logprobs
from zoom_agent.training.rollout.engine import PolicyRecorder, RolloutEngine
from zoom_agent.training.rollout.render import (
    BANNED_TOKENS,
    RenderedPrompt,
    RolloutError,
    render_conversation,
    replay_inputs,
)
from zoom_agent.training.rollout.trajectory import PolicyCall
from zoom_agent.types import Question

pytestmark = pytest.mark.slow  # builds a tiny model and samples with it (a few seconds)

AGENT = AgentConfig(
    budget=Budget(visual_tokens=64, fps=0.5),
    temperature=1.0,
    max_tokens=12,
    max_zoom_rounds=1,
    format_retries=0,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, list[Question]]:
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("rollout")
    questions = make_synthetic_task(root / "task", num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    return TransformersVLM(build_tiny_model(root / "tiny", "qwen2_5_vl")), questions


class ForcedSampler:
    """Replies with given texts; log-probs from the model itself (teacher forcing)."""

    def __init__(self, vlm: object, banned: tuple[int, ...], replies: list[str]) -> None:
        self.vlm, self.banned, self.replies = vlm, banned, list(replies)
        self.prompts: list[RenderedPrompt] = []

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall:
        vlm = self.vlm
        text = self.replies[len(self.prompts)]
        self.prompts.append(prompt)
        end = vlm.tokenizer.convert_tokens_to_ids("<|im_end|>")  # type: ignore[attr-defined]
        ids = [*vlm.tokenizer.encode(text, add_special_tokens=False), end]  # type: ignore[attr-defined]
        start = len(prompt.input_ids)
        with torch.no_grad():
            lp, _ = policy_logprobs(
                vlm.model,  # type: ignore[attr-defined]
                prompt.model_inputs(ids),
                range(start, start + len(ids)),
                self.banned,
            )
        return PolicyCall(tuple(prompt.input_ids), tuple(ids), tuple(lp.tolist()), text, "stop")


def _digit_question(questions: list[Question]) -> Question:
    return next(q for q in questions if q.qtype == "digit")


def _two_turn_replies(q: Question) -> list[str]:
    span = q.gt_spans[0]
    call = protocol.format_tool_call(span.start, span.end, reasoning="it is near <time>(1.0, 2.0)</time>")
    answer = protocol.format_answer(q.answer_letter or "A", [span.as_tuple()], reasoning="the card shows it")
    return [call, answer]


def test_multi_turn_trajectory_is_one_sequence_with_exact_masks(setup: tuple) -> None:
    vlm, questions = setup
    q = _digit_question(questions)
    engine = RolloutEngine(vlm)
    replies = _two_turn_replies(q)
    engine.sampler = ForcedSampler(vlm, engine.banned_ids, replies)
    traj = asyncio.run(engine.rollout(q, AGENT, seed=0))

    assert traj.result.status == "answered" and traj.result.rounds == 1
    assert [c.text for c in traj.calls] == replies
    policy = [s for s in traj.segments if s.kind == "policy"]
    assert len(policy) == 2 and [s.kind for s in traj.segments] == ["env", "policy", "env", "policy"]
    # The first call's prompt + reply is a prefix of the final sequence (one forward scores both).
    first = traj.calls[0]
    assert traj.input_ids[: len(first.prompt_ids) + len(first.token_ids)] == (*first.prompt_ids, *first.token_ids)
    for seg, call in zip(policy, traj.calls, strict=True):
        assert traj.input_ids[seg.start : seg.end] == call.token_ids
        assert all(traj.masks.policy[seg.start : seg.end])
    assert sum(traj.masks.policy) == sum(len(c.token_ids) for c in traj.calls)
    # Region masks: the tool call and time tag (turn 1), glue (turn 2) are span; <answer>X</answer> answer.
    tok = vlm.tokenizer
    span_text = tok.decode([t for t, m in zip(traj.input_ids, traj.masks.span, strict=True) if m])
    answer_text = tok.decode([t for t, m in zip(traj.input_ids, traj.masks.answer, strict=True) if m])
    assert "temporal_zoom" in span_text and "<glue>" in span_text and "<time>" in span_text
    assert answer_text.replace(" ", "") == f"<answer>{q.answer_letter}</answer>"
    assert not any(s and not m for s, m in zip(traj.masks.span, traj.masks.policy, strict=True))
    # Two videos (coarse + zoom) in the final prompt; the clips are kept for re-encoding.
    assert [c.role for c in traj.clips] == ["coarse", "zoom"]


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory: pytest.TempPathFactory, setup: tuple) -> object:
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model

    return TransformersVLM(build_tiny_model(tmp_path_factory.mktemp("q3") / "tiny", "qwen3_vl"))


def test_qwen3_vl_two_turn_trajectory_replays_exactly(qwen3: object, setup: tuple) -> None:
    _, questions = setup
    q = _digit_question(questions)
    engine = RolloutEngine(qwen3)  # type: ignore[arg-type]
    engine.sampler = ForcedSampler(qwen3, engine.banned_ids, _two_turn_replies(q))
    agent = AGENT.model_copy(update={"budget": Budget(visual_tokens=64, fps=0.5)})
    traj = asyncio.run(engine.rollout(q, agent, seed=0))
    assert traj.result.status == "answered" and len(traj.calls) == 2
    inputs = replay_inputs(qwen3, traj)  # type: ignore[arg-type]
    with torch.no_grad():
        lp, _ = policy_logprobs(qwen3.model, inputs, traj.policy_positions, engine.banned_ids)  # type: ignore[attr-defined]
    sampled = torch.tensor(traj.masks.sampled_logprobs())
    torch.testing.assert_close(lp, sampled, atol=1e-4, rtol=0)


def test_empty_and_truncated_replies_still_train(setup: tuple) -> None:
    vlm, questions = setup
    engine = RolloutEngine(vlm)
    engine.sampler = ForcedSampler(vlm, engine.banned_ids, [""])
    empty = asyncio.run(engine.rollout(questions[0], AGENT, seed=0))
    assert empty.calls[0].text == "" and len(empty.policy_positions) == 1  # just <|im_end|>
    assert empty.result.status == "unanswered"
    assert replay_inputs(vlm, empty)["input_ids"][0].tolist() == list(empty.input_ids)
    short = AGENT.model_copy(update={"max_tokens": 3})
    (cut,) = asyncio.run(RolloutEngine(vlm).rollouts(questions[:1], short, group_size=1, seed=2))
    assert cut.calls[0].finish_reason == "length" and len(cut.policy_positions) == 3
    assert replay_inputs(vlm, cut)["input_ids"][0].tolist() == list(cut.input_ids)


def test_training_pass_reproduces_sampled_tokens_and_logprobs(setup: tuple) -> None:
    vlm, questions = setup
    q = _digit_question(questions)
    engine = RolloutEngine(vlm)
    engine.sampler = ForcedSampler(vlm, engine.banned_ids, _two_turn_replies(q))
    traj = asyncio.run(engine.rollout(q, AGENT, seed=0))
    inputs = replay_inputs(vlm, traj)
    assert inputs["input_ids"][0].tolist() == list(traj.input_ids)
    with torch.no_grad():
        lp, ent = policy_logprobs(vlm.model, inputs, traj.policy_positions, engine.banned_ids, entropy=True)
    sampled = torch.tensor(traj.masks.sampled_logprobs())
    torch.testing.assert_close(lp, sampled, atol=1e-4, rtol=0)  # both calls, across both videos
    assert ent is not None and bool((ent > 0).all())


def test_sampled_rollouts_differ_within_a_group_and_repeat_with_the_seed(setup: tuple) -> None:
    vlm, questions = setup
    engine = RolloutEngine(vlm)
    first = asyncio.run(engine.rollouts(questions[:1], AGENT, group_size=3, seed=5))
    again = asyncio.run(engine.rollouts(questions[:1], AGENT, group_size=3, seed=5))
    tokens = [t.calls[0].token_ids for t in first]
    assert len(set(tokens)) == 3, "the G samples of a group must differ"
    assert tokens == [t.calls[0].token_ids for t in again], "same seed, same samples"
    assert [t.group for t in first] == [0, 0, 0] and [t.sample for t in first] == [0, 1, 2]
    for traj in first:
        inputs = replay_inputs(vlm, traj)
        with torch.no_grad():
            lp, _ = policy_logprobs(vlm.model, inputs, traj.policy_positions, engine.banned_ids)
        sampled = torch.tensor(traj.masks.sampled_logprobs())
        torch.testing.assert_close(lp, sampled, atol=1e-4, rtol=0)
        banned = set(engine.banned_ids)
        assert not banned & {traj.input_ids[i] for i in traj.policy_positions}


def test_rerender_mismatch_fails_loudly_naming_policy_or_context(setup: tuple) -> None:
    vlm, questions = setup
    engine = RolloutEngine(vlm)
    (traj,) = asyncio.run(engine.rollouts(questions[:1], AGENT, group_size=1, seed=1))

    def changed(at: int) -> object:
        ids = list(traj.input_ids)
        ids[at] = (ids[at] + 1) % 500
        return dataclasses.replace(traj, input_ids=tuple(ids))

    with pytest.raises(RolloutError, match="policy token"):
        replay_inputs(vlm, changed(traj.policy_positions[0]))  # type: ignore[arg-type]
    with pytest.raises(RolloutError, match="token 3 \\(context\\)"):
        replay_inputs(vlm, changed(3))  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        traj.input_ids = ()  # type: ignore[misc]  # a recorded rollout cannot be edited in place


def test_recorder_refuses_a_conversation_that_drops_its_replies(setup: tuple) -> None:
    vlm, _ = setup
    engine = RolloutEngine(vlm)
    recorder = PolicyRecorder(engine, seed=0)
    clip_turns = (Turn(role="system", content=("sys",)), Turn(role="user", content=("Question: what?",)))
    request = VLMRequest(turns=clip_turns, sampling=Sampling(temperature=1.0, max_tokens=4))
    reply = asyncio.run(recorder.generate(request))
    assert reply.completions[0].token_offsets is not None
    # The same conversation again, without the reply it produced: not one sequence any more.
    with pytest.raises(RolloutError, match="dropped or changed"):
        asyncio.run(recorder.generate(request))
    assert isinstance(recorder.fatal, RolloutError)
    with pytest.raises(RolloutError, match="one reply"):
        asyncio.run(recorder.generate(request.model_copy(update={"sampling": Sampling(n=2)})))


def test_render_conversation_splices_sampled_ids_verbatim(setup: tuple) -> None:
    vlm, _ = setup
    tok = vlm.tokenizer
    odd = [tok.convert_tokens_to_ids(t) for t in ("a", "b")]  # "ab" re-tokenises differently
    end = tok.convert_tokens_to_ids("<|im_end|>")
    turns = (
        Turn(role="system", content=("sys",)),
        Turn(role="user", content=("hi",)),
        Turn(role="assistant", content=(tok.decode(odd),)),
        Turn(role="user", content=("again",)),
    )
    for reply in (odd, [*odd, end]):  # cut at the limit, or closed by a sampled <|im_end|>
        prompt = render_conversation(vlm, turns, [reply])
        ((start, stop),) = prompt.policy_spans
        assert prompt.input_ids[start:stop] == reply
        closed_by_policy = reply[-1] == end
        assert (prompt.input_ids[stop] == end) != closed_by_policy  # the template closes it otherwise
        assert prompt.input_ids.count(end) == 4  # every turn closed exactly once
    with pytest.raises(RolloutError, match="1 assistant turns but 0"):
        render_conversation(vlm, turns, [])


def test_a_bad_video_is_a_failed_trajectory_not_a_crash(setup: tuple, tmp_path: Path) -> None:
    vlm, questions = setup
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    q = questions[0].model_copy(update={"video": str(broken)})
    (traj,) = asyncio.run(RolloutEngine(vlm).rollouts([q], AGENT, group_size=1, seed=0))
    assert traj.failed and traj.result.status == "error" and not traj.calls
    with pytest.raises(RolloutError, match="no policy tokens"):
        replay_inputs(vlm, traj)


def test_policy_never_samples_environment_placeholders(setup: tuple) -> None:
    vlm, _ = setup
    banned = RolloutEngine(vlm).banned_ids
    assert len(banned) == len(BANNED_TOKENS)
    scores = torch.randn(1, 640)
    scores[0, list(banned)] = 50.0  # the model would love them
    recorder = _PolicyLogprobs(banned)
    out = recorder(torch.tensor([[1, 2]]), scores)
    assert bool(torch.isinf(out[0, list(banned)]).all())
    allowed = torch.ones(640, dtype=torch.bool)
    allowed[list(banned)] = False
    assert recorder._pending is not None
    torch.testing.assert_close(recorder._pending[0, allowed].exp().sum(), torch.tensor(1.0))
