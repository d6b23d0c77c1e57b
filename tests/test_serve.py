"""`zoom-agent serve`: the vLLM command (no shell, 127.0.0.1, media path = video root only,
pixel bounds that keep plan_clip's sizes), and start / health / stop / Ctrl-C against a
fake ``vllm`` package (a small Python server that answers /health)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from fake_vllm import free_port

from zoom_agent.cli import build_parser
from zoom_agent.config import Budget
from zoom_agent.geometry import GEOMETRY, detect_geometry
from zoom_agent.planning import largest_clip_tokens, plan_clip
from zoom_agent.serve import (
    VLLM_MODULE,
    ServeError,
    VLLMServer,
    build_vllm_command,
    processor_kwargs,
)
from zoom_agent.types import Span, VideoInfo

FAKE_SERVER = textwrap.dedent(
    """
    import argparse, json, os, signal, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args, _ = parser.parse_known_args()
    marker, mode = os.environ["FAKE_VLLM_MARKER"], os.environ.get("FAKE_VLLM_MODE", "ok")
    with open(marker + ".argv", "w") as f:
        json.dump(sys.argv[1:], f)
    if mode == "crash":
        sys.exit(3)
    if mode == "silent":
        time.sleep(60)

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.host, args.port), Health)

    def terminate(*_):
        with open(marker + ".term", "w") as f:
            f.write("SIGTERM")
        if mode != "stubborn":
            threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, terminate)
    server.serve_forever()
    """
)


def flags(cmd: list[str]) -> dict[str, str]:
    """``--flag value`` pairs after the module (flags without a value map to '')."""
    out, i = {}, 3
    while i < len(cmd):
        if i + 1 < len(cmd) and not cmd[i + 1].startswith("--"):
            out[cmd[i]] = cmd[i + 1]
            i += 2
        else:
            out[cmd[i]] = ""
            i += 1
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "my videos"  # a space: the argv needs no shell quoting anywhere
    folder.mkdir()
    return folder


@pytest.fixture
def fake_vllm(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``python -m vllm.entrypoints.openai.api_server`` is the fake."""
    package = tmp_path / "fakepkgs" / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").write_text("")
    (package / "api_server.py").write_text(FAKE_SERVER)
    repo = str(Path(__file__).resolve().parents[1])
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(tmp_path / "fakepkgs"), repo]),
        FAKE_VLLM_MARKER=str(tmp_path / "marker"),
    )


def test_the_command_for_qwen2_5_vl_7b(root: Path):
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, max_model_len=32768)
    assert cmd[:3] == [sys.executable, "-m", VLLM_MODULE] and all(isinstance(c, str) for c in cmd)
    f = flags(cmd)
    assert f["--model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and f["--port"] == "8000"
    assert f["--host"] == "127.0.0.1"
    assert f["--allowed-local-media-path"] == str(root.resolve())  # the video root, nothing wider
    assert json.loads(f["--limit-mm-per-prompt"]) == {"image": 0, "video": 16}
    assert json.loads(f["--media-io-kwargs"]) == {"video": {"num_frames": -1}}
    assert json.loads(f["--mm-processor-kwargs"]) == {
        "size": {"shortest_edge": 28 * 28, "longest_edge": 768 * 28 * 28},
        "cap_pixels_per_frame": False,
    }
    assert f["--max-model-len"] == "32768"
    assert f["--allowed-media-domains"] == "media.invalid"  # no remote media fetched
    # the client's per-request media kwargs need it (issue 10 item 1): vLLM answers 400 without
    assert "--trust-request-mm-kwargs" in cmd and "--data-parallel-size" not in cmd
    # the encoder cache holds the largest clip of the serve budget (issue 10 item 2)
    assert f["--max-num-batched-tokens"] == str(
        largest_clip_tokens(Budget(visual_tokens=16384), GEOMETRY["qwen2_5_vl"])
    )
    assert "--api-key" not in cmd


def test_the_command_for_qwen3_vl_8b_with_replicas(root: Path):
    cmd = build_vllm_command(
        "Qwen/Qwen3-VL-8B-Instruct",
        video_root=root,
        host="0.0.0.0",
        port=9000,
        data_parallel=4,
        served_model_name="qwen3",
        extra=["--enforce-eager", "--gpu-memory-utilization", "0.85"],
        environ={"VLLM_API_KEY": "k"},  # beyond loopback only with a key
    )
    f = flags(cmd)
    assert (f["--host"], f["--port"], f["--data-parallel-size"], f["--served-model-name"]) == (
        "0.0.0.0",
        "9000",
        "4",
        "qwen3",
    )
    size = json.loads(f["--mm-processor-kwargs"])["size"]
    assert size == {"shortest_edge": 2 * 32 * 32, "longest_edge": 2 * 32 * 32 * 16384}
    assert cmd[-3:] == ["--enforce-eager", "--gpu-memory-utilization", "0.85"]


def test_a_non_loopback_bind_without_a_key_is_refused_before_anything_starts(root: Path):
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ValueError, match=r"--host .* set the VLLM_API_KEY environment variable"):
            build_vllm_command("Qwen/Qwen3-VL-8B-Instruct", video_root=root, host=host, environ={})
        with pytest.raises(ValueError, match="VLLM_API_KEY"):  # an empty key is no key
            build_vllm_command("Qwen/Qwen3-VL-8B-Instruct", video_root=root, host=host, environ={"VLLM_API_KEY": ""})
    for host in ("127.0.0.1", "localhost", "::1"):
        assert flags(build_vllm_command("Qwen/Qwen3-VL-8B-Instruct", video_root=root, host=host, environ={}))["--host"]


