"""Prompts with their code's structure (``prompts="official"``) and templates loaded from a
file: golden snapshot, the structure in both settings, and clear errors for bad files."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.protocol import format_answer
from zoom_agent.protocol.templates import PromptTemplates, load_templates, official_prompt, options_line
from zoom_agent.types import Question, VideoInfo

GOLDEN = Path(__file__).parent / "golden"
OPTIONS = ["The man sits down.", "The dog  runs\naway.", "Nothing happens."]
INFO = VideoInfo(path="/v/v.mp4", duration=60.0, fps=30.0, num_frames=1800, width=640, height=360)
QUESTION = Question(id="q", video=INFO.path, question="What happens after the man enters?", options=tuple(OPTIONS))


def test_official_prompt_snapshot() -> None:
    t = PromptTemplates()
    parts = [
        official_prompt(t, "What happens after the  man enters?", OPTIONS, seconds=60.0),
        official_prompt(t, "What happens?", OPTIONS, seconds=1800.0),  # the long-video layout
        official_prompt(t, "What happens?", OPTIONS, seconds=1800.0, reply="letter"),
        official_prompt(t, "What happens?", OPTIONS, seconds=256.0, reply="letter_and_spans"),
        official_prompt(t, "What happens?", OPTIONS, seconds=45.33, reasoning="The man waves ."),
    ]
    actual = "\n\n=====\n\n".join(parts) + "\n"
    path = GOLDEN / "prompts_official.txt"
    if os.environ.get("ZOOM_AGENT_UPDATE_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def test_options_on_one_line_and_the_duration_first() -> None:
    assert options_line(OPTIONS) == "(A) The man sits down. (B) The dog runs away. (C) Nothing happens."
    text = official_prompt(PromptTemplates(), "Q?", OPTIONS, seconds=12.345)
    assert text.startswith("This video lasts 12.35 seconds. Question: Q? Pick one option: (A)")
    assert "Do not list" in text and "<time>(3.5, 7.0)</time>" in text  # the layout with its examples
    assert "lasts" not in official_prompt(PromptTemplates(), "Q?", OPTIONS, seconds=9.0, reply="letter")


@pytest.mark.parametrize("prompts", ["ours", "official"])
def test_structure_in_both_settings(prompts: str) -> None:
    model = ScriptedVLM([format_answer("A", [(1.0, 2.0)], dialect="zoomzero")])
    config = AgentConfig(dialect="zoomzero", prompts=prompts, max_zoom_rounds=0)  # type: ignore[arg-type]
    asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=INFO))
    turns = model.requests[0].turns
    if prompts == "official":  # no system turn; one user turn, text before the video
        assert [t.role for t in turns] == ["user"]
        assert isinstance(turns[0].content[0], str) and turns[0].content[1] == turns[0].clips[0]
        assert "(A) The man sits down. (B)" in turns[0].text
    else:  # a system turn, the caption and the clip before the question, one option per line
        assert [t.role for t in turns] == ["system", "user"]
        assert turns[1].content[1] == turns[1].clips[0] and "\nA. The man sits down.\nB." in turns[1].text


def test_templates_from_a_file_replace_the_wording(tmp_path: Path) -> None:
    path = tmp_path / "prompts.toml"
    path.write_text('duration = "Length: {seconds} s. "\nquestion = "Q: {question} O: {options}"\n', encoding="utf-8")
    model = ScriptedVLM([format_answer("A", [(1.0, 2.0)], dialect="zoomzero")])
    config = AgentConfig(dialect="zoomzero", prompts="official", prompt_file=str(path), max_zoom_rounds=0)
    asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=INFO))
    text = model.requests[0].turns[0].text
    assert text.startswith("Length: 60 s. Q: What happens after the man enters? O: (A) The man")
    assert PromptTemplates().layout in text  # keys left out keep the built-in wording


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("colour = 'x'", "colour: Extra inputs are not permitted"),
        ("question = 'Q: {question}'", "template 'question' must hold {options}, {question}"),
        ("duration = 'It lasts {minutes}'", "template 'duration' must hold {seconds}"),
        ("duration = ", "expected a TOML file of template strings"),
    ],
)
def test_bad_template_files_name_the_file_and_the_key(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"prompt file .*bad\.toml") as info:
        load_templates(path)
    assert says in str(info.value)
    with pytest.raises(ValueError, match="expected a TOML file"):
        load_templates(tmp_path / "missing.toml")
