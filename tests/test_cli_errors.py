"""Every expected error of ``zoom-agent`` is one line on stderr naming the input, the flag and
what was expected (exit status 2 for usage, 1 for a failure found while running), never a
traceback or a pydantic dump; inputs are checked before a model loads (issue 12)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoom_agent.cli import main
from zoom_agent.cli.errors import BROKEN_PIPE_STATUS, did_you_mean
from zoom_agent.datasets.synthetic_video import write_synthetic_video


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``(exit status, stderr)`` of ``zoom-agent ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if " error: " in line]
    assert len(lines) == 1 and "Traceback" not in err and "validation error" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-errors") / "clip.mp4"
    write_synthetic_video(path, duration=4.0, fps=5.0, size=(96, 64), num_events=1)
    return path


@pytest.fixture
def unloadable_model(tmp_path: Path) -> Path:
    """A folder load_model accepts by its form whose weights never load (so a test that
    reaches the model load shows it)."""
    folder = tmp_path / "unloadable"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "--visual-tokens: Input should be greater than 0 (got 0)"),
        ("-5", "--visual-tokens: Input should be greater than 0 (got -5)"),
        ("10", "--visual-tokens 10 is too small for one frame"),
    ],
)
def test_visual_tokens_too_small_is_one_usage_line(
    value: str, says: str, video: Path, unloadable_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["ask", str(video), "q?", "--model", str(unloadable_model), "--visual-tokens", value], capsys)
    assert code == 2 and one_line(err).startswith(f"zoom-agent ask: error: {says}")
    assert one_line(err).count("visual") == 1  # said once, not twice


def test_serve_names_its_visual_tokens_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["serve", "m", "--video-root", ".", "--visual-tokens", "0", "--dry-run"], capsys)
    assert code == 2 and one_line(err) == (
        "zoom-agent serve: error: --visual-tokens: Input should be greater than 0 (got 0) (see zoom-agent serve --help)"
    )


def test_eval_refuses_bad_flags_before_making_videos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, err = run_cli(["eval", "synthetic", "--model", "oracle", "--out", str(out), "--visual-tokens", "0"], capsys)
    assert code == 2 and "--visual-tokens" in one_line(err)
    assert not (out / "videos").exists()  # refused before any work


def test_two_flags_that_disagree_name_the_rule(video: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ask", str(video), "q?", "--model", "http://127.0.0.1:9/v1", "--min-frames", "10", "--max-frames", "5"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "min_frames 10 > max_frames 5" in one_line(err)


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("trainer.lrr=1", "--override: unknown key 'trainer.lrr': did you mean 'optim.lr'?"),
        ("optim.lrr=1", "--override: unknown key 'optim.lrr': did you mean 'optim.lr'?"),
        ("agent.budget.visual_tokenz=64", "did you mean 'agent.budget.visual_tokens'?"),
        ("seed.x=1", "unknown key 'seed.x': did you mean 'seed'?"),
    ],
)
def test_unknown_override_keys_say_which_was_meant(
    override: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["train", "tiny-cpu", "--override", override, "--dry-run"], capsys)
    assert code == 2 and says in one_line(err)


def test_a_bad_override_value_is_one_line_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(["train", "tiny-cpu", "--override", "optim.lr=abc", "--dry-run"], capsys)
    line = one_line(err)
    assert code == 1 and "optim.lr: Input should be a valid number" in line and "(got 'abc')" in line


def test_mapping_fields_take_any_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "tiny-cpu", "--override", "vllm.enforce_eager=true", "--dry-run", "--json"]) == 0
    assert '"enforce_eager": true' in capsys.readouterr().out


def test_did_you_mean_stays_quiet_when_nothing_is_close() -> None:
    assert did_you_mean("zzz", ["optim.lr", "seed"]) is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["ask", "{video}", "q?", "--model", "oracle"], "only 'zoom-agent eval' takes it"),
        (["ask", "{video}", "q?", "--model", "oracle:0.2"], "only 'zoom-agent eval' takes it"),
        (["ask", "{video}", "q?", "--model", "Qwen/Qwen2.5-VL-7B-Instruct"], "hub ids are not downloaded"),
        (["ask", "{video}", "q?", "--model", "/no/such/model"], "'/no/such/model' is not a local folder"),
        (["ask", "{video}", "q?", "--model", "{video}"], "is a file: expected a local model folder"),
        (["mcp", "--video-root", ".", "--model", "oracle"], "only 'zoom-agent eval' takes it"),
        (
            ["eval", "synthetic", "--model", "Qwen/Qwen2.5-VL-7B-Instruct", "--out", "{tmp}/o"],
            "or oracle[:NOISE] for a pipeline check",
        ),
    ],
)
def test_a_model_of_no_known_form_says_which_forms_model_takes(
    argv: list[str], says: str, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli([a.format(video=video, tmp=tmp_path) for a in argv], capsys)
    line = one_line(err)
    assert code == 2 and "--model" in line and says in line and "VLM object" not in line
    assert "http(s)://HOST:PORT/v1" in line or "hub ids are not downloaded" in line  # what it takes instead


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: d, "is a folder: expected a video file"),
        (lambda d: (d / "text.mp4", (d / "text.mp4").write_text("not a video"))[0], "does not open as a video"),
    ],
)
def test_ask_checks_the_video_before_loading_the_model(
    make: object, says: str, tmp_path: Path, unloadable_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = make(tmp_path)  # type: ignore[operator]
    code, err = run_cli(["ask", str(video), "q?", "--model", str(unloadable_model)], capsys)
    line = one_line(err)
    assert code == 2 and f"video {video}" in line and says in line  # the model was never loaded


@pytest.mark.parametrize(
    ("options", "says"), [(["red", "red"], "expected distinct options"), ([str(i) for i in range(27)], "27 options")]
)
def test_ask_checks_the_options_before_loading_the_model(
    options: list[str], says: str, video: Path, unloadable_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["ask", str(video), "q?", "--model", str(unloadable_model)] + [f"--option={o}" for o in options]
    code, err = run_cli(argv, capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("zoom-agent ask: error: --option: ") and says in line


def test_eval_checks_video_root_and_annotations_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ann").mkdir()
    base = ["eval", "nextgqa", "--model", "oracle", "--out", str(tmp_path / "o")]
    code, err = run_cli([*base, "--ann", str(tmp_path / "ann"), "--video-root", str(tmp_path / "nope")], capsys)
    assert code == 2 and f"--video-root {tmp_path / 'nope'}: no such folder" in one_line(err)
    code, err = run_cli([*base, "--ann", str(tmp_path / "no-ann"), "--video-root", str(tmp_path)], capsys)
    assert code == 2 and f"--ann {tmp_path / 'no-ann'}: no such file or folder" in one_line(err)
    assert not (tmp_path / "o").exists()


def test_tiny_model_refuses_a_folder_with_files_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    code, err = run_cli(["tiny-model", str(tmp_path)], capsys)
    line = one_line(err)
    assert code == 2 and str(tmp_path) in line and "--overwrite" in line
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_closed_stdout_ends_quietly_and_keeps_the_results(tmp_path: Path) -> None:
    # `zoom-agent eval ... | head -1`: the reader is gone before the summary is printed.
    read_end, write_end = os.pipe()
    os.close(read_end)
    out = tmp_path / "run"
    argv = ["eval", "synthetic", "--model", "oracle", "--out", str(out), "--num-videos", "1", "--limit", "3"]
    try:
        done = subprocess.run(
            [sys.executable, "-m", "zoom_agent.cli", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
            env={**os.environ, "ZOOM_AGENT_PROGRESS": "off"},
        )
    finally:
        os.close(write_end)
    assert done.returncode == BROKEN_PIPE_STATUS and "Traceback" not in done.stderr and "Broken" not in done.stderr
    assert len((out / "results.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_tiny_model_overwrite_then_a_damaged_copy_is_one_line(
    tmp_path: Path, video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "stray.txt").write_text("old")
    code, err = run_cli(["tiny-model", str(folder), "--overwrite"], capsys)
    assert code == 0 and (folder / "config.json").is_file() and not (folder / "stray.txt").exists()
    assert "tiny-model: training the byte-level BPE tokenizer" in err  # stage lines while it builds
    broken = shutil.copytree(folder, tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])  # truncated, as by a partial copy
    code, err = run_cli(["ask", str(video), "q?", "--model", str(broken)], capsys)
    line = one_line(err)
    assert code == 1 and f"model folder {broken} does not load: SafetensorError" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["serve", "some/model", "--video-root", "{missing}", "--dry-run"], "--video-root: {missing} is not a folder"),
        (["view", "{missing}"], "source: {missing} does not exist"),
    ],
)
def test_a_missing_folder_is_a_usage_error(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing")
    code, err = run_cli([a.format(missing=missing) for a in argv], capsys)
    assert code == 2
    assert says.format(missing=missing) in one_line(err)
