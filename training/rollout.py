"""Rollouts: the inference zoom graph, run G times per question, recorded token by token.

Each rollout runs `graphs.build_zoom_graph` (the same graph as inference and evaluation)
with a `PolicyRecorder` as its model. The recorder generates *token in, token out*: the
prompt of every model call is the chat-template rendering of the conversation in which
each earlier reply is spliced in as the exact token ids the policy sampled, never as
re-tokenised text. (Re-tokenising a sampled reply rarely gives the sampled ids back, and
then the training forward pass would score tokens the policy never produced.) So the
prompt of the last call, followed by its reply, is one sequence that holds every earlier
call's prompt as a prefix: one training forward pass scores every policy token in the
context it was sampled in. `PolicyRecorder` checks that prefix property at every call and
`RolloutEngine.training_inputs` re-renders the conversation for the training pass and
checks that it reproduces the sequence, policy tokens included; both fail loudly.

A `Trajectory` keeps that sequence, its segments (policy | environment: prompt, tool
results, frames), the loss mask (1 only on sampled tokens), the region masks (span: time
tags, glue, zoom-call arguments; answer) from `protocol.parse` offsets through
`training.masks`, the sampled log-probs, and the clip references (pixels are re-decoded
for the training pass, never kept).

The policy never samples the multimodal placeholder tokens (`BANNED_TOKENS`): they belong to
the environment, and a sampled ``<|video_pad|>`` would break the next prompt's video
features. The policy is therefore the model with those logits masked, in sampling
(`TransformersSampler`) and in training (`policy_logprobs`) alike.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from zoom_agent import protocol
from zoom_agent.config import AgentConfig
from zoom_agent.models.base import Completion, Sampling, Turn, VLMRequest, VLMResponse
from zoom_agent.training.masks import region_token_masks
from zoom_agent.types import ClipRef, GroundedAnswer, Question

if TYPE_CHECKING:
    import torch

    from zoom_agent.models.hf import TransformersVLM

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
    """

    input_ids: list[int]
    mm_token_type_ids: list[int]
    features: dict[str, Any]
    policy_spans: list[tuple[int, int]]
    clips: tuple[ClipRef, ...] = ()

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


@dataclass(frozen=True)
class PolicyCall:
    """One model call of a rollout: what the policy saw and what it sampled."""

    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str


@dataclass(frozen=True)
class Segment:
    """A run of tokens in a trajectory: sampled by the policy, or written by the environment."""

    kind: Literal["policy", "env"]
    start: int
    end: int


@dataclass
class Trajectory:
    """One recorded rollout, ready for rewards, credit and the training pass.

    ``input_ids`` is the last call's prompt followed by its reply; per-token lists have its
    length. ``sampled_logprobs`` is 0 outside the policy's tokens.
    """

    question: Question
    group: int
    sample: int
    result: GroundedAnswer
    turns: tuple[Turn, ...] = ()
    calls: tuple[PolicyCall, ...] = ()
    input_ids: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    loss_mask: list[bool] = field(default_factory=list)
    span_mask: list[bool] = field(default_factory=list)
    answer_mask: list[bool] = field(default_factory=list)
    sampled_logprobs: list[float] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """No policy token to train on (the rollout errored before or at its first call)."""
        return not any(self.loss_mask)

    @property
    def clips(self) -> tuple[ClipRef, ...]:
        return tuple(c for t in self.turns for c in t.clips)

    @property
    def policy_positions(self) -> list[int]:
        return [i for i, m in enumerate(self.loss_mask) if m]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.calls]