def test_the_cli_refuses_a_public_bind_without_a_key_in_one_line(root: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    cmd = [sys.executable, "-m", "zoom_agent.cli", "serve", "Qwen/Qwen3-VL-8B-Instruct", "--video-root", str(root)]
    done = subprocess.run([*cmd, "--host", "0.0.0.0", "--python", "/no/such/python"], env=env, capture_output=True)
    assert done.returncode == 1 and done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "zoom-agent serve: error: --host 0.0.0.0" in lines[0] and "VLLM_API_KEY" in lines[0]


def test_a_budget_the_model_cannot_take_is_refused_before_start(root: Path, tmp_path: Path):
    model = tmp_path / "ckpt"
    model.mkdir()
    config = {"model_type": "qwen2_5_vl", "text_config": {"max_position_embeddings": 8192}}
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"16384 visual tokens .* more than the served context of 8192"):
        build_vllm_command(str(model), video_root=root)  # the checkpoint's own context
    with pytest.raises(ValueError, match="more than the served context of 4096"):
        build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, max_model_len=4096)
    fits = build_vllm_command(str(model), video_root=root, max_model_len=32768)  # a longer context fits
    assert int(flags(fits)["--max-num-batched-tokens"]) == 16384
    with pytest.raises(ValueError, match="--max-num-batched-tokens 4096 is below the largest planned clip"):
        build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, extra=["--max-num-batched-tokens=4096"])
    big = build_vllm_command(
        "Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, extra=["--max-num-batched-tokens", "65536"]
    )
    assert big.count("--max-num-batched-tokens") == 1 and flags(big)["--max-num-batched-tokens"] == "65536"


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_no_planned_clip_exceeds_the_largest_clip_bound(family):
    """`largest_clip_tokens` sizes vLLM's encoder cache: every plan must fit under it."""
    geometry = GEOMETRY[family]
    for tokens in (256, 1024, 8192, 16384):
        budget = Budget(visual_tokens=tokens)
        bound = largest_clip_tokens(budget, geometry)
        for w, h in ((1920, 1080), (1080, 1920), (640, 480), (2560, 1080), (160, 120), (1280, 160), (28, 28)):
            for seconds in (1.0, 30.0, 400.0, 3600.0):
                info = VideoInfo(
                    path="/v.mp4", duration=seconds, fps=30.0, num_frames=int(seconds * 30), width=w, height=h
                )
                for span, role in ((info.whole, "coarse"), (Span(start=0.0, end=seconds / 2), "zoom")):
                    clip = plan_clip(info, span, budget, geometry, role=role)
                    assert clip.visual_tokens <= bound, (family, tokens, w, h, seconds, role, clip.visual_tokens)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
def test_processor_bounds_keep_every_planned_clip_size(family):
    """What the processor resizes: Qwen2.5-VL per frame, Qwen3-VL per video (frames
    rounded to the temporal patch); every plan under the serve budget must lie inside."""
    geometry = GEOMETRY[family]
    size = processor_kwargs(geometry, Budget(visual_tokens=16384))["size"]
    for tokens in (512, 2048, 8192, 16384):
        budget = Budget(visual_tokens=tokens)
        for w, h, seconds in ((1920, 1080, 3600.0), (640, 360, 40.0), (160, 120, 2.0), (3840, 2160, 12.0)):
            info = VideoInfo(path="/v.mp4", duration=seconds, fps=30.0, num_frames=int(seconds * 30), width=w, height=h)
            for span in (info.whole, Span(start=1.0, end=2.5)):
                clip = plan_clip(info, span, budget, geometry)
                frames = max(2, round(clip.num_frames / 2) * 2) if family == "qwen3_vl" else 1
                cost = frames * clip.width * clip.height
                assert size["shortest_edge"] <= cost <= size["longest_edge"], (
                    family,
                    tokens,
                    w,
                    seconds,
                    span,
                )


