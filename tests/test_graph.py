"""Graph logic with a scripted model: zoom, clamping, round cap, parallel zoom, retries,
arbitration, both dialects, errors, checkpoints, streaming and batches."""

from __future__ import annotations

import asyncio
import functools
import json

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.base import Completion, ModelError, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import ClipRef, Question, VideoInfo

INFO = VideoInfo(path="/videos/long.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
QUESTION = Question(
    id="q1",
    video=INFO.path,
    question="What colour is the square?",
    options=("red", "green", "blue", "yellow"),
)
CONFIG = AgentConfig(budget=Budget(visual_tokens=1024))


def zoom_call(start: object, end: object, name: str = "temporal_zoom") -> str:
    args = json.dumps({"name": name, "arguments": {"start": start, "end": end}})
    think = f"<think>The square shows up near <time>({start}, {end})</time>.</think>"
    return f"{think}\n<tool_call>{args}</tool_call>"


def answer(letter: str, spans: str = "[(12.5, 17.0)]") -> str:
    return f"<think>Now I can see it.</think>\n<answer>{letter}</answer>\n<glue>{spans}</glue>"


def run(model: ScriptedVLM, config: AgentConfig = CONFIG, question: Question = QUESTION, **kw):
    agent = ZoomAgent(model, config, **kw)
    return agent, asyncio.run(agent.arun(question, info=INFO))


def test_zoom_then_answer_carries_frames_in_a_user_turn():
    model = ScriptedVLM([zoom_call(12, 18), answer("B")])
    _, result = run(model)
    assert result.status == "answered" and result.answer == "B" and result.answer_text == "green"
    assert [s.as_tuple() for s in result.spans] == [(12.5, 17.0)]
    assert result.rounds == 1 and len(result.zooms) == 1
    zoom = result.zooms[0]
    assert zoom.error is None and zoom.clip is not None and zoom.clip.span.as_tuple() == (12.0, 18.0)
    fine = model.requests[1].turns
    assert [t.role for t in fine[-3:]] == ["assistant", "tool", "user"]
    assert fine[-2].clips == () and "zoomed 12.0-18.0 s" in fine[-2].text
    (clip,) = fine[-1].clips
    assert clip.role == "zoom" and "12.0" in fine[-1].text and "18.0" in fine[-1].text
    coarse = model.requests[0].turns[1].clips[0]
    # same budget, shorter span: fewer frames, each with more pixels
    assert clip.num_frames < coarse.num_frames and clip.width * clip.height > coarse.width * coarse.height
    assert result.turns[1].clips == (clip,)


def test_out_of_range_zoom_is_clamped_and_bad_arguments_come_back_as_text():
    # past the end: clamped; a negative start or a string: an error the model reads
    # (the zoom call's wire contract, zoom_agent.protocol.zoom_call)
    model = ScriptedVLM([zoom_call(0, 1000), zoom_call("soon", 3), zoom_call(-5, 3), answer("A")])
    _, result = run(model, AgentConfig(budget=Budget(visual_tokens=1024), max_zoom_rounds=3))
    first, second, third = result.zooms
    assert first.clip is not None and first.clip.span.as_tuple() == (0.0, 60.0)
    assert second.clip is None and "start must be a number" in (second.error or "")
    assert third.clip is None and "negative" in (third.error or "")
    tool_turn = model.requests[2].turns[-2]
    assert tool_turn.role == "tool" and "must be a number" in tool_turn.text
    assert result.status == "answered" and result.rounds == 3


def test_round_cap_then_reminder_then_unanswered():
    model = ScriptedVLM(lambda req: zoom_call(1, 5))
    _, result = run(model, AgentConfig(budget=Budget(visual_tokens=1024), max_zoom_rounds=2, format_retries=1))
    assert len(model.requests) == 4  # coarse, two zoom rounds, one reminder
    assert "no zoom rounds left" in model.requests[3].turns[-1].text
    assert result.status == "unanswered" and result.answer is None and result.rounds == 2


def test_parallel_zoom_calls_run_in_one_round():
    two = zoom_call(5, 10) + "\n" + zoom_call(30, 40)[zoom_call(30, 40).index("<tool_call>") :]
    model = ScriptedVLM([two, answer("C", "[(5.0, 9.0), (31.0, 35.0)]")])
    _, result = run(model)
    assert result.rounds == 1 and [z.call for z in result.zooms] == [0, 1]
    assert [z.clip.span.as_tuple() for z in result.zooms if z.clip] == [(5.0, 10.0), (30.0, 40.0)]
    turns = model.requests[1].turns
    assert [t.role for t in turns[-4:]] == ["assistant", "tool", "tool", "user"]
    assert len(turns[-1].clips) == 2
    assert len(result.spans) == 2


def test_unknown_tool_and_broken_json_are_errors_the_model_sees():
    broken = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 1,</tool_call>'
    model = ScriptedVLM([zoom_call(1, 2, name="crop"), broken, answer("D")])
    _, result = run(model)
    assert "unknown tool" in (result.zooms[0].error or "")
    assert result.zooms[1].error and result.zooms[1].clip is None
    assert result.answer == "D"


def test_unparsable_turn_is_retried_once_then_unanswered():
    model = ScriptedVLM(["I think it is green.", answer("B")])
    _, result = run(model)
    assert result.answer == "B" and len(model.requests) == 2
    assert [(t.role, t.text) for t in model.requests[1].turns[-2:-1]] == [("assistant", "I think it is green.")]
    assert model.requests[1].turns[-1].role == "user" and "could not be read" in model.requests[1].turns[-1].text

    model = ScriptedVLM(["no idea", "still no idea"])
    _, result = run(model)
    assert result.status == "unanswered" and result.answer is None and len(result.turns) == 2


def test_answer_letter_outside_the_options_is_not_accepted():
    model = ScriptedVLM([answer("E"), answer("E")])
    _, result = run(model)
    assert result.status == "unanswered"


def _with_confidence(text: str, letter_logprob: float, span_logprob: float) -> Completion:
    """A completion whose only tokens are one per character, with chosen logprobs."""
    letter_at = text.index("<answer>") + len("<answer>")
    glue_from, glue_to = text.index("<glue>"), text.index("</glue>") + len("</glue>")
    logprobs = []
    for i in range(len(text)):
        logprobs.append(letter_logprob if i == letter_at else span_logprob if glue_from <= i < glue_to else 0.0)
    offsets = tuple((i, i + 1) for i in range(len(text)))
    return Completion(text=text, token_ids=tuple(range(len(text))), logprobs=tuple(logprobs), token_offsets=offsets)


@pytest.mark.parametrize(
    ("coarse_lp", "fine_lp", "expected_answer", "expected_spans"),
    [(-0.1, -2.0, "A", (10.0, 20.0)), (-2.0, -0.1, "B", (12.0, 14.0))],
)
def test_zoomzero_arbitrates_coarse_and_fine_by_confidence(coarse_lp, fine_lp, expected_answer, expected_spans):
    coarse = _with_confidence(
        "<think>around <time>(10.0, 20.0)</time></think>\n<answer>A</answer>\n<glue>[(10.0, 20.0)]</glue>",
        coarse_lp,
        -0.5,
    )
    fine = _with_confidence("<think>seen</think>\n<answer>B</answer>\n<glue>[(12.0, 14.0)]</glue>", fine_lp, -0.5)
    model = ScriptedVLM([coarse, fine])
    config = AgentConfig(dialect="zoomzero", budget=Budget(visual_tokens=1024), zoom_pad=2.0)
    _, result = run(model, config)
    assert len(model.requests) == 2 and result.rounds == 1
    assert result.zooms[0].clip is not None and result.zooms[0].clip.span.as_tuple() == (8.0, 22.0)  # padded
    assert result.answer == expected_answer and result.spans[0].as_tuple() == expected_spans
    assert result.answer_confidence == pytest.approx(min(1.0, 2.718281828 ** max(coarse_lp, fine_lp)), rel=1e-6)


def test_model_failure_and_bad_video_become_error_results():
    def boom(request: VLMRequest) -> str:
        raise ModelError("server gone")

    _, result = run(ScriptedVLM(boom))
    assert result.status == "error" and "server gone" in (result.error or "")

    agent = ZoomAgent(ScriptedVLM([answer("A")]), CONFIG)
    missing = QUESTION.model_copy(update={"video": "/nonexistent/video.mp4"})
    result = asyncio.run(agent.arun(missing))
    assert result.status == "error" and "/nonexistent/video.mp4" in (result.error or "")


def test_global_context_adds_a_low_res_whole_video_clip():
    model = ScriptedVLM([zoom_call(12, 18), answer("B")])
    config = AgentConfig(budget=Budget(visual_tokens=1024), global_context=True, context_frames=4)
    run(model, config)
    clips = model.requests[1].turns[-1].clips
    assert [c.role for c in clips] == ["context", "zoom"]
    context, zoomed = clips
    assert context.span.as_tuple() == (0.0, 60.0) and context.num_frames == 4
    assert context.visual_tokens + zoomed.visual_tokens <= 1024 + 64  # one budget, split


def test_stream_yields_node_updates_in_order():
    agent = ZoomAgent(ScriptedVLM([zoom_call(12, 18), answer("B")]), CONFIG)

    async def collect() -> list[str]:
        return [node async for node, _ in agent.astream(QUESTION.model_copy(update={"video": INFO.path}))]

    # astream opens the video, so give the graph the metadata through a patched input
    agent._input = lambda q, info: {"question": q, "info": INFO}  # type: ignore[method-assign]
    assert asyncio.run(collect()) == ["prepare", "model", "zoom", "observe", "model", "finalize"]


def test_abatch_runs_sixteen_questions_concurrently_and_keeps_order():
    # Concurrency without a clock: every coarse turn waits until all 16 are in flight at
    # once, which only happens if the batch runs them concurrently (one after another, the
    # first would wait forever: the timeout turns that into a failure, never a hang).
    arrived = 0
    all_in = asyncio.Event()

    async def reply(request: VLMRequest) -> str:
        nonlocal arrived
        qid = request.turns[1].text.split("#")[-1][0]
        if any(t.role == "tool" for t in request.turns):
            return answer(qid)  # the letter encoded in the question, after one zoom
        arrived += 1
        if arrived == 16:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=120)
        return zoom_call(1, 3)

    model = ScriptedVLM(reply)
    agent = ZoomAgent(model, CONFIG)
    agent.arun = functools.partial(agent.arun, info=INFO)  # type: ignore[method-assign]
    questions = [
        QUESTION.model_copy(update={"id": f"q{i}", "question": f"Which one? #{'ABCD'[i % 4]}"}) for i in range(16)
    ]
    results = asyncio.run(agent.abatch(questions, concurrency=16))
    assert [r.question_id for r in results] == [q.id for q in questions]
    assert [r.answer for r in results] == ["ABCD"[i % 4] for i in range(16)]
    assert arrived == 16 and all(r.status == "answered" for r in results)