class TokenSampler(Protocol):
    """Samples one reply from a rendered prompt (transformers here; vLLM in `vllm_engine`).

    ``sample`` is called from worker threads, concurrently: a sampler serialises or batches
    as its engine needs. Optional hooks the trainer calls when present:
    ``before_rollouts()``, ``after_rollouts()``, ``sync_weights(model)``.
    """

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall: ...


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
    from zoom_agent.models.hf import chat_messages

    blank = tuple(Turn(role="assistant", content=("",)) if t.role == "assistant" else t for t in turns)
    _, clips = chat_messages(blank)
    inputs = vlm.render_inputs(VLMRequest(turns=blank))
    ids = [int(i) for i in inputs["input_ids"][0].tolist()]
    mm = [int(i) for i in inputs["mm_token_type_ids"][0].tolist()]
    features = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    header = list(vlm.tokenizer.encode(_ASSISTANT_HEADER, add_special_tokens=False))
    end: int = vlm.tokenizer.convert_tokens_to_ids(_END_OF_TURN)  # type: ignore[assignment]
    slots = [p for p in range(len(header), len(ids)) if ids[p] == end and ids[p - len(header) : p] == header]
    if len(slots) != len(replies) or ids[-len(header) :] != header:
        raise RolloutError(
            f"the chat template rendered {len(slots)} empty replies for {len(replies)} assistant turns "
            f"(or no generation header at the end); expected {_ASSISTANT_HEADER!r}...{_END_OF_TURN} per reply"
        )
    out_ids: list[int] = []
    out_mm: list[int] = []
    spans: list[tuple[int, int]] = []
    prev = 0
    for slot, reply in zip(slots, replies, strict=True):
        out_ids += ids[prev:slot]
        out_mm += mm[prev:slot]
        spans.append((len(out_ids), len(out_ids) + len(reply)))
        out_ids += reply
        out_mm += [0] * len(reply)
        prev = slot + 1 if reply and reply[-1] == end else slot  # a sampled <|im_end|> closes the turn
    out_ids += ids[prev:]
    out_mm += mm[prev:]
    return RenderedPrompt(out_ids, out_mm, features, spans, tuple(clips))


class PolicyRecorder:
    """The `VLM` one rollout talks to: token-in/token-out generation, every call recorded.

    Args:
        engine: the shared `RolloutEngine` (renderer and sampler).
        seed: this rollout's seed; call k samples with a seed derived from it.
    """

    def __init__(self, engine: RolloutEngine, seed: int) -> None:
        self.engine = engine
        self.seed = seed
        self.calls: list[PolicyCall] = []
        self.turns: tuple[Turn, ...] = ()
        self.fatal: RolloutError | None = None

    async def generate(self, request: VLMRequest) -> VLMResponse:
        try:
            return await asyncio.to_thread(self._generate, request)
        except RolloutError as exc:
            self.fatal = exc  # the graph turns model errors into an item error; this one must surface
            raise

    def _generate(self, request: VLMRequest) -> VLMResponse:
        s = request.sampling
        if s.n != 1 or s.stop:
            raise RolloutError(f"training rollouts sample one reply without stop strings, got n={s.n} stop={s.stop}")
        said = [t.text for t in request.turns if t.role == "assistant"]
        if said != [c.text for c in self.calls]:
            raise RolloutError(
                f"call {len(self.calls)}'s conversation holds {len(said)} assistant turns that are not the "
                f"{len(self.calls)} replies this policy sampled, in order: the graph dropped or changed an "
                "earlier reply, so one training sequence cannot hold the rollout"
            )
        prompt = render_conversation(self.engine.vlm, request.turns, [c.token_ids for c in self.calls])
        if self.calls:
            last = self.calls[-1]
            before = [*last.prompt_ids, *last.token_ids]
            if prompt.input_ids[: len(before)] != before:
                at = next(i for i, (a, b) in enumerate(zip(prompt.input_ids, before, strict=False)) if a != b)
                raise RolloutError(
                    f"the chat template is not prefix-stable: call {len(self.calls)}'s prompt differs from "
                    f"the previous prompt + reply at token {at}; one training pass could not score both calls"
                )
        call_seed = (self.seed * 1_000_003 + len(self.calls)) % (2**63 - 1)
        call = self.engine.sampler.sample(prompt, s, call_seed)
        self.calls.append(call)
        self.turns = request.turns
        from zoom_agent.models.hf import token_offsets

        offsets = token_offsets(self.engine.vlm.tokenizer, call.token_ids, call.text)
        completion = Completion(
            text=call.text,
            token_ids=call.token_ids,
            logprobs=call.logprobs,
            token_offsets=offsets,
            finish_reason=call.finish_reason,
        )
        return VLMResponse(completions=(completion,), prompt_token_ids=call.prompt_ids, model="policy")


