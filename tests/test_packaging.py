"""The distribution installs one top-level package, and the core import stays light."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "vllm", "cv2")


def test_import_zoom_agent_is_light():
    code = (
        "import sys, zoom_agent, zoom_agent.tools, zoom_agent.models; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"heavy modules imported by `import zoom_agent`: {out.stdout}"


def test_editable_install_maps_top_level_folders_under_zoom_agent():
    import zoom_agent.graphs
    import zoom_agent.tools
    import zoom_agent.training

    assert Path(zoom_agent.tools.__file__).parent == ROOT / "tools"
    assert Path(zoom_agent.graphs.__file__).parent == ROOT / "graphs"
    assert Path(zoom_agent.training.__file__).parent == ROOT / "training"


@pytest.mark.slow
def test_wheel_holds_only_the_zoom_agent_package(tmp_path):
    # Build from a clean copy: an in-tree build would reuse a stale build/lib and could hide
    # a package missing from pyproject.toml.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, source, ignore=skip)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*command, str(source)], check=True)
    (wheel,) = tmp_path.glob("zoom_agent-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"zoom_agent"}, f"unexpected top-level entries in the wheel: {top}"
    # every source module is in the wheel, under its installed name
    mapping = {"zoom_agent": "zoom_agent", "tools": "zoom_agent/tools", "graphs": "zoom_agent/graphs"}
    mapping["training"] = "zoom_agent/training"
    expected = {
        f"{mapping[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in mapping
        for path in (ROOT / folder).rglob("*.py")
    }
    assert not expected - set(names), f"modules missing from the wheel: {sorted(expected - set(names))}"
    assert "zoom_agent/training/recipes/tiny-cpu.yaml" in names
    # the installed wheel imports the same names as the editable install
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    code = "import zoom_agent.tools, zoom_agent.graphs, zoom_agent.training; print(zoom_agent.tools.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(target), "PATH": ""},
        cwd=tmp_path,
    )
    assert out.stdout.strip().startswith(str(target))