def test_thread_resumes_from_a_sqlite_checkpoint(tmp_path):
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class Crash(BaseException):
        """Escapes the graph's error handling, like a killed process."""

    calls = {"n": 0}

    def flaky(request: VLMRequest) -> str:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash()
        return zoom_call(12, 18) if calls["n"] == 1 else answer("B")

    async def scenario() -> tuple[object, list[ClipRef]]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
            agent = ZoomAgent(ScriptedVLM(flaky), CONFIG, checkpointer=saver)
            with pytest.raises(Crash):
                await agent.arun(QUESTION, info=INFO, thread_id="t1")
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "ckpt.sqlite")) as saver:
            agent = ZoomAgent(ScriptedVLM(flaky), CONFIG, checkpointer=saver)
            result = await agent.resume("t1")
            return result, [z.clip for z in result.zooms if z.clip]

    result, clips = asyncio.run(scenario())
    assert result.answer == "B" and calls["n"] == 3  # the zoom was not redone; one more model call
    assert len(clips) == 1


def test_blocking_ask_and_stream_on_a_real_video_file(tmp_path):
    from zoom_agent.datasets.synthetic import write_synthetic_video

    path = tmp_path / "clip.mp4"
    write_synthetic_video(path, duration=6.0, fps=5.0, size=(96, 64), num_events=1)
    agent = ZoomAgent(ScriptedVLM(lambda r: answer("A") if len(r.turns) > 2 else zoom_call(1, 3)), CONFIG)
    nodes = [node for node, _ in agent.stream(path, "Which colour?", ["red", "green"])]
    assert nodes == ["prepare", "model", "zoom", "observe", "model", "finalize"]
    result = agent.ask(path, "Which colour?", ["red", "green"])
    assert result.answer == "A" and result.zooms[0].clip is not None
    assert result.zooms[0].clip.path == str(path)


