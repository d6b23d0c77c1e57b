"""Task metric sets, the report files, and the ``zoom-agent eval`` command (run, resume, merge)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATA

from zoom_agent import metrics
from zoom_agent.cli import build_parser
from zoom_agent.eval import get_task, plots, read_results, write_report
from zoom_agent.eval.intervals import mean_interval, wilson_interval
from zoom_agent.eval.plots import write_plots
from zoom_agent.eval.report import question_zooms
from zoom_agent.eval.tasks import Task, index_results
from zoom_agent.models.oracle import PIPELINE_CHECK_LABEL
from zoom_agent.types import ClipRef, GroundedAnswer, Question, Span, TurnTrace, ZoomTrace

DATA = SHARED_DATA


def question(i: int, *, answer: int | None = 0, spans: tuple[tuple[float, float], ...] = ((10.0, 20.0),)) -> Question:
    return Question(
        id=f"v{i}_{i}",
        video=f"/v/{i}.mp4",
        question=f"q{i}",
        options=("a", "b", "c", "d") if answer is not None else None,
        answer=answer,
        gt_spans=tuple(Span(start=s, end=e) for s, e in spans),
        duration=60.0,
        qtype="t" + str(i % 2),
    )


def line(qid: str, status: str = "answered", answer: str | None = "A", spans=((10.0, 20.0),), text: str = "") -> dict:
    result = GroundedAnswer(
        question_id=qid,
        status=status,  # type: ignore[arg-type]
        answer=answer if status == "answered" else None,
        spans=tuple(Span(start=s, end=e) for s, e in spans) if status == "answered" else (),
        turns=(TurnTrace(round=0, text=text),) if text else (),
        rounds=1,
        error="failed" if status == "error" else None,
    )
    return {"id": qid, "status": status, "wall_s": 0.5, "result": result.model_dump(mode="json")}


def grounded(questions: list[Question]) -> Task:
    return Task("synthetic", "grounded_qa", lambda: questions)


# --- metric sets ----------------------------------------------------------------------


def test_grounded_qa_scores_the_first_span_and_counts_missing_as_zero() -> None:
    qs = [question(0), question(1), question(2)]
    results = [
        line("v0_0"),  # right, exact span
        line("v1_1", answer="B", spans=((15.0, 25.0), (10.0, 20.0))),  # wrong; first span IoU 1/3
    ]  # v2_2 has no line
    m = grounded(qs).metrics(qs, results)
    assert m["mIoU"] == pytest.approx((1 + 1 / 3 + 0) / 3 * 100)
    assert m["IoU@0.3"] == pytest.approx(200 / 3) and m["IoU@0.5"] == pytest.approx(100 / 3)
    assert m["mIoP"] == pytest.approx((1 + 0.5) / 3 * 100)
    assert m["Acc@QA"] == m["Acc@GQA"] == m["accuracy"] == pytest.approx(100 / 3)
    assert (m["n"], m["missing"]) == (3, 1)
    # all spans, merged: v1's second span covers the gt too -> IoU 10/15
    assert m["mIoU_all"] == pytest.approx((1 + 10 / 15 + 0) / 3 * 100)


def test_strict_and_lenient_answers_never_guess() -> None:
    qs = [question(i, answer=k) for i, k in enumerate((1, 2, 0, 3))]
    task = Task("videomme", "multiple_choice", lambda: qs)
    results = [
        line("v0_0", answer="B"),
        line("v1_1", status="unanswered", text="I think the answer is C."),  # lenient only
        line("v2_2", status="error", text="<answer>A</answer>"),  # an error has no answer
    ]  # v3_3 missing
    m = task.metrics(qs, results)
    assert m["accuracy"] == 25.0 and m["accuracy_lenient"] == 50.0
    assert (m["parse_failures"], m["parse_failures_lenient"], m["missing"]) == (2, 1, 1)


def test_rextime_grounding_only_leaves_the_answer_metrics_out() -> None:
    qs = [question(0, answer=None), question(1, answer=None)]
    task = Task("rextime", "rextime", lambda: qs)
    m = task.metrics(qs, [line("v0_0", answer="A"), line("v1_1", spans=((0.0, 5.0),))])
    assert "Acc" not in m and "accuracy" not in m
    assert m["mIoU"] == 50.0 and m["R1@0.5"] == 50.0
    with_answers = [question(0), question(1)]
    m = Task("rextime", "rextime", lambda: with_answers).metrics(with_answers, [line("v0_0"), line("v1_1")])
    assert m["Acc"] == 100.0 and m["Acc@IoU0.5"] == 100.0


def test_charades_task_loads_files_and_scores(tmp_path: Path) -> None:
    (tmp_path / "ann.txt").write_text("AAA 1.0 5.0##a person opens a door\nBBB 2.0 4.0##a person sits\n")
    (tmp_path / "durations.csv").write_text("id,length\nAAA,30\nBBB,20\n")
    task = get_task("charades", ann=tmp_path / "ann.txt", durations=tmp_path / "durations.csv", video_root=tmp_path)
    qs = task.questions()
    assert [q.id for q in qs] == ["AAA_0", "BBB_1"]
    m = task.metrics(qs, [line("AAA_0", answer=None, spans=((1.0, 5.0),))])
    assert (m["R1@0.7"], m["mIoU"], m["missing"]) == (50.0, 50.0, 1)


@pytest.mark.skipif(not (DATA / "nextgqa").is_dir(), reason="../shared/data/nextgqa is absent")
def test_nextgqa_task_matches_the_metric_on_the_gsub_file(tmp_path: Path) -> None:
    task = get_task("nextgqa", ann=DATA / "nextgqa", video_root=tmp_path, split="val")
    qs = task.questions()
    rng = random.Random(7)
    results, predictions, correct = [], {}, {}
    for q in qs[::3]:
        s = rng.uniform(0, q.duration or 30)
        e = s + rng.uniform(0, 15)
        letter = rng.choice("ABCDE")
        results.append(line(q.id, answer=letter, spans=((s, e),)))
        predictions[q.id], correct[q.id] = (s, e), letter == q.answer_letter
    gsub = json.loads((DATA / "nextgqa" / "gsub_val.json").read_text())
    official = metrics.nextgqa_metrics(gsub, predictions, correct)
    ours = task.metrics(qs, results)
    for key, value in official.items():
        if key != "missing_answers":  # ours: every question without a line is counted in "missing"
            assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert ours["missing"] == len(qs) - len(results)


@pytest.mark.skipif(not (DATA / "rextime").is_dir(), reason="../shared/data/rextime is absent")
def test_rextime_task_matches_the_metric_on_the_jsonl(tmp_path: Path) -> None:
    path = DATA / "rextime" / "rextime_val.jsonl"
    task = get_task("rextime", ann=path, video_root=tmp_path)
    qs = task.questions()
    rng = random.Random(3)
    results, predictions = [], {}
    for q in qs:
        s = rng.uniform(0, q.duration or 30)
        e = s + rng.uniform(0, 30)
        results.append(line(q.id, spans=((s, e),)))
        predictions[q.id] = {"pred_relevant_windows": [[s, e]]}
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    official = metrics.rextime_metrics(rows, predictions)
    ours = task.metrics(qs, results)
    for key in ("mIoU", "R1@0.3", "R1@0.5", "R1@0.7", "n", "missing"):
        assert ours[key] == official[key], key


# --- report files ---------------------------------------------------------------------


def test_report_files_counts_and_pipeline_label(tmp_path: Path) -> None:
    qs = [question(i) for i in range(5)]
    results = [
        line("v0_0"),
        line("v1_1", answer="C"),
        line("v2_2", status="unanswered"),
        line("v3_3", status="error"),
    ]
    results.append(line("other_9"))  # not in the selection: ignored
    doc = write_report(
        tmp_path,
        grounded(qs),
        qs,
        results,
        model_label="oracle(noise=0)",
        pipeline_check=PIPELINE_CHECK_LABEL,
    )
    assert doc["counts"] == {"n": 5, "answered": 2, "unanswered": 1, "errors": 1, "missing": 1}
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == doc and on_disk["pipeline_check"] == PIPELINE_CHECK_LABEL
    assert on_disk["metrics"]["Acc@QA"] == 20.0 and on_disk["metrics"]["n"] == 5
    t0 = on_disk["by_type"]["t0"]  # v0 right (IoU 1), v2 unanswered (0), v4 missing (0)
    assert (t0["n"], t0["accuracy"], t0["mIoU"]) == (3, pytest.approx(100 / 3), pytest.approx(100 / 3))
    assert t0["accuracy_ci95"] == pytest.approx([x * 100 for x in wilson_interval(1, 3)])  # type: ignore[union-attr]
    assert t0["mIoU_ci95"] == [0.0, 100.0]  # 3 values, one of them 1: the bootstrap's extremes
    assert on_disk["rounds"] == {"1": 4} and on_disk["run_kind"] == "pipeline check"
    assert on_disk["chance_accuracy"] == 25.0  # four options each
    md = (tmp_path / "report.md").read_text()
    assert PIPELINE_CHECK_LABEL in md and "| synthetic | oracle(noise=0) | 40.0 |" in md
    assert "1 of 5 questions errored" in md and "1 of 5 questions have no result yet" in md
    for png in ("iou_hist.png", "accuracy_by_type.png", "zoom_rounds.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in md


def zoomed(qid: str, windows: list[tuple[float, float]], **kwargs: Any) -> dict:
    """A result line whose agent zoomed into ``windows`` (round 1, one call each)."""
    out = line(qid, **kwargs)
    zooms = [
        ZoomTrace(
            round=1,
            call=i,
            requested={"start": s, "end": e},
            text="ok",
            clip=ClipRef(
                path="/v/x.mp4",
                span=Span(start=s, end=e),
                frame_indices=(0,),
                timestamps=(s,),
                fps=1.0,
                num_source_frames=60,
                width=28,
                height=28,
                visual_tokens=1,
                role="zoom",
            ),
        )
        for i, (s, e) in enumerate(windows)
    ]
    out["result"]["zooms"] = [z.model_dump(mode="json") for z in zooms]
    return out


def test_an_all_error_run_says_so_before_any_number(tmp_path: Path) -> None:
    qs = [question(i) for i in range(3)]
    doc = write_report(tmp_path, grounded(qs), qs, [line(q.id, status="error") for q in qs], model_label="m")
    assert doc["metrics"]["Acc@QA"] == 0.0 and doc["notes"][0].startswith("3 of 3 questions errored")
    assert "not results" in doc["notes"][0]
    md = (tmp_path / "report.md").read_text()
    assert md.index("3 of 3 questions errored") < md.index("| synthetic | m |")  # the banner leads
    # a clean run has no notes
    clean = write_report(tmp_path / "ok", grounded(qs), qs, [line(q.id) for q in qs], model_label="m")
    assert clean["notes"] == [] and clean["run_kind"] == "real model"


def test_zoom_iou_per_question_and_its_mean(tmp_path: Path) -> None:
    qs = [question(0), question(1), question(2), question(3, spans=())]
    results = [
        zoomed("v0_0", [(10.0, 20.0)]),  # exactly the truth: 1
        zoomed("v1_1", [(40.0, 50.0), (15.0, 25.0)]),  # the best window counts: 5/15
        line("v2_2"),  # never zoomed: left out of the mean
        zoomed("v3_3", [(0.0, 5.0)]),  # no true spans: left out
    ]
    per_question = question_zooms(qs, index_results(results))
    assert [(z.calls, z.iou) for z in per_question] == [(1, 1.0), (2, pytest.approx(1 / 3)), (0, None), (1, None)]
    doc = write_report(tmp_path, grounded(qs), qs, results, model_label="m", run_kind="scripted")
    assert doc["zoom"]["n"] == 2 and doc["zoom"]["mean_iou"] == pytest.approx((1 + 1 / 3) / 2 * 100)
    ci = mean_interval([1.0, 1 / 3])
    assert ci is not None and doc["zoom"]["mean_iou_ci95"] == pytest.approx([ci[0] * 100, ci[1] * 100])
    assert doc["zoom_calls"] == {"0": 1, "1": 2, "2": 1}
    assert "zoom vs truth" in (tmp_path / "report.md").read_text()


def test_intervals_are_wilson_and_a_seeded_bootstrap() -> None:
    lo, hi = wilson_interval(8, 10)  # type: ignore[misc]
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # the textbook Wilson interval
    assert wilson_interval(0, 0) is None and mean_interval([0.5]) is None
    values = [0.1, 0.9, 0.4, 0.7, 0.2]
    ci = mean_interval(values)
    assert ci is not None and ci == mean_interval(values)  # seeded: the same every time
    assert ci[0] < sum(values) / len(values) < ci[1]


def test_plots_name_the_model_and_kind_with_intervals_chance_and_a_real_distribution(tmp_path: Path) -> None:
    qs = [question(i) for i in range(6)] + [
        Question(id=f"m{i}", video="/v/m.mp4", question="q", options=("a", "b"), answer=0, duration=60.0, qtype="t1")
        for i in range(2)
    ]
    results = [zoomed("v0_0", [(10.0, 20.0)]), zoomed("v1_1", [(12.0, 30.0), (0.0, 5.0)]), line("v2_2", answer="B")]
    results += [line("v3_3"), zoomed("v4_4", [(50.0, 55.0)]), line("m0", answer="A")]
    doc = write_report(tmp_path, grounded(qs), qs, results, model_label="my-model", plots=False)
    assert doc["chance_accuracy"] == pytest.approx((6 * 25 + 2 * 50) / 8)  # mean of 1 / options
    scores = grounded(qs).scores(qs, results)
    zooms = question_zooms(qs, index_results(results))
    by_type = plots._by_type(doc, scores, zooms)
    assert "my-model (real model)" in by_type._suptitle.get_text()
    acc = by_type.axes[0]
    chance = [ln for ln in acc.get_lines() if ln.get_label().startswith("chance")]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == pytest.approx(doc["chance_accuracy"])
    assert all(c.errorbar is not None for c in acc.containers if hasattr(c, "errorbar"))  # 95% intervals
    assert any("(n=" in t.get_text() for t in acc.get_xticklabels())
    rounds = plots._zoom_rounds(doc, scores, zooms)
    left, right = rounds.axes
    heights = sorted(p.get_height() for p in left.patches if p.get_height() > 0)
    assert heights == sorted([*doc["rounds"].values(), *doc["zoom_calls"].values()])
    assert sum(p.get_height() for p in right.patches) == doc["zoom"]["n"] == 3  # zoom-vs-truth IoU histogram
    assert write_plots(tmp_path, doc, scores, zooms) == ["iou_hist.png", "accuracy_by_type.png", "zoom_rounds.png"]


def test_report_with_nothing_to_score_is_strict_json_with_nulls(tmp_path: Path) -> None:
    qs: list[Question] = []
    doc = write_report(tmp_path, grounded(qs), qs, [], model_label="m")
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text and doc["metrics"]["mIoU"] is None and doc["plots"] == []
    assert "| synthetic | m | – |" in (tmp_path / "report.md").read_text()
    assert PIPELINE_CHECK_LABEL not in (tmp_path / "report.md").read_text()


# --- the command ----------------------------------------------------------------------


def eval_command(argv: list[str]) -> int:
    """``zoom-agent eval ...`` through the top-level command's parser (errors raise here)."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic-videos")


