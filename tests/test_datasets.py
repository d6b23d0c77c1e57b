"""Benchmark loaders: the real NExT-GQA / ReXTime files, hand-made variants, bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED_DATA

from zoom_agent.datasets.charades import load_charades, load_durations
from zoom_agent.datasets.multiple_choice import FieldMap, load_multiple_choice
from zoom_agent.datasets.nextgqa import KNOWN_ANSWER_INDEX, load_nextgqa
from zoom_agent.datasets.paths import DatasetFormatError, resolve_video
from zoom_agent.datasets.rextime import load_rextime

DATA = SHARED_DATA
NEXTGQA = DATA / "nextgqa"
REXTIME = DATA / "rextime" / "rextime_val.jsonl"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not in this checkout)")
    return path


# ---------------------------------------------------------------- resolve_video
def test_resolve_video_accepts_paths_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    (root / "a").mkdir(parents=True)
    assert resolve_video(root, "a/x.mp4") == str(root / "a" / "x.mp4")
    assert resolve_video(root, "a/../b.mp4") == str(root / "b.mp4")  # `..` that stays inside
    assert resolve_video(str(root), str(root / "a" / "x.mp4")) == str(root / "a" / "x.mp4")


@pytest.mark.parametrize("relative", ["../x.mp4", "a/../../x.mp4", "/etc/passwd", "", "   ", "a\x00b"])
def test_resolve_video_refuses_escapes_and_empty(tmp_path: Path, relative: str) -> None:
    with pytest.raises(ValueError, match=r"escapes|empty") as info:
        resolve_video(tmp_path / "videos", relative)
    assert str(tmp_path / "videos") in str(info.value) or not relative.strip() or "\x00" in relative


def test_resolve_video_refuses_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "videos", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (outside / "x.mp4").write_bytes(b"")
    os.symlink(outside, root / "link")
    os.symlink(root / "real.mp4", root / "inner.mp4")  # a link that stays inside is fine
    with pytest.raises(ValueError, match="symlink") as info:
        resolve_video(root, "link/x.mp4")
    assert "link/x.mp4" in str(info.value) and str(root) in str(info.value)
    assert resolve_video(root, "inner.mp4") == str(root / "real.mp4")


def test_resolve_video_check_exists(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_bytes(b"\0")
    (tmp_path / "dir.mp4").mkdir()
    assert resolve_video(tmp_path, "x.mp4", check_exists=True) == str(tmp_path / "x.mp4")
    for name in ("missing.mp4", "dir.mp4"):
        with pytest.raises(ValueError, match="not an existing file"):
            resolve_video(tmp_path, name, check_exists=True)
    assert resolve_video(tmp_path, "missing.mp4").endswith("missing.mp4")  # default: no check


# ---------------------------------------------------------------- NExT-GQA, real files
@pytest.mark.parametrize(("split", "count"), [("val", 3358), ("test", 5553)])
def test_nextgqa_real_files_every_csv_row_is_grounded(split: str, count: int) -> None:
    _need(NEXTGQA)
    with (NEXTGQA / f"{split}.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    gsub = json.loads((NEXTGQA / f"gsub_{split}.json").read_text())
    gsub_keys = {f"{v}_{q}" for v, e in gsub.items() for q in e["location"]}
    csv_keys = [f"{r['video_id']}_{r['qid']}" for r in rows]
    assert len(rows) == len(set(csv_keys)) == len(gsub_keys) == count
    assert set(csv_keys) == gsub_keys  # the csv and gsub cover the same questions

    qs = load_nextgqa(NEXTGQA, split, "/videos")  # type: ignore[arg-type]
    assert [q.id for q in qs] == csv_keys
    for q, r in zip(qs, rows, strict=True):
        assert q.options is not None and q.answer is not None
        assert q.options[q.answer] == r["answer"] and q.qtype == r["type"] and q.task == "nextgqa"
        assert q.video == f"/videos/{r['video_id']}.mp4"
        assert [[s.start, s.end] for s in q.gt_spans] == gsub[r["video_id"]]["location"][r["qid"]]
        assert q.duration == gsub[r["video_id"]]["duration"]


def test_nextgqa_the_row_with_a_repeated_answer_text() -> None:
    _need(NEXTGQA)
    qs = {q.id: q for q in load_nextgqa(NEXTGQA, "test", "/videos")}
    q = qs["3842638015_4"]
    assert q.options is not None and q.options[3] == q.options[4] == "happy"
    assert q.answer == KNOWN_ANSWER_INDEX["3842638015_4"] == 4  # as NExT-QA's original test.csv
    assert len([i for i in qs.values() if i.options and len(set(i.options)) < 5]) == 3


def _write_nextgqa(folder: Path, rows: list[list[str]], gsub: dict) -> Path:
    header = "video_id,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4"
    lines = [header, *(",".join(r) for r in rows)]
    (folder / "val.csv").write_text("\n".join(lines) + "\n")
    (folder / "gsub_val.json").write_text(json.dumps(gsub))
    return folder


def _row(vid: str, qid: str, answer: str, options: list[str]) -> list[str]:
    return [vid, "100", "640", "480", "what", answer, qid, "CW", *options]


def test_nextgqa_ambiguous_answer_policies_and_gsub_filter(tmp_path: Path) -> None:
    rows = [
        _row("7", "1", "b", ["a", "b", "b", "c", "d"]),  # ambiguous, not pinned
        _row("7", "2", "a", ["a", "b", "c", "d", "e"]),
        _row("8", "1", "a", ["a", "b", "c", "d", "e"]),  # no gsub entry: not graded, skipped
    ]
    gsub = {"7": {"duration": 30, "fps": 30, "location": {"1": [[1, 2]], "2": [[3, 4], [5, 6.5]]}}}
    ann = _write_nextgqa(tmp_path, rows, gsub)
    with pytest.raises(ValueError, match=r"val.csv:row 2: answer 'b' appears at option indices \[1, 2\]"):
        load_nextgqa(ann, "val", tmp_path)
    first = load_nextgqa(ann, "val", tmp_path, on_ambiguous="first")
    assert [(q.id, q.answer) for q in first] == [("7_1", 1), ("7_2", 0)]
    assert len(first[1].gt_spans) == 2 and first[1].gt_spans[1].end == 6.5
    assert [q.id for q in load_nextgqa(ann, "val", tmp_path, on_ambiguous="skip")] == ["7_2"]


def test_nextgqa_id_map_and_pattern(tmp_path: Path) -> None:
    ann = _write_nextgqa(
        tmp_path,
        [_row("7", "1", "a", ["a", "b", "c", "d", "e"])],
        {"7": {"duration": 30, "fps": 30, "location": {"1": [[1, 2]]}}},
    )
    (tmp_path / "map.json").write_text(json.dumps({"7": "0101/7"}))
    root = tmp_path / "videos"
    (q,) = load_nextgqa(ann, "val", root, id_map=tmp_path / "map.json")
    assert q.video == str(root / "0101" / "7.mp4")
    (q,) = load_nextgqa(ann, "val", root, video_pattern="clips/{video_id}.webm")
    assert q.video == str(root / "clips" / "7.webm")
    with pytest.raises(ValueError, match="unknown field"):
        load_nextgqa(ann, "val", root, video_pattern="{vid}.mp4")
    (tmp_path / "map.json").write_text(json.dumps({"9": "0101/9"}))
    with pytest.raises(ValueError, match="not in the id map"):
        load_nextgqa(ann, "val", root, id_map=tmp_path / "map.json")
    (tmp_path / "map.json").write_text(json.dumps({"7": "../../etc/7"}))
    with pytest.raises(ValueError, match="escapes"):
        load_nextgqa(ann, "val", root, id_map=tmp_path / "map.json")


@pytest.mark.parametrize(
    ("rows", "gsub", "message"),
    [
        ([_row("7", "1", "z", ["a", "b", "c", "d", "e"])], None, r"row 2: answer 'z' is not one of"),
        ([["7", "1", "2"]], None, r"row 2: the row has too few fields"),
        ([_row("7", "1", "a", ["a", "b", "c", "d", "e"])], {"7": {"duration": 0}}, r"gsub_val.json:7"),
        (
            [_row("7", "1", "a", ["a", "b", "c", "d", "e"])],
            {"7": {"duration": 9, "location": {"1": [[3, 2]]}}},
            r"gsub_val.json:7_1: segment \[3, 2\] has start > end",
        ),
    ],
)
def test_nextgqa_malformed_files_name_file_and_row(
    tmp_path: Path, rows: list[list[str]], gsub: dict | None, message: str
) -> None:
    gsub = gsub or {"7": {"duration": 30, "fps": 30, "location": {"1": [[1, 2]]}}}
    ann = _write_nextgqa(tmp_path, rows, gsub)
    with pytest.raises(ValueError, match=message):
        load_nextgqa(ann, "val", tmp_path)


def test_nextgqa_missing_files_and_bad_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"gsub_val\.json: cannot read"):
        load_nextgqa(tmp_path, "val", tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_nextgqa(tmp_path, "train", tmp_path)  # type: ignore[arg-type]


# ---------------------------------------------------------------- ReXTime
def test_rextime_real_file_grounding_only() -> None:
    rows = [json.loads(line) for line in _need(REXTIME).read_text().splitlines()]
    qs = load_rextime(REXTIME, "/v", video_pattern="{source}/{vid}.mp4")
    assert len(qs) == len(rows) == 921
    for q, r in zip(qs, rows, strict=True):
        assert q.id == r["qid"] and q.question == r["query"] and q.duration == r["duration"]
        assert q.options is None and q.answer is None and q.task == "rextime"
        assert [[s.start, s.end] for s in q.gt_spans] == r["relevant_windows"]
        assert q.video == f"/v/{r['qid'].split('_')[0]}/{r['vid']}.mp4" and q.qtype in ("anet", "qvh")


def test_rextime_with_an_options_file(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in _need(REXTIME).read_text().splitlines()][:20]
    (tmp_path / "g.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    opts = [{"qid": r["qid"], "options": [f"{r['qid']} option {k}" for k in range(4)], "ans": r["ans"]} for r in rows]
    opts[0]["ans"] = None  # the answer may come from the benchmark jsonl alone
    opts[1]["ans"] = "ABCD".index(rows[1]["ans"])  # or as an index
    (tmp_path / "o.jsonl").write_text("\n".join(json.dumps(o) for o in opts))
    qs = load_rextime(tmp_path / "g.jsonl", tmp_path, options_path=tmp_path / "o.jsonl")
    assert [q.answer_letter for q in qs] == [r["ans"] for r in rows]
    assert qs[0].options == tuple(opts[0]["options"])
    # a .json list works the same
    (tmp_path / "o.json").write_text(json.dumps(opts))
    assert load_rextime(tmp_path / "g.jsonl", tmp_path, options_path=tmp_path / "o.json") == qs

    wrong = "ABCD"[("ABCD".index(rows[2]["ans"]) + 1) % 4]
    opts[2]["ans"] = wrong
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(o) for o in opts))
    with pytest.raises(ValueError, match=r"g.jsonl:line 3: .* disagrees with the options file"):
        load_rextime(tmp_path / "g.jsonl", tmp_path, options_path=tmp_path / "bad.jsonl")
    opts[2]["ans"] = None
    (tmp_path / "short.jsonl").write_text("\n".join(json.dumps(o) for o in opts[:5]))
    with pytest.raises(ValueError, match=r"line 6: qid .* has no entry in the options file"):
        load_rextime(tmp_path / "g.jsonl", tmp_path, options_path=tmp_path / "short.jsonl")


_RX = '{{"qid": "{qid}", "query": "?", "vid": "v", "duration": {d}, "relevant_windows": {w}}}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: invalid JSON"),
        (
            '{"qid": "a_1", "query": "?", "vid": "v", "duration": -1, "relevant_windows": [[0, 1]]}',
            "duration",
        ),
        ('{"qid": "a_1", "query": "?", "vid": "v", "duration": 9, "relevant_windows": [[2, 1]]}', "window"),
        ('{"qid": "a_1", "query": "?", "vid": "v", "duration": 9, "relevant_windows": []}', "non-empty"),
        (
            '{"qid": "a_0", "query": "?", "vid": "v", "duration": 9, "relevant_windows": [[0, 1]]}',
            "duplicate",
        ),
    ],
)
def test_rextime_malformed_lines(tmp_path: Path, line: str, message: str) -> None:
    good = _RX.format(qid="a_0", d=9, w="[[0, 1]]")
    (tmp_path / "g.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as info:
        load_rextime(tmp_path / "g.jsonl", tmp_path)
    assert "g.jsonl:line 2" in str(info.value)


# ---------------------------------------------------------------- Charades-STA
CHARADES_LINES = """3MSZA 24.3 30.4##person turn a light on.
3MSZA 0.0 6.9 31.0##a person is putting a book on a shelf.

