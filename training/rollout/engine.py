"""Rollouts: the inference zoom graph, run G times per question, recorded token by token.

Each rollout runs `graphs.build_zoom_graph` (the same graph as inference and evaluation)
with a `PolicyRecorder` as its model. The recorder generates *token in, token out*: the
prompt of every model call is rendered by `render.render_conversation`, each earlier reply
spliced in as the exact token ids the policy sampled, and a `sampler.TokenSampler` samples
the reply. So the prompt of the last call, followed by its reply, is one sequence that
holds every earlier call's prompt as a prefix: one training forward pass scores every
policy token in the context it was sampled in. `PolicyRecorder` checks that prefix
property at every call, and `render.replay_inputs` re-renders the conversation for the
training pass and checks that it reproduces the sequence, policy tokens included; both fail
loudly. `Trajectory.from_calls` lays the recorded calls out as one sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoom_agent import protocol
from zoom_agent.config import AgentConfig
from zoom_agent.geometry import Family, VisionGeometry
from zoom_agent.models.base import Completion, Turn, VLMRequest, VLMResponse
from zoom_agent.training.core.masks import region_token_masks
from zoom_agent.training.rollout.render import RolloutError, banned_token_ids, render_conversation
from zoom_agent.training.rollout.sampler import TokenSampler, TransformersSampler
from zoom_agent.training.rollout.trajectory import PolicyCall, Trajectory
from zoom_agent.types import Question

if TYPE_CHECKING:
    from zoom_agent.models.hf import TransformersVLM


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

    @property
    def geometry(self) -> VisionGeometry:
        """The policy's vision geometry: rollouts plan their views with it."""
        return self.engine.vlm.geometry

    @property
    def family(self) -> Family:
        return self.geometry.family

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
        from zoom_agent.models.token_offsets import token_offsets, token_pieces

        offsets = token_offsets(call.text, token_pieces(self.engine.vlm.tokenizer, call.token_ids))
        completion = Completion(
            text=call.text,
            token_ids=call.token_ids,
            logprobs=call.logprobs,
            token_offsets=offsets,
            finish_reason=call.finish_reason,
        )
        return VLMResponse(completions=(completion,), prompt_token_ids=call.prompt_ids, model="policy")


class RolloutEngine:
    """Runs recorded rollouts of the zoom graph.

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
        from zoom_agent.graphs.run import run_question

        recorder = PolicyRecorder(self, seed)
        result = await run_question(self.graph, question, model=recorder, config=agent, reraise=(RolloutError,))
        if recorder.fatal is not None:
            raise recorder.fatal
        letters = question.letters or "ABCDE"
        tokenizer = self.vlm.tokenizer
        return Trajectory.from_calls(
            question,
            result,
            group=group,
            sample=sample,
            turns=recorder.turns,
            calls=recorder.calls,
            regions=[reply_region_masks(tokenizer, c, agent.dialect, letters) for c in recorder.calls],
        )

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


def _training_agent(agent: AgentConfig) -> AgentConfig:
    """The agent config with one conversation per question (``auto`` resolved to multi-step)."""
    if getattr(agent, "strategy", None) == "auto":
        return agent.model_copy(update={"strategy": "multi_step"})
    return agent


def reply_region_masks(
    tokenizer: Any, call: PolicyCall, dialect: protocol.Dialect, letters: str
) -> dict[str, list[bool]]:
    """Span and answer token masks of one reply, from `protocol.parse` character offsets."""
    from zoom_agent.models.token_offsets import token_offsets, token_pieces

    parsed = protocol.parse(call.text, dialect, letters=letters)
    regions: Mapping[str, list[tuple[int, int]]] = {
        "span": [(r.start, r.end) for r in parsed.span_regions()],
        "answer": [(r.start, r.end) for r in parsed.answer_regions()],
    }
    offsets = token_offsets(call.text, token_pieces(tokenizer, call.token_ids))
    if offsets is None:
        raise RolloutError(f"the reply's {len(call.token_ids)} tokens do not decode to its text; no token masks")
    return region_token_masks(offsets, regions)