def synthetic(out: Path, videos: Path, *extra: str) -> list[str]:
    return ["eval", "synthetic", "--model", "oracle:0.3", "--out", str(out), "--video-root", str(videos),
            "--num-videos", "2", "--no-progress", *extra]  # fmt: skip


def comparable(folder: Path) -> dict[str, Any]:
    doc = json.loads((folder / "metrics.json").read_text())
    return {k: doc[k] for k in ("task", "model", "pipeline_check", "counts", "metrics", "by_type", "rounds")}


def test_eval_synthetic_with_the_oracle_writes_a_labelled_report_and_resumes(
    tmp_path: Path, videos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert eval_command(synthetic(tmp_path, videos)) == 0
    doc = comparable(tmp_path)
    n = doc["counts"]["n"]
    assert n > 20 and doc["counts"]["answered"] == n and doc["pipeline_check"] == PIPELINE_CHECK_LABEL
    raw = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert all("zoom_iou" in x for x in raw) and sum(x["zoom_iou"] is not None for x in raw) > n // 2
    assert json.loads((tmp_path / "metrics.json").read_text())["zoom"]["n"] == sum(
        x["zoom_iou"] is not None for x in raw
    )
    assert 0 < doc["metrics"]["Acc@QA"] < 100 and doc["metrics"]["mIoU"] > 50
    assert PIPELINE_CHECK_LABEL in (tmp_path / "report.md").read_text()
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "iou_hist.png",
        "accuracy_by_type.png",
        "zoom_rounds.png",
    }
    capsys.readouterr()
    assert eval_command(synthetic(tmp_path, videos)) == 0
    assert f"({n} resumed, 0 run" in capsys.readouterr().out
    assert comparable(tmp_path) == doc and len(read_results(tmp_path)) == n


