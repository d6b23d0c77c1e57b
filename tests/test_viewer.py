"""``zoom-agent view`` in a real headless browser (issue 13 §6): the index filters by
correctness and IoU, a question page renders its timeline, scores and the frames each turn
saw. Chromium comes from the Debian package; without it the browser tests skip, except in
CI (``CI`` set), where they must run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from zoom_agent.cli import main
from zoom_agent.comparison import compare_answer
from zoom_agent.types import GroundedAnswer, Question, Span, ZoomTrace
from zoom_agent.viewer import load_run, write_site

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="chromium is not installed (apt-get install chromium)"
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browse(url: str, profile: Path, *extra: str) -> str:
    assert CHROMIUM is not None, "CI must have chromium (see .ci/run)"
    args = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, check=True)
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("view")
    run = base / "run"
    args = ["eval", "synthetic", "--model", "oracle:0.3", "--num-videos", "1", "--limit", "6"]
    assert main([*args, "--out", str(run), "--video-root", str(base / "videos"), "--no-progress"]) == 0
    assert main(["view", str(run), "--out", str(base / "site")]) == 0
    return base / "site"


@needs_browser
def test_index_filters_by_correctness_and_iou(site: Path, tmp_path: Path):
    run = load_run(site.parent / "run")
    comparisons = [i.comparison for i in run.items]
    assert len(comparisons) == 6 and all(c is not None for c in comparisons)
    wrong = sum(1 for c in comparisons if c is not None and c.correct is False)
    high = sum(1 for c in comparisons if c is not None and c.first_iou is not None and c.first_iou >= 0.9)
    index = (site / "index.html").as_uri()
    for query, expected in (("", 6), ("?correct=wrong", wrong), ("?iou=90", high), ("?correct=correct", 6 - wrong)):
        dom = browse(index + query, tmp_path / "profile", "--dump-dom")
        rows = re.findall(r"<tr data-correct=\"(\w+)\"[^>]*?(hidden=\"\")?>", dom)
        assert len(rows) == 6
        assert sum(1 for _, hidden in rows if not hidden) == expected, query
        assert f'<span id="shown">{expected}</span>' in dom


@needs_browser
def test_question_page_renders_timeline_scores_and_frames(site: Path, tmp_path: Path):
    from PIL import Image

    page = next(p for p in sorted(site.glob("q-*.html")) if "temporal_zoom" in p.read_text())
    dom = browse(page.as_uri(), tmp_path / "profile", "--dump-dom")
    assert '<svg id="timeline"' in dom and 'class="zoom"' in dom and 'class="true"' in dom
    assert '<table id="scores">' in dom and dom.count('class="turn"') >= 2
    images = re.findall(r'<img src="(thumbs/[^"]+)"', dom)
    assert images and all((site / src).is_file() for src in images)
    shot = tmp_path / "page.png"
    browse(page.as_uri(), tmp_path / "profile2", "--window-size=1200,1400", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    for colour in ("#f79009", "#2e90fa", "#12b76a"):  # zoom window, predicted and true spans are drawn
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        near = np.abs(pixels.astype(int) - (255 - 0.75 * (255 - rgb))).max(axis=1) <= 12  # 75% opacity on white
        assert near.sum() > 200, colour
    assert len(np.unique(pixels, axis=0)) > 500  # the frame thumbnails, not a blank page


def test_comparison_scores_spans_and_each_zoom_window():
    q = Question(id="q", video="v.mp4", question="?", options=("a", "b"), answer=1, gt_spans=(Span(start=2, end=6),))
    zoom_clip = {"round": 1, "requested": {}, "text": "", "clip": None}
    result = GroundedAnswer(
        question_id="q",
        status="answered",
        answer="B",
        spans=(Span(start=4, end=8),),
        zooms=(ZoomTrace(**zoom_clip),),
    )
    c = compare_answer(result, q)
    assert c.correct is True
    assert c.first_iou == pytest.approx(2 / 6) and c.first_iop == pytest.approx(0.5) and c.span_iou == c.first_iou
    assert c.zooms[0].window is None and c.zooms[0].iou is None  # a failed call has no window
    with pytest.raises(ValueError, match="does not answer"):
        compare_answer(result.model_copy(update={"question_id": "other"}), q)


def test_model_text_is_escaped(tmp_path: Path):
    evil = GroundedAnswer(question_id="<script>x</script>", status="error", error='<img src=x onerror="alert(1)">')
    source = tmp_path / "r.json"
    source.write_text(evil.model_dump_json())
    index = write_site(source, tmp_path / "site")
    pages = [index.read_text(), *(p.read_text() for p in (tmp_path / "site").glob("q-*.html"))]
    assert len(pages) == 2 and not any("<script>x" in p or "<img src=x" in p for p in pages)
