"""``zoom-agent synthetic-video``: the clip the README's snippets use, with its answers printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoom_agent.cli import main
from zoom_agent.video import open_video


def test_it_writes_the_video_and_prints_its_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "videos" / "clip.mp4"  # the folder is made
    argv = ["synthetic-video", str(out), "--duration", "4", "--fps", "5", "--size", "96x64", "--events", "2"]
    assert main(argv) == 0
    info = open_video(out).info
    assert (info.width, info.height, info.num_frames) == (96, 64, 20)
    events = [line for line in capsys.readouterr().out.splitlines() if "crosses; the card shows" in line]
    assert len(events) == 2


def test_a_bad_size_is_one_usage_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["synthetic-video", str(tmp_path / "x.mp4"), "--size", "96"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--size expects WIDTHxHEIGHT" in err
