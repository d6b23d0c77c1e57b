"""Token-exact rendering: a conversation with the sampled replies spliced in as their ids.

The prompt of every rollout call is the chat-template rendering of the conversation in
which each earlier reply is spliced in as the exact token ids the policy sampled, never
as re-tokenised text. (Re-tokenising a sampled reply rarely gives the sampled ids back,
and then the training forward pass would score tokens the policy never produced.) The
training pass renders the finished conversation the same way (`replay_inputs`) and checks
that it reproduces the recorded sequence, policy tokens included.

The policy never samples the multimodal placeholder tokens (`BANNED_TOKENS`): they belong to
the environment, and a sampled ``<|video_pad|>`` would break the next prompt's video
features. The policy is therefore the model with those logits masked, in sampling
(`sampler`, `vllm_engine`) and in training (`training.loop.logprobs`) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoom_agent.models.base import Turn, VLMRequest
from zoom_agent.types import ClipRef

if TYPE_CHECKING:
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.training.rollout.trajectory import Trajectory

BANNED_TOKENS: tuple[str, ...] = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Placeholders only the environment writes (the processor expands them into vision features)."""

_ASSISTANT_HEADER = "<|im_start|>assistant\n"  # how both Qwen-VL chat templates open a reply
_END_OF_TURN = "<|im_end|>"


class RolloutError(RuntimeError):
    """A rollout cannot be trained on as recorded: the message says what differed and where."""


@dataclass
class RenderedPrompt:
    """A conversation rendered for the model with earlier replies spliced in as sampled ids.

    Attributes:
        input_ids: the whole prompt, ending with the assistant header.
        mm_token_type_ids: 0 text, >0 vision placeholder (the processor's), per token.
        features: the processor's other outputs (pixel values, grids, frame timing).
        policy_spans: ``[start, end)`` of each spliced reply in ``input_ids``.
        clips: the conversation's clips, in the order of their video placeholders.
        template_ids: the same prompt before the processor expanded each clip's placeholder
            (one ``<|video_pad|>`` per clip, as the chat template writes it): what vLLM takes
            with the frames, since it expands placeholders itself (`vllm_engine`).
    """

    input_ids: list[int]
    mm_token_type_ids: list[int]
    features: dict[str, Any]
    policy_spans: list[tuple[int, int]]
    clips: tuple[ClipRef, ...] = ()
    template_ids: list[int] = field(default_factory=list)

    def model_inputs(self, extra: Sequence[int] = (), device: Any = None) -> dict[str, Any]:
        """Batch-of-one model inputs, with ``extra`` (a reply) appended as text tokens."""
        import torch

        ids = torch.tensor([[*self.input_ids, *extra]], dtype=torch.long, device=device)
        mm = torch.tensor([[*self.mm_token_type_ids, *([0] * len(extra))]], dtype=torch.long, device=device)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "mm_token_type_ids": mm,
            **self.features,
        }