class RolloutEngine:
    """Runs recorded rollouts of the zoom graph and re-renders them for training.

    Args:
        vlm: the policy as a `TransformersVLM` (its processor renders; its model is trained).
        sampler: who samples replies; default `TransformersSampler` on ``vlm``'s model.
    """

    def __init__(self, vlm: TransformersVLM, sampler: TokenSampler | None = None) -> None:
        from zoom_agent.graphs import build_zoom_graph

        self.vlm = vlm
        self.banned_ids = banned_token_ids(vlm.tokenizer)
        self.sampler: TokenSampler = sampler or TransformersSampler(vlm, self.banned_ids)
        self.graph = build_zoom_graph()

    async def rollout(
        self, question: Question, agent: AgentConfig, *, seed: int, group: int = 0, sample: int = 0
    ) -> Trajectory:
        """One rollout of ``question`` through the zoom graph.

        Raises:
            RolloutError: the recording broke (see `PolicyRecorder`); item-level failures
                (a bad video, a model error) come back as a failed trajectory instead.
        """
        from zoom_agent.graphs import ZoomContext

        recorder = PolicyRecorder(self, seed)
        run = {"recursion_limit": agent.recursion_limit}
        try:
            final = await self.graph.ainvoke(
                {"question": question}, config=run, context=ZoomContext(model=recorder, config=agent)
            )
            result: GroundedAnswer = final["result"]
        except RolloutError:
            raise
        except Exception as exc:  # the graph records its own errors; this is the last guard
            result = GroundedAnswer(question_id=question.id, status="error", error=f"{type(exc).__name__}: {exc}")
        if recorder.fatal is not None:
            raise recorder.fatal
        return build_trajectory(question, result, recorder, group=group, sample=sample, dialect=agent.dialect)

    async def rollouts(
        self,
        questions: Sequence[Question],
        agent: AgentConfig,
        *,
        group_size: int,
        seed: int,
        first_group: int = 0,
        concurrency: int = 8,
    ) -> list[Trajectory]:
        """``group_size`` rollouts of every question (group id = ``first_group`` + index).

        Returns:
            Trajectories grouped by question, in input order.
        """
        if group_size < 1 or concurrency < 1:
            raise ValueError(f"group_size and concurrency must be >= 1, got {group_size}, {concurrency}")
        agent = _training_agent(agent)
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int, q: Question, g: int) -> Trajectory:
            async with gate:
                rollout_seed = (seed * 7919 + (first_group + i) * 131 + g) % (2**62)
                return await self.rollout(q, agent, seed=rollout_seed, group=first_group + i, sample=g)

        jobs = [one(i, q, g) for i, q in enumerate(questions) for g in range(group_size)]
        return list(await asyncio.gather(*jobs))

    def training_inputs(self, trajectory: Trajectory) -> dict[str, Any]:
        """Re-render a trajectory for the training pass (frames re-decoded) and check it.

        Returns:
            Batch-of-one model inputs whose ``input_ids`` equal ``trajectory.input_ids``.

        Raises:
            RolloutError: the re-rendered sequence differs from the recorded one (the
                message names the first differing token and whether the policy sampled it).
        """
        if trajectory.failed:
            raise RolloutError(f"trajectory of {trajectory.question.id} has no policy tokens to train on")
        calls = trajectory.calls
        prompt = render_conversation(self.vlm, trajectory.turns[:-1], [c.token_ids for c in calls[:-1]])
        ids = [*prompt.input_ids, *calls[-1].token_ids]
        if ids != trajectory.input_ids:
            at = next(
                (i for i, (a, b) in enumerate(zip(ids, trajectory.input_ids, strict=False)) if a != b),
                min(len(ids), len(trajectory.input_ids)),
            )
            where = "a policy token" if at < len(ids) and trajectory.loss_mask[at : at + 1] == [True] else "context"
            raise RolloutError(
                f"re-rendering {trajectory.question.id} (sample {trajectory.sample}) does not reproduce the "
                f"sampled sequence: first difference at token {at} ({where}); lengths {len(ids)} vs "
                f"{len(trajectory.input_ids)}"
            )
        return prompt.model_inputs(calls[-1].token_ids, device=self.vlm.device)


