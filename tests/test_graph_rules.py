"""Rules for results that would otherwise be silently wrong (issue 12): open-ended questions get
a free-text answer, evidence spans are fitted to the video and flagged, zoom calls over the
per-turn cap are told to the model and recorded, a truncated video is a warning on the result."""

from __future__ import annotations

import asyncio
import json

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import Question, VideoInfo

INFO = VideoInfo(path="/videos/long.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
OPEN = Question(id="open", video=INFO.path, question="What is written on the sign?")
CHOICE = Question(id="mc", video=INFO.path, question="Which colour?", options=("red", "green"))
CONFIG = AgentConfig(budget=Budget(visual_tokens=1024))


def call(start: float, end: float) -> str:
    return (
        "<tool_call>"
        + json.dumps({"name": "temporal_zoom", "arguments": {"start": start, "end": end}})
        + "</tool_call>"
    )


def reply(answer: str, glue: str = "[(12.5, 17.0)]") -> str:
    return f"<think>I can read it now.</think>\n<answer>{answer}</answer>\n<glue>{glue}</glue>"


def run(model: ScriptedVLM, question: Question, config: AgentConfig = CONFIG):
    return asyncio.run(ZoomAgent(model, config).arun(question, info=INFO))


# --- open-ended questions ---------------------------------------------------------------


def test_open_ended_question_gets_a_free_text_answer():
    model = ScriptedVLM([call(10, 20), reply("  NO   PARKING ")])
    result = run(model, OPEN)
    assert result.status == "answered"
    assert result.answer == "NO PARKING" and result.answer_text == "NO PARKING" and result.answer_index is None
    assert [s.as_tuple() for s in result.spans] == [(12.5, 17.0)]
    prompt = model.requests[0].turns[-1].text
    assert "Options:" not in prompt and "<answer>YOUR ANSWER</answer>" in prompt
    follow_up = model.requests[1].turns[-1].text
    assert "<answer>YOUR ANSWER</answer>" in follow_up and "LETTER" not in follow_up


def test_open_ended_reminder_asks_for_text_and_unreadable_stays_unanswered():
    model = ScriptedVLM(["I think it says stop", "still no tags"])
    result = run(model, OPEN)
    assert result.status == "unanswered" and result.answer is None
    assert "<answer>YOUR ANSWER</answer>" in model.requests[1].turns[-1].text


def test_open_ended_under_the_official_prompts_asks_for_free_text():
    model = ScriptedVLM([reply("a stop sign", "[(3.0, 8.0)]")] * 2)  # coarse, then the zoomed glue
    result = run(model, OPEN, AgentConfig(budget=Budget(visual_tokens=1024), prompts="official", dialect="zoomzero"))
    text = model.requests[0].turns[0].text
    assert "Pick one option" not in text and "your answer, in a few words," in text
    assert "<time>" in text and "Do not list time ranges" in text  # the preset's wording rules stay
    assert result.status == "answered" and result.answer == "a stop sign"


def test_a_letter_question_still_takes_only_letters():
    result = run(ScriptedVLM([reply("green")] * 2), CHOICE)
    assert result.status == "unanswered"


# --- evidence spans outside the video -----------------------------------------------------


def test_spans_past_the_end_are_clamped_and_spans_outside_dropped_with_warnings():
    result = run(ScriptedVLM([reply("B", "[(50.0, 80.0), (70.0, 90.0), (60.0, 65.0), (5.0, 6.0)]")]), CHOICE)
    assert result.status == "answered"
    assert [s.as_tuple() for s in result.spans] == [(50.0, 60.0), (5.0, 6.0)]
    assert len(result.warnings) == 3
    assert "50-80 s reaches outside the video (0-60 s): clamped to 50-60 s" in result.warnings[0]
    assert "70-90 s lies outside the video" in result.warnings[1] and "dropped" in result.warnings[1]
    assert "60-65 s lies outside" in result.warnings[2]
    inside = run(ScriptedVLM([reply("B", "[(0.0, 60.0), (30.0, 30.0)]")]), CHOICE)
    assert inside.warnings == () and [s.as_tuple() for s in inside.spans] == [(0.0, 60.0), (30.0, 30.0)]


# --- zoom calls over the per-turn cap -------------------------------------------------------


def test_dropped_zoom_calls_are_told_to_the_model_and_recorded():
    fifty = "\n".join(call(i, i + 1) for i in range(50))
    model = ScriptedVLM([fifty, reply("A")])
    result = run(model, CHOICE)
    assert len(result.zooms) == 4 and result.turns[0].zoom_calls_dropped == 46
    assert result.turns[1].zoom_calls_dropped == 0
    told = model.requests[1].turns[-1].text
    assert "Only your first 4 of 50 zoom calls ran: at most 4 run per turn, so 46 were dropped." in told
    assert any("46 were dropped" in w for w in result.warnings)
    within = run(ScriptedVLM([call(1, 2) + call(3, 4), reply("A")]), CHOICE)
    assert within.warnings == () and within.turns[0].zoom_calls_dropped == 0
    # with no zoom rounds left none runs: the reminder says so, and nothing counts as dropped by the cap
    spent = run(
        ScriptedVLM([fifty, reply("A")]), CHOICE, AgentConfig(budget=Budget(visual_tokens=1024), max_zoom_rounds=0)
    )
    assert spent.turns[0].zoom_calls_dropped == 0 and spent.warnings == () and spent.zooms == ()


def test_the_fresh_fine_pass_records_dropped_calls_too():
    config = AgentConfig(budget=Budget(visual_tokens=1024), fine_pass="fresh", max_parallel_zooms=2)
    model = ScriptedVLM([call(1, 2) + call(10, 12) + call(30, 31), reply("A", "[(10.0, 12.0)]")])
    result = run(model, CHOICE, config)
    assert result.turns[0].zoom_calls_dropped == 1
    assert result.zooms[0].requested == {"windows": [[1.0, 2.0], [10.0, 12.0]]}


# --- a truncated video ---------------------------------------------------------------------


def test_a_truncated_video_is_a_warning_on_the_result(tmp_path):
    from video_files import BBB, needs

    from zoom_agent.datasets.synthetic_video import loop_video
    from zoom_agent.video import open_video

    whole = loop_video(needs(BBB), tmp_path / "bbb_faststart.mp4", options={"movflags": "faststart"})
    data = whole.read_bytes()
    cut = tmp_path / "bbb_cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index sits at the front: it still claims every frame
    assert open_video(whole).info.warnings == ()
    agent = ZoomAgent(ScriptedVLM(lambda r: reply("A", "[(0.5, 1.0)]")), AgentConfig(max_zoom_rounds=0))
    result = agent.ask(cut, "Which colour?", ["red", "green"])
    assert result.status == "answered"
    (warning,) = result.warnings
    info = open_video(cut).info
    assert str(cut) in warning and "(truncated)" in warning and f"read as a {info.duration:.1f} s video" in warning
    assert info.duration < open_video(whole).info.duration
    # the header read up front (zoom-agent ask checks the video first) carries the warning along
    given = asyncio.run(agent.arun(Question(id="t", video=str(cut), question="?", options=("a", "b")), info=info))
    assert given.warnings == (warning,)


# --- options: more than the letters, repeated ------------------------------------------------


def test_more_options_than_letters_are_refused_in_one_line_naming_the_question():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"question q7: 30 options; expected 1\.\.26 \(one letter A-Z each\)"):
        Question(id="q7", video="v.mp4", question="?", options=tuple(f"o{i}" for i in range(30)))