def test_eval_shards_merged_equal_the_unsharded_run(tmp_path: Path, videos: Path) -> None:
    assert eval_command(synthetic(tmp_path / "all", videos)) == 0
    for k in range(3):
        assert eval_command(synthetic(tmp_path / f"s{k}", videos, "--shard", f"{k}/3")) == 0
    shards = [str(tmp_path / f"s{k}") for k in range(3)]
    assert eval_command(["eval", "merge", str(tmp_path / "merged"), *shards]) == 0
    assert comparable(tmp_path / "merged") == comparable(tmp_path / "all")
    # one shard short: its questions are missing, not dropped
    assert eval_command(["eval", "merge", str(tmp_path / "partial"), *shards[:2]]) == 0
    partial = comparable(tmp_path / "partial")
    assert partial["counts"]["missing"] == comparable(tmp_path / "s2")["counts"]["n"]
    assert partial["metrics"]["n"] == partial["counts"]["n"]


def test_eval_merge_refuses_shards_of_different_runs(tmp_path: Path, videos: Path) -> None:
    assert eval_command(synthetic(tmp_path / "a", videos, "--limit", "4")) == 0
    other = synthetic(tmp_path / "b", videos, "--limit", "4")
    other[other.index("oracle:0.3")] = "oracle:0.5"
    assert eval_command(other) == 0
    with pytest.raises(ValueError, match="holds another run"):
        eval_command(["eval", "merge", str(tmp_path / "m"), str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(ValueError, match="holds results of another run"):  # nor resume into it
        eval_command(_into(other, tmp_path / "a"))


def _into(argv: list[str], out: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(out)
    return argv


def test_eval_command_errors_are_clear(tmp_path: Path, videos: Path) -> None:
    assert eval_command(["eval"]) == 2  # usage
    with pytest.raises(SystemExit):
        eval_command(synthetic(tmp_path, videos, "--shard", "3/3"))
    with pytest.raises(ValueError, match="oracle:NOISE needs a number"):
        eval_command(_model(synthetic(tmp_path, videos), "oracle:lots"))
    with pytest.raises(ValueError, match="no-model' is not a local folder"):  # checked before any work
        eval_command(_model(synthetic(tmp_path, videos), str(tmp_path / "no-model")))
    with pytest.raises(SystemExit):  # nextgqa needs --ann and --video-root
        eval_command(["eval", "nextgqa", "--model", "oracle", "--out", str(tmp_path)])


def _model(argv: list[str], spec: str) -> list[str]:
    argv = list(argv)
    argv[argv.index("--model") + 1] = spec
    return argv


@pytest.mark.slow
def test_eval_synthetic_with_a_tiny_model_dir(tmp_path: Path, videos: Path) -> None:
    from zoom_agent.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    argv = _model(synthetic(tmp_path / "run", videos, "--limit", "3", "--visual-tokens", "256"), str(model))
    assert eval_command(argv) == 0
    doc = comparable(tmp_path / "run")
    assert doc["counts"]["n"] == 3 and doc["pipeline_check"] is None and doc["model"] == str(model)
    assert sum(doc["counts"][k] for k in ("answered", "unanswered", "errors")) == 3
    assert (tmp_path / "run" / "report.md").is_file() and math.isfinite(doc["metrics"]["mIoU"])
