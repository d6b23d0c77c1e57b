"""Open-ended questions in evaluation: normalised exact match and token F1 (SQuAD's rules), in
metrics.json and the report; warnings of a result reach its result line and the report."""

from __future__ import annotations

import asyncio
import json

import pytest

from zoom_agent import metrics
from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.eval.report import METRICS_FILE, REPORT_FILE, write_report
from zoom_agent.eval.results import read_results
from zoom_agent.eval.runner import run_eval
from zoom_agent.eval.tasks import Task
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import Question, VideoInfo

INFO = VideoInfo(path="/videos/a.mp4", duration=30.0, fps=10.0, num_frames=300, width=320, height=240)


def test_normalisation_and_token_f1_follow_squad():
    assert metrics.normalize_answer("The  Red car!") == "red car"
    assert metrics.normalize_answer("An apple, a pear") == "apple pear"
    assert metrics.answer_f1("red car", "the red car") == 1.0
    assert metrics.answer_f1("a red bus", "red car") == pytest.approx(0.5)  # 1 shared of 2 and 2
    assert metrics.answer_f1("blue", "red car") == 0.0
    assert metrics.answer_f1("the", "a") == 1.0  # both empty after normalisation


def test_open_ended_metrics_take_the_best_reference_and_count_unanswered_as_zero():
    gt = {"q1": ["stop sign", "a stop sign"], "q2": ["red car"], "q3": ["seven"], "q4": ["two"]}
    preds = {"q1": "A STOP sign.", "q2": "the red bus", "q3": None}
    out = metrics.open_ended_metrics(gt, preds)
    assert out["n"] == 4 and out["unanswered"] == 1 and out["missing"] == 1
    assert out["EM"] == pytest.approx(25.0)  # q1 only
    assert out["F1"] == pytest.approx((1.0 + 0.5) / 4 * 100)
    dropped = metrics.open_ended_metrics(gt, preds, missing="drop")
    assert dropped["n"] == 3
    with pytest.raises(ValueError, match=r"gt\['x'\] must be a non-empty list of reference answers"):
        metrics.open_ended_metrics({"x": []}, {})


def _questions() -> list[Question]:
    return [
        Question(id="o1", video=INFO.path, question="What does the sign say?", references=("stop",)),
        Question(id="o2", video=INFO.path, question="What colour is the car?", references=("dark red",)),
        Question(id="o3", video=INFO.path, question="How many birds?", references=("three", "3")),
    ]


def _reply(request) -> str:
    text = request.turns[-1].text
    if "sign" in text:
        return "<answer>Stop.</answer>\n<glue>[(20.0, 45.0)]</glue>"  # the span runs past the 30 s video
    if "colour" in text:
        return "<answer>red</answer>\n<glue>[(1.0, 2.0)]</glue>"
    return "I cannot tell."  # never answers: unanswered after the reminder


def test_an_eval_of_open_ended_questions_scores_them_and_lists_warnings(tmp_path):
    questions = _questions()
    agent = ZoomAgent(ScriptedVLM(_reply), AgentConfig(budget=Budget(visual_tokens=512), max_zoom_rounds=0))
    summary = asyncio.run(run_eval(agent, questions, tmp_path, infos={INFO.path: INFO}, progress=False))
    assert (summary.answered, summary.unanswered, summary.errors) == (2, 1, 0)
    lines = {line["id"]: line for line in read_results(tmp_path)}
    assert lines["o1"]["result"]["answer"] == "Stop."
    assert lines["o1"]["warnings"] == ["evidence span 20-45 s reaches outside the video (0-30 s): clamped to 20-30 s"]
    assert lines["o2"]["warnings"] == []
    task = Task("open", "multiple_choice", lambda: questions)
    doc = write_report(tmp_path, task, questions, read_results(tmp_path), model_label="scripted", plots=False)
    written = json.loads((tmp_path / METRICS_FILE).read_text())
    assert written["metrics"] == doc["metrics"]
    m = written["metrics"]
    assert m["open_n"] == 3 and m["open_unanswered"] == 1
    assert m["open_EM"] == pytest.approx(100 / 3)  # "Stop." == "stop"
    assert m["open_F1"] == pytest.approx((1.0 + 2 / 3) / 3 * 100)  # "red" vs "dark red": P 1, R 1/2
    listed = json.dumps(written["warnings"])
    assert listed.count("evidence span 20-45 s") == 1 and "o2" not in listed and "o3" not in listed
    report = (tmp_path / REPORT_FILE).read_text()
    assert "EM (open)" in report and "F1 (open)" in report
    assert "## Warnings" in report and report.count("evidence span 20-45 s") == 1  # each warning once