AO8RW 5 5##the person sits down##twice.
"""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("Charades_v1_test.csv", "id,subject,scene,length\n3MSZA,x,Kitchen,31.12\nAO8RW,y,Hall,20\n"),
        ("durations.csv", "3MSZA,31.12\nAO8RW,20\n"),
        ("durations.json", '{"3MSZA": 31.12, "AO8RW": 20}'),
    ],
)
def test_charades_lines_and_duration_formats(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "sta.txt").write_text(CHARADES_LINES)
    (tmp_path / name).write_text(text)
    qs = load_charades(tmp_path / "sta.txt", tmp_path / name, tmp_path / "v")
    assert [q.id for q in qs] == ["3MSZA_0", "3MSZA_1", "AO8RW_2"]
    assert qs[0].question == "person turn a light on." and qs[0].duration == 31.12
    assert qs[1].gt_spans[0].as_tuple() == (0.0, 6.9)  # the extra column is ignored
    assert qs[2].question == "the person sits down##twice." and qs[2].gt_spans[0].length == 0
    assert all(q.options is None and q.answer is None and q.task == "charades" for q in qs)
    assert qs[2].video == str(tmp_path / "v" / "AO8RW.mp4")


def test_charades_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('{"A": 10}')
    cases = {
        "A 1.0##no end": "line 1: expected 'vid start end##sentence'",
        "A x 2##s": "line 1: start/end",
        "A 1 2 no separator": "line 1: expected",
        "B 1 2##s": "line 1: video 'B' has no duration",
        "A 5 2##s": "line 1: start 5.0 > end 2.0",
    }
    for line, message in cases.items():
        (tmp_path / "sta.txt").write_text(line + "\n")
        with pytest.raises(ValueError, match=message) as info:
            load_charades(tmp_path / "sta.txt", tmp_path / "d.json", tmp_path)
        assert "sta.txt" in str(info.value)
    (tmp_path / "sta.txt").write_text("A 5 2##s\nA 1 2##t\n")
    (q,) = load_charades(tmp_path / "sta.txt", tmp_path / "d.json", tmp_path, skip_invalid=True)
    assert q.id == "A_1"
    (tmp_path / "bad.csv").write_text("A,ten\n")
    with pytest.raises(ValueError, match=r"bad\.csv:row 1: duration 'ten' is not a number"):
        load_durations(tmp_path / "bad.csv")


# ---------------------------------------------------------------- multiple choice
def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_video_mme_preset(tmp_path: Path) -> None:
    rec = {
        "video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity",
        "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8",
        "question_id": "001-1", "task_type": "Counting Problem", "question": "How many?",
        "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three."], "answer": "C",
    }  # fmt: skip
    (q,) = load_multiple_choice(_jsonl(tmp_path / "vm.jsonl", [rec]), tmp_path, "videomme")
    assert q.id == "001-1" and q.video == str(tmp_path / "fFjv93ACGo8.mp4")
    assert q.options == ("Apples.", "Candles.", "Berries.", "The three.")
    assert q.answer_letter == "C" and q.qtype == "short" and q.task == "videomme"


def test_mlvu_preset_text_answers_and_generated_ids(tmp_path: Path) -> None:
    recs = [
        {"video": "movie101_66.mp4", "duration": 246.0, "question": "Who?", "candidates": ["x", "y", "z"],
         "answer": "y", "question_type": "plotQA"},
        {"video": "movie101_67.mp4", "duration": 120, "question": "Where?", "candidates": ["p", "q"],
         "answer": "q", "question_type": "plotQA"},
    ]  # fmt: skip
    path = tmp_path / "1_plotQA.json"
    path.write_text(json.dumps(recs))
    qs = load_multiple_choice(path, tmp_path / "video" / "plotQA", "mlvu")
    assert [q.id for q in qs] == ["1_plotQA_0", "1_plotQA_1"]
    assert [q.answer for q in qs] == [1, 1] and qs[0].duration == 246.0 and qs[0].qtype == "plotQA"
    assert qs[0].video == str(tmp_path / "video" / "plotQA" / "movie101_66.mp4")


def test_lvbench_preset_nested_questions_with_inline_options(tmp_path: Path) -> None:
    rec = {
        "key": "4FLmDQX8ub0",
        "type": "documentary",
        "qa": [
            {"uid": "0", "question": "What year is shown?\n(A) 1636\n(B) 1366\n(C) 1363\n(D) 1633",
             "answer": "D", "question_type": ["key information retrieval"], "time_reference": "00:15-00:19"},
            {"uid": "1", "question": "Which letter?\nA. is the stem\n(A) a\n(B) b", "answer": "(B)",
             "question_type": ["reasoning", "summarization"], "time_reference": ""},
        ],
    }  # fmt: skip
    qs = load_multiple_choice(_jsonl(tmp_path / "meta.jsonl", [rec]), tmp_path, "lvbench")
    assert qs[0].question == "What year is shown?" and qs[0].options == (
        "1636",
        "1366",
        "1363",
        "1633",
    )
    assert qs[0].answer_letter == "D" and qs[0].video == str(tmp_path / "4FLmDQX8ub0.mp4")
    assert qs[1].question == "Which letter?\nA. is the stem" and qs[1].options == ("a", "b")
    assert qs[1].answer == 1 and qs[1].qtype == "reasoning,summarization"


def test_generic_field_map_answer_formats(tmp_path: Path) -> None:
    fields = FieldMap(
        id="meta.id", video="clip", question="q", options="opts", answer="a", video_pattern="{split}/{video}"
    )
    recs: list[dict[str, Any]] = [
        {"meta": {"id": "x1"}, "clip": "c.mp4", "split": "dev", "q": "?", "opts": ["u", "v"], "a": 1},
        {"meta": {"id": "x2"}, "clip": "c.mp4", "split": "dev", "q": "?", "opts": ["u", "v"], "a": "B"},
        {"meta": {"id": "x3"}, "clip": "c.mp4", "split": "dev", "q": "?", "opts": ["u", "v"], "a": "v"},
        {"meta": {"id": "x4"}, "clip": "c.mp4", "split": "dev", "q": "?", "opts": ["u", "v"]},
    ]
    qs = load_multiple_choice(_jsonl(tmp_path / "mc.jsonl", recs), tmp_path, fields)
    assert [q.answer for q in qs] == [1, 1, 1, None]
    assert qs[0].video == str(tmp_path / "dev" / "c.mp4") and qs[0].id == "x1" and qs[0].task is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "1", "v": "a.mp4", "q": "?", "o": ["u", "v"], "a": "C"}, "not a auto answer among 2"),
        ({"id": "1", "v": "a.mp4", "q": "?", "o": ["u", "u"], "a": "u"}, "matches options"),
        ({"id": "1", "v": "a.mp4", "q": "?", "o": ["u", "v"], "a": 5}, "outside the 2 options"),
        ({"id": "1", "v": "a.mp4", "q": "?", "o": "u,v", "a": "A"}, "must be a non-empty list"),
        ({"id": "1", "q": "?", "o": ["u"], "a": "A"}, "field 'v' must be a non-empty string"),
        ({"id": "1", "v": "../../a.mp4", "q": "?", "o": ["u"], "a": "A"}, "escapes"),
    ],
)
def test_multiple_choice_errors_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    fields = FieldMap(id="id", video="v", question="q", options="o", answer="a")
    path = _jsonl(tmp_path / "mc.jsonl", [record])
    with pytest.raises(ValueError, match=message) as info:
        load_multiple_choice(path, tmp_path / "root", fields)
    assert "mc.jsonl:line 1" in str(info.value) or "escapes" in message


def test_multiple_choice_file_level_errors(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"not": "a list"}')
    with pytest.raises(DatasetFormatError, match=r"x\.json: expected a JSON list"):
        load_multiple_choice(tmp_path / "x.json", tmp_path, "mlvu")
    with pytest.raises(ValueError, match="unknown preset"):
        load_multiple_choice(tmp_path / "x.json", tmp_path, "nope")
    rec = {"uid": "1", "key": "k", "question": "no options here", "answer": "A"}
    path = _jsonl(tmp_path / "l.jsonl", [{"key": "k", "qa": [rec]}])
    with pytest.raises(ValueError, match=r"l.jsonl:line 1 qa\[0\]: no options field"):
        load_multiple_choice(path, tmp_path, "lvbench")
    dup = {"id": "1", "v": "a.mp4", "q": "?", "o": ["u"], "a": "A"}
    fields = FieldMap(id="id", video="v", question="q", options="o", answer="a")
    with pytest.raises(ValueError, match="line 2: duplicate question id '1'"):
        load_multiple_choice(_jsonl(tmp_path / "d.jsonl", [dup, dup]), tmp_path, fields)
