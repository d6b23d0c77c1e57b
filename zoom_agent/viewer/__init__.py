"""A static HTML viewer of runs: ``zoom-agent view RUN_OR_RESULT`` (`write_site`).

An index of the run (filters by correctness and IoU) and one page per question: a
timeline of the coarse frames, each zoom window, the predicted and the true spans; the
answer against the truth with its confidences; the IoU/IoP of the spans and of each zoom
window (`zoom_agent.comparison`); and each model turn with thumbnails of the frames it saw.
"""

from __future__ import annotations

from pathlib import Path

from zoom_agent.types import ClipRef
from zoom_agent.viewer.pages import index_page, page_name, question_page
from zoom_agent.viewer.runs import ViewItem, ViewRun, load_run
from zoom_agent.viewer.thumbs import write_thumbs

__all__ = ["ViewItem", "ViewRun", "load_run", "write_site"]


def write_site(source: str | Path, out: str | Path) -> Path:
    """Write the viewer for a run folder or result file into ``out``.

    Args:
        source: what ``zoom-agent eval`` or ``ask --json`` wrote (`load_run`).
        out: the folder for ``index.html``, the question pages and ``thumbs/``.

    Returns:
        The path of ``index.html``.
    """
    run = load_run(source)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[ClipRef, list[tuple[float, str]]] = {}

    def thumbs(ref: ClipRef) -> list[tuple[float, str]]:
        if ref not in cache:
            cache[ref] = [(t, f"thumbs/{name}") for t, name in write_thumbs(ref, folder / "thumbs")]
        return cache[ref]

    for item in run.items:
        (folder / page_name(item.result)).write_text(question_page(item, thumbs), encoding="utf-8")
    index = folder / "index.html"
    index.write_text(index_page(run), encoding="utf-8")
    return index
