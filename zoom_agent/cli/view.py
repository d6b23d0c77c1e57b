"""``zoom-agent view``: a static HTML viewer of a run folder or a result file (`zoom_agent.viewer`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``view`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "view",
        help="write static HTML pages showing what the model saw, per run and per question",
        description=(
            "Write an index of a run (filters by correctness and IoU) and a page per question: timeline "
            "of coarse frames, zoom windows, predicted and true spans, answer and confidences, and "
            "thumbnails of the frames each turn saw."
        ),
    )
    p.add_argument(
        "source", type=Path, help="a folder from 'zoom-agent eval', its results.jsonl, or 'ask --json' output"
    )
    p.add_argument("--out", type=Path, default=None, help="where the pages go (default: SOURCE/view or SOURCE.view)")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the pages and say where the index is."""
    from zoom_agent.cli.errors import UsageError
    from zoom_agent.viewer import write_site

    source: Path = args.source
    if not source.exists():
        raise UsageError(
            f"source: {source} does not exist; expected a folder from 'zoom-agent eval', "
            "its results.jsonl, or 'ask --json' output"
        )
    out = args.out or (source / "view" if source.is_dir() else source.with_name(source.name + ".view"))
    index = write_site(source, out)
    print(f"viewer: {index}")
    return 0
