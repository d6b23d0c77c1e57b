"""Long work shows progress (issue 12): plain-text lines when stderr is not a terminal, stage
lines for ``ask`` (the coarse view, each zoom round, the answer), a progress report while
synthetic videos are made, and ``--help`` that documents every argument. No test here
depends on timing: the plain lines are forced by ``ZOOM_AGENT_PROGRESS`` or a captured
stderr, and counted by items."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from zoom_agent.agent import ZoomAgent, make_question
from zoom_agent.cli import build_parser, main
from zoom_agent.cli.ask import show_steps
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models import ScriptedVLM
from zoom_agent.progress import ENV_VAR, progress_bar, progress_mode
from zoom_agent.protocol import format_answer, format_tool_call


def test_plain_lines_every_tenth_of_the_work_with_counts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_VAR, "plain")
    bar = progress_bar(20, desc="eval", unit="q")
    for i in range(20):
        bar.update(1)
        if i == 4:
            bar.set_postfix(errors=1, infra=0)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines][:10] == [f"eval: {n}/20 done" for n in range(2, 21, 2)]
    assert lines[-1].startswith("eval: 20/20 done, 1 errors, ") and lines[-1].endswith(" s/q")
    assert "infra" not in lines[-1]  # a zero count is left out


def test_plain_is_the_default_off_a_terminal_and_off_is_silent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert progress_mode() == "plain"  # pytest's captured stderr is no terminal
    monkeypatch.setenv(ENV_VAR, "off")
    bar = progress_bar(3, desc="x")
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(ENV_VAR, "loud")
    with pytest.raises(ValueError, match="ZOOM_AGENT_PROGRESS='loud': expected one of bar, plain, off"):
        progress_mode()


def test_resumed_items_count_but_do_not_set_the_rate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV_VAR, "plain")
    bar = progress_bar(10, desc="eval", unit="q", initial=8)
    bar.close()  # nothing ran: no line
    bar = progress_bar(10, desc="eval", unit="q", initial=8)
    bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("eval: 9/10 done, ") and len(lines) == 1


def test_eval_off_a_terminal_reports_videos_and_questions_in_plain_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)  # the default off a terminal
    out = tmp_path / "run"
    argv = ["eval", "synthetic", "--model", "oracle", "--out", str(out), "--num-videos", "2", "--limit", "10"]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"synthetic videos in {out / 'videos'}: 2/2 done") for line in err), err
    assert any(line.startswith("eval: 10/10 done") for line in err), err
    assert sum(line.startswith("eval: ") for line in err) >= 5  # every tenth of the questions (or 10 s)


def test_no_progress_silences_the_eval_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", "synthetic", "--model", "oracle", "--out", str(tmp_path), "--num-videos", "1", "--limit", "2"]
    assert main([*argv, "--no-progress"]) == 0
    assert not any(line.startswith("eval: ") for line in capsys.readouterr().err.splitlines())


def test_ask_shows_a_stage_line_per_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "v.mp4"
    write_synthetic_video(video, duration=8.0, fps=5.0, size=(96, 64), num_events=1)
    script = [format_tool_call(2.0, 5.0), format_answer("B", [(2.0, 5.0)])]
    agent = ZoomAgent(ScriptedVLM(script), AgentConfig(budget=Budget(visual_tokens=256)))
    question = make_question(video, "Which shape?", ["circle", "square"])
    result = asyncio.run(agent.arun(question, on_step=show_steps("ask")))
    assert result.status == "answered" and result.answer == "B"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("ask: coarse view 0.0-8.0 s: ") and lines[0].endswith("(round 0)")
    assert lines[1:] == [
        "ask: round 0: the model asks for 1 zoom",
        f"ask: zoom round 1: {result.zooms[0].clip.describe()}",  # type: ignore[union-attr]
        "ask: the model reads the zoomed views",
        "ask: round 1: the model answers B",
    ]


def all_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every parser of the command, the groups (``eval``) and the root included."""
    out = {path: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out |= all_parsers(child, (*path, name))
    return out


def test_help_top_lines_are_sentences_and_every_argument_has_help() -> None:
    for words, parser in all_parsers(build_parser()).items():
        top = (parser.description or "").strip()
        assert top[:1].isupper() and top.endswith(".") and "``" not in top and "\n" not in top, (words, top)
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), (words, action.dest)
        body = parser.format_help()
        assert "%(default)" not in body and "None)" not in body, (words, body)