def banned_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """Ids of `BANNED_TOKENS` that the tokenizer has."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in BANNED_TOKENS]
    unk = getattr(tokenizer, "unk_token_id", None)
    return tuple(sorted({int(i) for i in ids if i is not None and i != unk}))


def render_conversation(
    vlm: TransformersVLM, turns: Sequence[Turn], replies: Sequence[Sequence[int]]
) -> RenderedPrompt:
    """Render ``turns`` for the next reply, splicing each assistant turn in as its sampled ids.

    Args:
        vlm: supplies the processor and chat template (`TransformersVLM.render_inputs`).
        turns: the conversation; it must end with a user or tool turn.
        replies: the sampled token ids of each assistant turn, in order.

    Returns:
        The rendered prompt (ending with the assistant header).

    Raises:
        RolloutError: the assistant turns and replies do not pair up, or the chat template
            does not open replies with ``<|im_start|>assistant\\n`` and close them with
            ``<|im_end|>``.
    """
    n_assistant = sum(t.role == "assistant" for t in turns)
    if n_assistant != len(replies):
        raise RolloutError(f"the conversation has {n_assistant} assistant turns but {len(replies)} sampled replies")
    if not turns or turns[-1].role == "assistant":
        raise RolloutError("a prompt must end with a user or tool turn, not an assistant turn")
    from zoom_agent.models.hf_render import chat_messages

    blank = tuple(Turn(role="assistant", content=("",)) if t.role == "assistant" else t for t in turns)
    _, clips = chat_messages(blank)
    request = VLMRequest(turns=blank)
    inputs = vlm.render_inputs(request)
    ids = [int(i) for i in inputs["input_ids"][0].tolist()]
    mm = [int(i) for i in inputs["mm_token_type_ids"][0].tolist()]
    features = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    out_ids, source, spans = _splice_replies(vlm.tokenizer, ids, replies)
    out_mm = [mm[i] if i >= 0 else 0 for i in source]
    template = list(vlm.tokenizer.encode(vlm.render_text(request), add_special_tokens=False))
    template_ids, _, _ = _splice_replies(vlm.tokenizer, template, replies)
    return RenderedPrompt(out_ids, out_mm, features, spans, tuple(clips), template_ids)


def _splice_replies(
    tokenizer: Any, ids: Sequence[int], replies: Sequence[Sequence[int]]
) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Put each reply into its empty assistant turn of ``ids``.

    Returns:
        ``(spliced ids, source index in ids of each spliced token (-1 in replies), reply spans)``.
    """
    header = list(tokenizer.encode(_ASSISTANT_HEADER, add_special_tokens=False))
    end: int = tokenizer.convert_tokens_to_ids(_END_OF_TURN)
    slots = [p for p in range(len(header), len(ids)) if ids[p] == end and list(ids[p - len(header) : p]) == header]
    if len(slots) != len(replies) or list(ids[-len(header) :]) != header:
        raise RolloutError(
            f"the chat template rendered {len(slots)} empty replies for {len(replies)} assistant turns "
            f"(or no generation header at the end); expected {_ASSISTANT_HEADER!r}...{_END_OF_TURN} per reply"
        )
    out_ids: list[int] = []
    source: list[int] = []
    spans: list[tuple[int, int]] = []
    prev = 0
    for slot, reply in zip(slots, replies, strict=True):
        out_ids += ids[prev:slot]
        source += range(prev, slot)
        spans.append((len(out_ids), len(out_ids) + len(reply)))
        out_ids += reply
        source += [-1] * len(reply)
        prev = slot + 1 if reply and reply[-1] == end else slot  # a sampled <|im_end|> closes the turn
    out_ids += ids[prev:]
    source += range(prev, len(ids))
    return out_ids, source, spans


def replay_inputs(vlm: TransformersVLM, trajectory: Trajectory) -> dict[str, Any]:
    """Re-render a trajectory for the training pass (frames re-decoded) and check it.

    Args:
        vlm: the policy backend whose processor rendered the rollout's prompts.
        trajectory: a recorded rollout with policy tokens.

    Returns:
        Batch-of-one model inputs whose ``input_ids`` equal ``trajectory.input_ids``.

    Raises:
        RolloutError: the trajectory has no policy token, or the re-rendered sequence
            differs from the recorded one (the message names the first differing token and
            whether the policy sampled it).
    """
    if trajectory.failed:
        raise RolloutError(f"trajectory of {trajectory.question.id} has no policy tokens to train on")
    calls = trajectory.calls
    prompt = render_conversation(vlm, trajectory.turns[:-1], [c.token_ids for c in calls[:-1]])
    ids = (*prompt.input_ids, *calls[-1].token_ids)
    if ids != trajectory.input_ids:
        at = next(
            (i for i, (a, b) in enumerate(zip(ids, trajectory.input_ids, strict=False)) if a != b),
            min(len(ids), len(trajectory.input_ids)),
        )
        where = "a policy token" if trajectory.masks.policy[at : at + 1] == (True,) else "context"
        raise RolloutError(
            f"re-rendering {trajectory.question.id} (sample {trajectory.sample}) does not reproduce the "
            f"sampled sequence: first difference at token {at} ({where}); lengths {len(ids)} vs "
            f"{len(trajectory.input_ids)}"
        )
    return prompt.model_inputs(calls[-1].token_ids, device=vlm.device)
