"""Synthetic videos: events are where they are claimed, digits legible, questions valid."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zoom_agent.datasets import synthetic as S
from zoom_agent.datasets import synthetic_video as V
from zoom_agent.types import Question
from zoom_agent.video import VideoSource


def read_frame(path: Path, index: int) -> np.ndarray:
    """One decoded frame, BGR like the colours the video was drawn with."""
    return VideoSource(path).read_indices([index]).frames[0][..., ::-1]


DURATION, FPS, WIDTH = 8.0, 10.0, 320
KW: dict[str, Any] = {"duration": DURATION, "fps": FPS, "size": (WIDTH, 240), "num_events": 3}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[S.SyntheticEvent]]:
    path = tmp_path_factory.mktemp("synth") / "v.mp4"
    return path, S.write_synthetic_video(path, seed=7, **KW)


def _is_grey(pixel: np.ndarray) -> bool:
    return int(pixel.max()) - int(pixel.min()) < 30


def _nearest_colour(pixel: np.ndarray) -> str:
    return min(V.COLOURS, key=lambda c: float(np.abs(np.array(V.COLOURS[c]) - pixel.astype(int)).sum()))


def _read_digit(frame: np.ndarray, card: tuple[int, int, int, int]) -> int:
    x, y, w, h = card
    crop = frame[y : y + h, x : x + w].astype(int)
    scale = V.card_scale(frame.shape[0])
    return min(range(10), key=lambda d: float(np.abs(crop - V.render_digit_card(d, scale)).mean()))


def test_events_are_disjoint_and_on_the_frame_grid(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    _, events = video
    assert len(events) == 3
    assert len({e.shape for e in events}) == 3 and len({e.colour for e in events}) == 3
    assert len({e.digit for e in events}) == 3
    for a, b in itertools.pairwise(events):
        assert a.end_frame < b.start_frame
    for e in events:
        assert 0 < e.start < e.end <= KW["duration"]
        assert e.start == pytest.approx(e.start_frame / KW["fps"]) and e.end == pytest.approx(e.end_frame / KW["fps"])


def test_shape_is_visible_exactly_during_its_event(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    width = WIDTH
    for e in events:
        mid = (e.start_frame + e.end_frame - 1) // 2
        x, y = e.position(mid, width)
        assert _nearest_colour(read_frame(path, mid)[y, x]) == e.colour
        assert not _is_grey(read_frame(path, mid)[y, x])
        for outside in (e.start_frame - 1, e.end_frame):
            frame = read_frame(path, outside)
            assert _is_grey(frame[y, x]), f"{e.name} still drawn at frame {outside}"
            assert _is_grey(frame[e.card[1] + e.card[3] // 2, e.card[0] + e.card[2] // 2])


def test_shape_enters_moves_and_leaves(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    width = WIDTH
    for e in events:
        first, last = e.position(e.start_frame, width)[0], e.position(e.end_frame - 1, width)[0]
        assert {first, last} == {round(-0.5 * e.radius), round(width + 0.5 * e.radius)}
        q1 = e.start_frame + (e.end_frame - e.start_frame) // 4
        q3 = e.start_frame + 3 * (e.end_frame - e.start_frame) // 4
        (x1, y1), (x3, y3) = e.position(q1, width), e.position(q3, width)
        assert abs(x3 - x1) > width / 3
        assert e.direction * (x3 - x1) > 0
        for q, x, y in ((q1, x1, y1), (q3, x3, y3)):
            assert _nearest_colour(read_frame(path, q)[y, x]) == e.colour


def test_digit_is_legible_at_full_resolution_only(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    for e in events:
        mid = (e.start_frame + e.end_frame - 1) // 2
        assert _read_digit(read_frame(path, mid), e.card) == e.digit
    # At a coarse plan's size (a quarter of 320x240 per side) the 10 px glyph is under 3 px:
    # the 3x5 dots of the font blur into one blob.
    _, _, _, card_h = events[0].card
    assert card_h == 14 and 5 * V.card_scale(240) / 4 < 3


def test_digit_cards_are_all_distinct() -> None:
    cards = [V.render_digit_card(d, 1) for d in range(10)]
    assert all((cards[i] != cards[j]).any() for i in range(10) for j in range(i))
    assert V.render_digit_card(8, 2).shape == (14, 10, 3)
    with pytest.raises(ValueError, match="digit"):
        V.render_digit_card(10, 2)


def test_deterministic_for_a_seed(tmp_path: Path, video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    again = S.write_synthetic_video(tmp_path / "again.mp4", seed=7, **KW)
    assert again == events
    for index in (0, events[1].start_frame + 3):
        assert np.array_equal(read_frame(path, index), read_frame(tmp_path / "again.mp4", index))
    other = S.write_synthetic_video(tmp_path / "other.mp4", seed=8, **KW)
    assert other != events
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.mp4", "other.mp4"]  # no temp files left


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (32, 32)}, "at least 64x48"),
        ({"duration": 0.0}, "must be > 0"),
        ({"num_events": 7}, "num_events"),
        ({"duration": 2.0, "num_events": 3}, "too few"),
    ],
)
def test_bad_video_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S.write_synthetic_video(tmp_path / "x.mp4", **kwargs)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        S.write_synthetic_video(tmp_path / "missing" / "x.mp4")


def test_questions_match_the_events(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    questions = S.synthetic_questions(path, events, seed=1)
    assert len({q.id for q in questions}) == len(questions) == 4 * len(events) + 1
    assert questions == S.synthetic_questions(path, events, seed=1)
    by_event = {e.name: e for e in events}
    for q in questions:
        assert q.options is not None and q.answer is not None and q.task == "synthetic"
        assert len(q.options) == 4 and len(set(q.options)) == 4
        assert q.duration == pytest.approx(DURATION)
        correct = q.options[q.answer]
        (gt,) = q.gt_spans
        event = next(e for e in events if e.span == gt)
        if q.qtype == "order":
            assert event is events[0] and correct == events[0].name
            continue
        assert event.colour in q.question or event.shape in q.question
        expected = {
            "colour": event.colour,
            "digit": str(event.digit),
            "shape": event.shape,
            "when": f"{event.start:.1f}-{event.end:.1f} s",
        }[q.qtype or ""]
        assert correct == expected
        if q.qtype == "colour":
            assert q.question == f"What colour is the {event.shape}?"
    assert set(by_event) == {e.name for e in events}


def test_when_distractors_do_not_overlap_the_answer(video: tuple[Path, list[S.SyntheticEvent]]) -> None:
    path, events = video
    for q in S.synthetic_questions(path, events, seed=3):
        if q.qtype != "when" or q.options is None or q.answer is None:
            continue
        (gt,) = q.gt_spans
        for i, option in enumerate(q.options):
            start, end = (float(v) for v in option.removesuffix(" s").split("-"))
            if i != q.answer:
                assert end <= gt.start + 0.051 or start >= gt.end - 0.051, option


@pytest.mark.parametrize("num_events", [1, 6])
def test_questions_for_one_long_event_or_many(tmp_path: Path, num_events: int) -> None:
    events = S.write_synthetic_video(
        tmp_path / "v.mp4", duration=6.0, fps=10.0, size=(96, 64), seed=2, num_events=num_events
    )
    questions = S.synthetic_questions(tmp_path / "v.mp4", events, seed=0)
    assert {q.qtype for q in questions} >= {"digit", "shape", "when"}
    assert all(q.options is not None and len(set(q.options)) == 4 for q in questions)
    assert (num_events == 6) == any(q.qtype == "order" for q in questions)
    unique_shapes = [s for s in V.SHAPES if sum(e.shape == s for e in events) == 1]
    assert sum(q.qtype == "colour" for q in questions) == len(unique_shapes)


def test_make_and_load_task(tmp_path: Path) -> None:
    small = {"duration": 6.0, "fps": 8.0, "size": (160, 120), "num_events": 2}
    questions = S.make_synthetic_task(tmp_path, num_videos=2, seed=5, **small)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["questions.jsonl", "synth_000.json", "synth_000.mp4", "synth_001.json", "synth_001.mp4"]
    assert S.load_synthetic_task(tmp_path) == questions
    assert all(Path(q.video).is_absolute() and Path(q.video).is_file() for q in questions)
    lines = (tmp_path / "questions.jsonl").read_text().splitlines()
    assert Question.model_validate_json(lines[0]).video == "synth_000.mp4"  # relative: the folder can move
    events = S.read_synthetic_events(tmp_path / "synth_001.mp4")
    assert all(isinstance(e.card, tuple) for e in events)
    assert {q.gt_spans[0] for q in questions if q.video.endswith("synth_001.mp4")} == {e.span for e in events}

    stamp = (tmp_path / "synth_000.mp4").stat().st_mtime_ns
    assert S.make_synthetic_task(tmp_path, num_videos=2, seed=5, **small) == questions
    assert (tmp_path / "synth_000.mp4").stat().st_mtime_ns == stamp  # reused, not rewritten
    changed = S.make_synthetic_task(tmp_path, num_videos=1, seed=6, **small)
    assert (tmp_path / "synth_000.mp4").stat().st_mtime_ns != stamp and changed != questions[: len(changed)]


def test_load_task_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make_synthetic_task"):
        S.load_synthetic_task(tmp_path)
    bad = Question(id="x", video="../../etc/passwd", question="q", options=("a",), answer=0)
    (tmp_path / "questions.jsonl").write_text(bad.model_dump_json() + "\n")
    with pytest.raises(ValueError, match="leaves"):
        S.load_synthetic_task(tmp_path)
    (tmp_path / "questions.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(ValueError, match=r"questions\.jsonl:1"):
        S.load_synthetic_task(tmp_path)
    with pytest.raises(TypeError, match="unknown video arguments"):
        S.make_synthetic_task(tmp_path, colour="red")


def test_importing_the_module_does_not_import_cv2() -> None:
    code = "import sys, zoom_agent.datasets.synthetic; print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