def test_repeated_options_are_refused_when_asked_and_flagged_when_loaded():
    import pytest

    from zoom_agent.agent import make_question

    with pytest.raises(ValueError, match=r"option C 'Red ' repeats option A 'red': expected distinct options"):
        make_question("v.mp4", "Which colour?", ["red", "green", "Red "])
    with pytest.raises(ValueError, match="30 options"):
        make_question("v.mp4", "Which colour?", [f"o{i}" for i in range(30)])
    # a benchmark ships a few (NExT-GQA 5256928210_7: A and E are both 'scarf'): kept, flagged
    loaded = Question(id="b1", video=INFO.path, question="What?", options=("scarf", "hat", "scarf"), answer=0)
    result = run(ScriptedVLM([reply("A")]), loaded)
    assert result.status == "answered"
    assert result.warnings == ("question b1: option C 'scarf' repeats option A 'scarf'",)


# --- counts and numbers a flag or config can carry ---------------------------------------------


def test_non_finite_numbers_in_the_agent_config_are_refused_naming_the_field():
    import math

    import pytest
    from pydantic import ValidationError

    for fields, name in [
        ({"zoom_pad": math.inf}, "zoom_pad"),
        ({"min_zoom_seconds": math.nan}, "min_zoom_seconds"),
        ({"budget": {"fps": math.inf}}, "budget.fps"),
        ({"long_video_seconds": math.inf}, "long_video_seconds"),
        ({"fine_share": math.nan}, "fine_share"),
    ]:
        with pytest.raises(ValidationError, match=rf"{name}\n  Input should be a finite number"):
            AgentConfig.model_validate(fields)
    with pytest.raises(ValidationError, match="min_frame_tokens"):
        Budget(min_frame_tokens=math.nan)


def test_the_command_line_refuses_infinite_zoom_pad_and_zero_videos(tmp_path, capsys):
    import pytest

    from zoom_agent.cli import main

    code = main(["ask", str(tmp_path / "v.mp4"), "q?", "--model", "oracle", "--zoom-pad", "inf"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--zoom-pad" in err and "finite number" in err
    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as exit_:
            main(["eval", "synthetic", "--model", "oracle", "--out", str(tmp_path / "o"), "--num-videos", bad])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "--num-videos" in err and "expected a whole number >= 1" in err
    assert not (tmp_path / "o").exists()


def test_the_synthetic_task_takes_its_video_count_as_given():
    import pytest

    from zoom_agent.eval.tasks import get_task

    assert get_task("synthetic", video_root="/tmp/x", num_videos=3).args["num_videos"] == 3
    with pytest.raises(ValueError, match=r"num_videos \(--num-videos\) must be >= 1, got 0"):
        get_task("synthetic", video_root="/tmp/x", num_videos=0)  # was read as "unset": 8 videos


def test_ask_prints_an_open_ended_answer_once_and_every_warning():
    from zoom_agent.cli.ask import describe

    result = run(ScriptedVLM([reply("NO PARKING", "[(50.0, 80.0)]")]), OPEN)
    text = describe(result)
    assert "answer: NO PARKING\n" in text and text.count("NO PARKING") == 2  # the reply line and the answer
    assert "warning: evidence span 50-80 s reaches outside the video" in text
    letter = describe(run(ScriptedVLM([reply("B")]), CHOICE))
    assert "answer: B green" in letter and "warning" not in letter