# --- the graph's shape: routers, state schema, imports ----------------------------------


class _Runtime:
    def __init__(self, config: AgentConfig) -> None:
        from zoom_agent.graphs.state import ZoomContext

        self.context = ZoomContext(model=ScriptedVLM([]), config=config)


def _turn(answer_letter: str | None) -> object:
    from zoom_agent.types import TurnTrace

    return TurnTrace(round=0, text="", answer=answer_letter)


def test_routers_decide_from_the_state_alone():
    from typing import get_type_hints

    from langgraph.types import Send

    from zoom_agent.graphs import routes
    from zoom_agent.types import ZoomTrace

    rt = _Runtime(CONFIG)  # 2 zoom rounds, 1 format retry
    call = {"name": "temporal_zoom", "arguments": {"start": 1, "end": 2}}
    base = {"question": QUESTION, "info": INFO, "retries": 0}
    sends = routes.after_model({**base, "trace": [_turn(None)], "calls": [call, call]}, rt)  # type: ignore[arg-type]
    assert isinstance(sends, list) and all(isinstance(s, Send) for s in sends)
    assert [s.arg["round"] for s in sends] == [1, 1] and [s.arg["index"] for s in sends] == [0, 1]
    done = [ZoomTrace(round=r, call=0, requested={}, text="") for r in (1, 2)]  # both rounds taken
    spent = {**base, "zooms": done, "calls": [call]}
    assert routes.after_model({**spent, "trace": [_turn("A")]}, rt) == "finalize"  # type: ignore[arg-type]
    assert routes.after_model({**spent, "trace": [_turn(None)]}, rt) == "retry"  # type: ignore[arg-type]
    assert routes.after_model({**spent, "trace": [_turn(None)], "retries": 1}, rt) == "finalize"  # type: ignore[arg-type]
    assert routes.after_model({**base, "error": "model failed", "calls": [call]}, rt) == "finalize"  # type: ignore[arg-type]
    assert routes.after_prepare({**base, "error": "no video"}, rt) == "finalize"  # type: ignore[arg-type]
    assert routes.after_prepare(base, rt) == "model"  # type: ignore[arg-type]
    long = AgentConfig(budget=CONFIG.budget, strategy="divide_and_conquer", chunk_frames=40)  # 20 s chunks
    chunks = routes.after_prepare(base, _Runtime(long))  # type: ignore[arg-type]
    assert isinstance(chunks, list) and [s.node for s in chunks] == ["chunk"] * 3
    for router in (routes.after_prepare, routes.after_model):
        assert "Literal" in str(get_type_hints(router)["return"])


