"""SFT warm start: cross-entropy on generated target replies, on the GRPO trainer's infrastructure.

The paper starts GRPO from an instruction-tuned model that already writes its layout. A model
trained from scratch (`zoom_agent.models.tiny`, ``size: small``) does not, so its format, IoU,
answer and zoom rewards would all be 0 and GRPO would have no signal. This stage plays the
base model's instruction tuning (docs/training.md §8):

1. **Targets.** Each question runs through the same zoom graph as the rollouts, with a
   teacher model (`TargetReplies`) that knows the ground truth: the coarse turn cites the
   event with a ``<time>`` tag and calls the zoom on it (`protocol.format_tool_call`), the
   turn after the zoom answers with the letter and the span (`protocol.format_answer`). A
   share of the questions (``sft.no_zoom_share``) runs with no zoom round, and the teacher
   answers at once, so a model asked without the zoom at inference has seen that case.
2. **Tokens.** The conversation is rendered exactly as rollouts render it
   (`rollout.render.render_conversation`: the replies spliced in as token ids, each closed by
   ``<|im_end|>``), so SFT and GRPO train the same sequences.
3. **Loss.** Cross-entropy on the assistant tokens only (the replies), averaged over the
   batch's reply tokens (`logprobs.policy_logprobs`, the placeholder tokens masked as in
   sampling); AdamW with the recipe's schedule, one optimiser step per batch.

`SFTTrainer` is a `Trainer` whose step is the SFT step: the data stream, checkpoints
(layout, resume), ``metrics.jsonl``, validation with the paper's rewards (``val/*``) and
``final_model`` are the trainer's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from zoom_agent import protocol
from zoom_agent.config import AgentConfig
from zoom_agent.models.base import Turn, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.loop.logprobs import policy_logprobs
from zoom_agent.training.loop.metrics import Timings
from zoom_agent.training.loop.trainer import Trainer
from zoom_agent.training.rollout.render import render_conversation
from zoom_agent.types import GroundedAnswer, Question

if TYPE_CHECKING:
    from zoom_agent.models.hf import TransformersVLM

__all__ = ["SFTExample", "SFTTrainer", "TargetReplies", "sft_inputs", "target_conversation"]


def _pair(start: float, end: float) -> str:
    """A span as the replies write it (the formatters' own rounding)."""
    return protocol.format_answer("A", [(start, end)]).partition("[")[2].partition("]")[0]


class TargetReplies:
    """The teacher: the replies a policy that knows the ground truth writes, turn by turn.

    Args:
        question: the question (its answer letter and first ground-truth span are used).
        zoom: the graph offers a zoom round (False: answer in the coarse turn).
    """

    def __init__(self, question: Question, *, zoom: bool = True) -> None:
        self.zoom = zoom
        if question.answer_letter is None or not question.gt_spans:
            raise ValueError(f"SFT targets need an answer and a ground-truth span; {question.id} lacks one")
        self.letter = question.answer_letter
        span = question.gt_spans[0]
        self.start, self.end = span.start, span.end

    def __call__(self, request: VLMRequest) -> str:
        cited = f"<time>{_pair(self.start, self.end)}</time>"
        zoomed = any(t.role == "tool" for t in request.turns)
        if zoomed:
            reasoning = f"The zoomed frames at {cited} show it."
        elif self.zoom:
            return protocol.format_tool_call(
                self.start, self.end, reasoning=f"The event is at {cited}. Let me look closer."
            )
        else:
            reasoning = f"The event is at {cited}."
        return protocol.format_answer(self.letter, [(self.start, self.end)], reasoning=reasoning)


@dataclass(frozen=True)
class SFTExample:
    """One target conversation: the turns before the last reply, and every reply's text."""

    question: Question
    turns: tuple[Turn, ...]
    replies: tuple[str, ...]
    result: GroundedAnswer  # what the graph made of the replies (the rewards score it)


async def target_conversation(question: Question, agent: AgentConfig, geometry: Any) -> SFTExample:
    """Run ``question`` through the zoom graph with `TargetReplies`; the recorded conversation.

    Args:
        question: with its answer and ground-truth span.
        agent: the graph's configuration (the rollouts' own, or with no zoom round).
        geometry: the policy's vision geometry (views are planned with it, as in rollouts).

    Raises:
        ValueError: the graph did not end with an answer (the message says what it did).
    """
    from zoom_agent.graphs import build_zoom_graph
    from zoom_agent.graphs.run import run_question

    targets = TargetReplies(question, zoom=agent.max_zoom_rounds > 0)
    teacher = ScriptedVLM(targets, geometry=geometry, name="sft-targets")
    result = await run_question(build_zoom_graph(), question, model=teacher, config=agent)
    if result.status != "answered" or not teacher.requests:
        raise ValueError(f"the target conversation of {question.id} did not answer: {result.status} {result.error}")
    replies = tuple(t.text for t in teacher.requests[-1].turns if t.role == "assistant")
    last = targets(teacher.requests[-1])
    return SFTExample(question, teacher.requests[-1].turns, (*replies, last), result)


def sft_inputs(vlm: TransformersVLM, example: SFTExample) -> tuple[dict[str, Any], list[int]]:
    """Model inputs of one target conversation and the positions of its reply tokens.

    Rendered as rollouts render it: each reply spliced in as its token ids closed by
    ``<|im_end|>`` (`render.render_conversation`), the last one appended.

    Returns:
        ``(batch-of-one inputs, indices of every reply token in input_ids)``.
    """
    tok = vlm.tokenizer
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = [[*tok.encode(text, add_special_tokens=False), end] for text in example.replies]
    prompt = render_conversation(vlm, example.turns, ids[:-1])
    positions = [p for s, e in prompt.policy_spans for p in range(s, e)]
    n = len(prompt.input_ids)
    positions += list(range(n, n + len(ids[-1])))
    return prompt.model_inputs(ids[-1], device=vlm.device), positions


class SFTTrainer(Trainer):
    """Supervised fine-tuning on target replies, with `Trainer`'s data stream, checkpoints,
    metrics and validation (`step` is the only stage replaced)."""

    def step(self) -> dict[str, float]:
        """One optimiser step on the next batch of questions' target conversations."""
        timer = Timings()
        questions, _ = self.next_questions()
        with timer("targets"):
            examples = asyncio.run(self._targets(questions))
        self.model.train()
        with timer("fwd_bwd"):
            stats = self._update(examples, timer)
        self.step_count += 1
        self.consumed += self.config.prompts_per_step
        metrics = {"step": float(self.step_count), "lr": float(self.scheduler.get_last_lr()[0])}
        metrics |= stats | timer.metrics()
        self.log.write(metrics)
        return metrics

    def progress_postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{metrics['sft/loss']:.3f}"}

    async def _targets(self, questions: Sequence[Question]) -> list[SFTExample]:
        share = self.config.sft.no_zoom_share
        plain = self.agent.model_copy(update={"max_zoom_rounds": 0})
        jobs = []
        for i, q in enumerate(questions):
            # the k-th item of the stream goes without the zoom when its share's counter ticks
            k = self.consumed + i
            no_zoom = int((k + 1) * share) > int(k * share)
            jobs.append(target_conversation(q, plain if no_zoom else self.agent, self.policy.geometry))
        return list(await asyncio.gather(*jobs))

    def _update(self, examples: Sequence[SFTExample], timer: Timings) -> dict[str, float]:
        """Cross-entropy on every reply token of ``examples``, averaged over the batch's tokens."""
        with timer("render"):
            batch = [sft_inputs(self.policy, ex) for ex in examples]
        local = float(sum(len(p) for _, p in batch))
        (total,) = dist.all_reduce_sum([local], self.ctx)
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = likely = 0.0
        for inputs, positions in batch:
            logp, _ = policy_logprobs(self.model, inputs, positions, self.engine.banned_ids)
            loss = -logp.sum() / total
            loss.backward()
            loss_sum += float(loss.detach())
            likely += float((logp.detach() > -0.6931).sum())  # p > 1/2: the target is surely the argmax
        dist.all_reduce_gradients(self.model, self.ctx)
        loss_sum, likely = dist.all_reduce_sum([loss_sum, likely], self.ctx)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip))
        self.optimizer.step()
        self.scheduler.step()
        return {
            "sft/loss": loss_sum,
            "sft/likely_tokens": likely / max(total, 1.0),  # share of target tokens with p > 1/2
            "sft/tokens": total,
            "actor/grad_norm": grad_norm,
        }