def test_family_detection(tmp_path: Path):
    assert detect_geometry("Qwen/Qwen2.5-VL-72B-Instruct-AWQ") == GEOMETRY["qwen2_5_vl"]
    assert detect_geometry("/models/qwen3_vl_8b") == GEOMETRY["qwen3_vl"]
    local = tmp_path / "ckpt"
    local.mkdir()
    # a local folder: its config.json decides, vision geometry included
    (local / "config.json").write_text(json.dumps({"model_type": "qwen3_vl", "vision_config": {"patch_size": 14}}))
    assert detect_geometry(str(local)).family == "qwen3_vl" and detect_geometry(str(local)).token_side == 28
    with pytest.raises(ValueError, match="name it explicitly: family='qwen2_5_vl' or 'qwen3_vl'"):
        detect_geometry("llava-hf/llava-1.5-7b-hf")
    (local / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="'llama' is not a supported model family"):
        detect_geometry(str(local))
    with pytest.raises(ValueError, match="name it explicitly"):  # the launcher says the same
        build_vllm_command("llava-hf/llava-1.5-7b-hf", video_root=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"video_root": "/no/such/folder"}, "is not a folder"),
        ({"port": 0}, "port must be"),
        ({"data_parallel": 0}, "data_parallel"),
        ({"max_model_len": 0}, "max_model_len"),
        ({"limit_mm_per_prompt": {"video": -1}}, "limit_mm_per_prompt"),
        ({"limit_mm_per_prompt": {"audio": 1}}, "limit_mm_per_prompt"),
        ({"chat_template": "/no/template.jinja"}, "is not a file"),
        ({"extra": ["--host=0.0.0.0"]}, "would override"),
        ({"extra": ["--allowed-local-media-path", "/"]}, "would override"),
    ],
)
def test_bad_arguments_are_named(root: Path, kwargs, message):
    args = {"video_root": root, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", **args)


def test_a_file_is_not_a_video_root(tmp_path: Path):
    (tmp_path / "f.mp4").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        build_vllm_command("Qwen/Qwen3-VL-8B-Instruct", video_root=tmp_path / "f.mp4")


def test_dry_run_prints_the_command_and_starts_nothing(root: Path, capsys):
    parser = build_parser()
    argv = ["serve", "Qwen/Qwen3-VL-8B-Instruct", "--video-root", str(root), "--max-model-len", "32768"]
    args = parser.parse_args([*argv, "--max-videos", "12", "--vllm-args=--enforce-eager --seed 0", "--dry-run"])
    assert args.run(args) == 0
    printed = capsys.readouterr().out.strip()
    expected = build_vllm_command(
        "Qwen/Qwen3-VL-8B-Instruct",
        video_root=root,
        max_model_len=32768,
        limit_mm_per_prompt={"image": 0, "video": 12},
        extra=["--enforce-eager", "--seed", "0"],
    )
    assert shlex.split(printed) == expected  # quoting is exact (the root has a space)


def test_start_wait_for_health_and_stop(root: Path, fake_vllm: dict[str, str], tmp_path: Path):
    port = free_port()
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, port=port)
    with VLLMServer(cmd, port=port, env=fake_vllm) as server:
        with urllib.request.urlopen(server.health_url, timeout=5) as resp:
            assert resp.status == 200
        assert server.url == f"http://127.0.0.1:{port}/v1"
    assert server.process is not None and server.process.returncode == 0
    assert (tmp_path / "marker.term").read_text() == "SIGTERM"
    assert json.loads((tmp_path / "marker.argv").read_text()) == cmd[3:]


def test_a_crash_before_health_is_reported(root: Path, fake_vllm: dict[str, str]):
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, port=free_port())
    server = VLLMServer(cmd, env={**fake_vllm, "FAKE_VLLM_MODE": "crash"})
    server.start()
    with pytest.raises(ServeError, match="exited with code 3"):
        server.wait_healthy(timeout=30, poll=0.05)
    assert server.stop() == 3


def test_no_health_in_time_is_an_error_and_stop_escalates(root: Path, fake_vllm: dict[str, str]):
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, port=free_port())
    server = VLLMServer(cmd, env={**fake_vllm, "FAKE_VLLM_MODE": "silent"})
    server.start()
    with pytest.raises(ServeError, match="not healthy"):
        server.wait_healthy(timeout=0.5, poll=0.1)
    assert server.stop(grace=5) == -signal.SIGTERM


def test_a_server_ignoring_sigterm_is_killed(root: Path, fake_vllm: dict[str, str], tmp_path: Path):
    port = free_port()
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, port=port)
    server = VLLMServer(cmd, port=port, env={**fake_vllm, "FAKE_VLLM_MODE": "stubborn"})
    server.start()
    server.wait_healthy(timeout=30, poll=0.05)
    t0 = time.monotonic()
    assert server.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5 and (tmp_path / "marker.term").exists()


@pytest.mark.parametrize("sigint", ["default", "ignored"])
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_vllm_cleanly_on_ctrl_c_or_sigterm(root, fake_vllm, tmp_path, stop_with, sigint):
    # "ignored": started as a background job of a script is (`cmd &` ignores SIGINT, and the
    # child inherits it): `kill -INT` must still stop the server (CI ran it this way once)
    port = free_port()
    cmd = build_vllm_command("Qwen/Qwen2.5-VL-7B-Instruct", video_root=root, port=port)
    script = f"import sys; from zoom_agent.serve import serve; sys.exit(serve({cmd!r}, port={port}))"
    disposition = signal.SIG_IGN if sigint == "ignored" else signal.SIG_DFL
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=fake_vllm,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, disposition),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until ready (or EOF on failure)
        assert "ready at" in line, proc.stderr.read() if proc.stderr else line
        proc.send_signal(stop_with)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "marker.term").read_text() == "SIGTERM"