def _training_agent(agent: AgentConfig) -> AgentConfig:
    """The agent config with one conversation per question (``auto`` resolved to multi-step)."""
    if getattr(agent, "strategy", None) == "auto":
        return agent.model_copy(update={"strategy": "multi_step"})
    return agent


def build_trajectory(
    question: Question,
    result: GroundedAnswer,
    recorder: PolicyRecorder,
    *,
    group: int,
    sample: int,
    dialect: protocol.Dialect,
) -> Trajectory:
    """Assemble a `Trajectory` from a finished rollout's recorded calls."""
    traj = Trajectory(question=question, group=group, sample=sample, result=result)
    if not recorder.calls:
        return traj
    calls = tuple(recorder.calls)
    last = calls[-1]
    ids = [*last.prompt_ids, *last.token_ids]
    n = len(ids)
    loss, span, answer, logprobs = [False] * n, [False] * n, [False] * n, [0.0] * n
    segments: list[Segment] = []
    pos = 0
    for call in calls:
        start, end = len(call.prompt_ids), len(call.prompt_ids) + len(call.token_ids)
        segments += [Segment("env", pos, start)] if start > pos else []
        segments.append(Segment("policy", start, end))
        masks = reply_region_masks(recorder.engine.vlm.tokenizer, call, dialect, question.letters or "ABCDE")
        for k in range(start, end):
            loss[k] = True
            span[k], answer[k] = masks["span"][k - start], masks["answer"][k - start]
            logprobs[k] = call.logprobs[k - start]
        pos = end
    traj.turns = (*recorder.turns, Turn(role="assistant", content=(last.text,)))
    traj.calls, traj.input_ids, traj.segments = calls, ids, segments
    traj.loss_mask, traj.span_mask, traj.answer_mask, traj.sampled_logprobs = loss, span, answer, logprobs
    return traj


def reply_region_masks(
    tokenizer: Any, call: PolicyCall, dialect: protocol.Dialect, letters: str
) -> dict[str, list[bool]]:
    """Span and answer token masks of one reply, from `protocol.parse` character offsets."""
    from zoom_agent.models.hf import token_offsets

    parsed = protocol.parse(call.text, dialect, letters=letters)
    regions: Mapping[str, list[tuple[int, int]]] = {
        "span": [(r.start, r.end) for r in parsed.span_regions()],
        "answer": [(r.start, r.end) for r in parsed.answer_regions()],
    }
    return region_token_masks(token_offsets(tokenizer, call.token_ids, call.text), regions)


