"""Import this checkout's `zoom_agent` from another interpreter (the vLLM env), uninstalled.

The vLLM environment pins its own torch and transformers, so the project is never installed
there; its processes import the project's source instead. ``PYTHONPATH=<repo>`` alone is
not enough: the wheel maps ``zoom_agent.training`` to ``training/`` (and tools, graphs) by
``[tool.setuptools.package-dir]`` in pyproject.toml. `install` reads that table and adds a
meta-path finder that resolves those packages to their folders, so the layout is stated
once, in pyproject.toml.

Usage (first lines of a script run by the vLLM env's python)::

    sys.path.insert(0, str(Path(__file__).parent))
    import project_path; project_path.install()
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class _PackageDirs(importlib.abc.MetaPathFinder):
    """Finds the packages that pyproject.toml maps to folders outside ``zoom_agent/``."""

    def __init__(self, folders: dict[str, Path]) -> None:
        self.folders = folders

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )


def package_folders(repo: Path = REPO) -> dict[str, Path]:
    """``{package: folder}`` from pyproject.toml's ``[tool.setuptools.package-dir]``."""
    with (repo / "pyproject.toml").open("rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: (repo / folder).resolve() for name, folder in mapping.items()}


def install(repo: Path = REPO) -> None:
    """Make ``import zoom_agent`` (and its mapped subpackages) load from ``repo``."""
    folders = package_folders(repo)
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    if not any(isinstance(f, _PackageDirs) for f in sys.meta_path):
        sys.meta_path.insert(0, _PackageDirs({k: v for k, v in folders.items() if k != "zoom_agent"}))
    import zoom_agent

    if Path(zoom_agent.__file__).resolve().parent != folders["zoom_agent"]:
        raise ImportError(f"zoom_agent was imported from {zoom_agent.__file__}, not from the checkout {repo}")