def test_the_reminder_says_why_and_counts_the_retry():
    import asyncio as aio

    from zoom_agent.graphs.nodes import remind
    from zoom_agent.types import ZoomTrace

    rt = _Runtime(CONFIG)
    plain = aio.run(remind({"retries": 0, "question": QUESTION}, rt))  # type: ignore[arg-type]
    assert plain["retries"] == 1 and "no zoom rounds left" not in plain["turns"][0].text
    spent = {
        "retries": 0,
        "question": QUESTION,
        "calls": [{"name": "temporal_zoom"}],
        "zooms": [ZoomTrace(round=2, call=0, requested={}, text="")],
    }
    assert aio.run(remind(spent, rt))["turns"][0].text.startswith("You have no zoom rounds left.")  # type: ignore[arg-type]


def test_state_schemas_serve_langgraph_endpoints():
    # typing.TypedDict state breaks these on Python 3.11 (FIELD-NOTES); typing_extensions' works.
    from zoom_agent.graphs import build_zoom_graph

    graph = build_zoom_graph()
    assert set(graph.get_input_jsonschema()["properties"]) == {"question", "info"}
    assert graph.get_input_jsonschema()["required"] == ["question"]
    assert set(graph.get_output_jsonschema()["properties"]) == {"result", "trace", "zooms", "calls", "error"}


def test_graph_modules_import_one_way():
    """No import cycle between the graph's modules (nodes <-> divide was one)."""
    import ast
    from graphlib import TopologicalSorter
    from pathlib import Path

    import zoom_agent.graphs as pkg

    folder = Path(pkg.__file__).parent
    deps: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {
            f"{n.module}.{a.name}"
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module
            for a in n.names
        }
        deps[path.stem] = {m.rsplit(".", 1)[-1] for m in names if m.startswith("zoom_agent.graphs.")} - {path.stem}
    deps.pop("__init__")
    for mod in deps.values():
        mod.discard("__init__")
    tuple(TopologicalSorter(deps).static_order())  # raises CycleError on a cycle
    assert "divide" not in deps["nodes"] and "routes" not in deps["nodes"]