class TransformersSampler:
    """Samples with ``model.generate`` from spliced token ids, recording policy log-probs.

    Args:
        vlm: the policy backend (model, tokenizer, EOS and pad ids).
        banned_ids: token ids the policy may not sample (`BANNED_TOKENS`).
    """

    def __init__(self, vlm: TransformersVLM, banned_ids: Sequence[int]) -> None:
        self.vlm = vlm
        self.banned_ids = tuple(banned_ids)
        self._lock = threading.Lock()  # one generate at a time on one model

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        sample = sampling.temperature > 0
        warpers = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0} if sample else {}
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            do_sample=sample,
            repetition_penalty=1.0,
            eos_token_id=list(self.vlm.eos_token_ids),
            pad_token_id=self.vlm.pad_token_id,
            **warpers,
        )
        recorder = _MaskedPolicyLogprobs(self.banned_ids)
        inputs = prompt.model_inputs(device=self.vlm.device)
        devices = [self.vlm.device.index or 0] if self.vlm.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)  # per call: the G samples of a group differ, and runs repeat
            out = self.vlm.model.generate(  # type: ignore[operator]
                **inputs, generation_config=config, logits_processor=LogitsProcessorList([recorder])
            )
        new = [int(t) for t in out[0, len(prompt.input_ids) :].tolist()]
        logprobs = recorder.finish(new)
        eos = set(self.vlm.eos_token_ids)
        cut = next((i + 1 for i, t in enumerate(new) if t in eos), None)
        ids = new if cut is None else new[:cut]
        text = str(self.vlm.tokenizer.decode(ids, skip_special_tokens=True))
        return PolicyCall(
            prompt_ids=tuple(prompt.input_ids),
            token_ids=tuple(ids),
            logprobs=tuple(logprobs[: len(ids)]),
            text=text,
            finish_reason="length" if cut is None else "stop",
        )


class _MaskedPolicyLogprobs:
    """A logits processor: masks the banned ids, records log_softmax at each sampled token.

    It runs before temperature and top-p (custom processors come first in transformers), so
    it records the policy's own log pi(token | prefix), as `policy_logprobs` computes it.
    """

    def __init__(self, banned_ids: Sequence[int]) -> None:
        self.banned = list(banned_ids)
        self._pending: torch.Tensor | None = None
        self._steps: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._pending is not None:
            self._steps.append(float(self._pending[0, int(input_ids[0, -1])]))
        if self.banned:
            scores = scores.clone()
            scores[:, self.banned] = float("-inf")
        import torch

        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: Sequence[int]) -> list[float]:
        steps = list(self._steps)
        if self._pending is not None and new_tokens:
            steps.append(float(self._pending[0, new_tokens[-1]]))
        if len(steps) != len(new_tokens):
            raise RolloutError(f"recorded {len(steps)} log-probs for {len(new_tokens)} sampled tokens")
        return steps


def policy_logprobs(
    model: Any,
    inputs: Mapping[str, Any],
    positions: Sequence[int],
    banned_ids: Sequence[int],
    *,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (with grad if enabled) of the tokens at ``positions`` under the policy.

    Only the logits that predict those tokens are computed (``logits_to_keep``), so memory
    grows with the reply, not the prompt.

    Args:
        model: the Qwen-VL model.
        inputs: batch-of-one inputs (`RolloutEngine.training_inputs`).
        positions: indices of the policy's tokens in ``input_ids`` (all >= 1).
        banned_ids: masked like in sampling.
        entropy: also return each position's entropy.

    Returns:
        ``(logprobs (P,), entropy (P,) or None)`` in float32.
    """
    import torch

    ids = inputs["input_ids"]
    pos = torch.tensor(positions, dtype=torch.long, device=ids.device)
    if pos.numel() == 0 or int(pos.min()) < 1:
        raise ValueError("positions must be non-empty token indices >= 1 (token 0 has no prefix)")
    out = model(**inputs, logits_to_keep=pos - 1, use_cache=False)
    logits = out.logits[0].float()  # (P, V)
    if banned_ids:
        logits = logits.index_fill(-1, torch.tensor(list(banned_ids), device=logits.device), float("-inf"))
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, ids[0, pos].unsqueeze(-1)).squeeze(-1)
    ent = None
    if entropy:
        probs = logp_all.exp()
        ent = -(probs * torch.where(probs > 0, logp_all, torch.zeros_like(logp_all))).sum(-1)
    return logp, ent
