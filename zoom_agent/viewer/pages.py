"""The viewer's static HTML: an index of the run and one page per question.

Every text from a model, a dataset or a file name is escaped (model output is data). The
pages use no network and no library: one inline stylesheet and, on the index, a few lines
of script for the filters.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence

from zoom_agent.types import ClipRef, GroundedAnswer, Span
from zoom_agent.viewer.runs import ViewItem, ViewRun
from zoom_agent.viewer.thumbs import THUMB_HEIGHT

Thumbs = Callable[[ClipRef], list[tuple[float, str]]]  # clip -> (time, image path) per thumbnail
TIMELINE_WIDTH = 960
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}
.ok{color:#17803d}.bad{color:#b42318}.muted{color:#777}
.thumbs{display:flex;gap:4px;flex-wrap:wrap;margin:4px 0 12px}
.thumbs figure{margin:0;text-align:center;font-size:11px}
pre{white-space:pre-wrap;background:#f6f6f6;padding:8px;max-width:1000px}
.filters{margin:12px 0}.filters label{margin-right:16px}
"""
COLOURS = {"coarse": "#9aa4b2", "zoom": "#f79009", "pred": "#2e90fa", "true": "#12b76a"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def page_name(result: GroundedAnswer) -> str:
    """The file name of a question's page (the id, made file-safe)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.question_id)
    return f"q-{safe[:120]}.html"


def _document(title: str, body: str, script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}{tail}</body></html>\n"
    )


# --- index ----------------------------------------------------------------------------------

FILTER_SCRIPT = """
const pick=document.getElementById('correctness'),low=document.getElementById('min-iou');
function apply(){let n=0;for(const r of document.querySelectorAll('#questions tbody tr')){
const iou=parseFloat(r.dataset.iou),min=parseFloat(low.value||'0');
const show=(pick.value==='all'||r.dataset.correct===pick.value)&&(min<=0||(!isNaN(iou)&&iou>=min));
r.hidden=!show;if(show)n++;}document.getElementById('shown').textContent=n;}
const given=new URLSearchParams(location.search);
if(given.has('correct'))pick.value=given.get('correct');if(given.has('iou'))low.value=given.get('iou');
pick.addEventListener('change',apply);low.addEventListener('input',apply);apply();
"""


def index_page(run: ViewRun) -> str:
    """The run's index: one row per question, filters by correctness and IoU."""
    rows = []
    for item in run.items:
        r, q, c = item.result, item.question, item.comparison
        correct = "unknown" if c is None or c.correct is None else ("correct" if c.correct else "wrong")
        iou = c.first_iou if c is not None else None
        truth = q.answer_letter if q is not None and q.answer is not None else "–"
        rows.append(
            f'<tr data-correct="{correct}" data-iou="{"" if iou is None else f"{100 * iou:.3f}"}">'
            f'<td><a href="{_e(page_name(r))}">{_e(r.question_id)}</a></td>'
            f"<td>{_e((q.question if q else '')[:80])}</td><td>{_e(r.answer or '–')}</td><td>{_e(truth)}</td>"
            f'<td class="{ {"correct": "ok", "wrong": "bad"}.get(correct, "muted") }">{correct}</td>'
            f"<td>{_pct(iou)}</td><td>{r.rounds}</td><td>{_e(r.status)}</td></tr>"
        )
    known = [i.comparison for i in run.items if i.comparison is not None and i.comparison.correct is not None]
    accuracy = f"{100 * sum(bool(c.correct) for c in known) / len(known):.1f}%" if known else "–"
    body = (
        f"<h1>{_e(run.title)}</h1>"
        f'<p id="summary">{len(run.items)} questions; accuracy {accuracy}; '
        f'<span id="shown">{len(run.items)}</span> shown. <span class="muted">{_e(run.note)}</span></p>'
        '<div class="filters"><label>answer <select id="correctness"><option value="all">all</option>'
        '<option value="correct">correct</option><option value="wrong">wrong</option>'
        '<option value="unknown">unknown</option></select></label>'
        '<label>IoU of the first span at least <input id="min-iou" type="number" min="0" max="100" step="5" '
        'value="0"> %</label></div>'
        '<table id="questions"><thead><tr><th>question</th><th>text</th><th>answer</th><th>truth</th><th></th>'
        f"<th>IoU %</th><th>zoom rounds</th><th>status</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return _document(run.title, body, FILTER_SCRIPT)


# --- one question ---------------------------------------------------------------------------


def _duration(item: ViewItem) -> float:
    r, q = item.result, item.question
    for turn in r.turns:
        for clip in turn.clips:
            return clip.num_source_frames / clip.fps
    ends = [s.end for s in r.spans] + [s.end for s in (q.gt_spans if q else ())]
    ends += [z.clip.span.end for z in r.zooms if z.clip is not None]
    return (q.duration if q and q.duration else 0.0) or max(ends, default=1.0) or 1.0


def timeline(item: ViewItem) -> str:
    """An SVG timeline: coarse frame ticks, zoom windows per round, predicted and true spans."""
    duration = _duration(item)

    def x(t: float) -> float:
        return 110 + (TIMELINE_WIDTH - 120) * max(0.0, min(t, duration)) / duration

    rows: list[tuple[str, list[tuple[Span, str, str]]]] = []
    coarse = [c for t in item.result.turns for c in t.clips if c.role == "coarse"][:1]
    zooms = [(z.clip.span, COLOURS["zoom"], f"zoom round {z.round}") for z in item.result.zooms if z.clip]
    rows.append(("zoom windows", zooms))
    rows.append(("predicted", [(s, COLOURS["pred"], "predicted span") for s in item.result.spans]))
    truth = item.question.gt_spans if item.question else ()
    rows.append(("true", [(s, COLOURS["true"], "true span") for s in truth]))
    parts = [f'<svg id="timeline" width="{TIMELINE_WIDTH}" height="{28 * (len(rows) + 2)}" role="img">']
    parts.append('<text x="0" y="18">coarse frames</text>')
    for t in coarse[0].timestamps if coarse else ():
        parts.append(
            f'<line class="tick" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="6" y2="22" stroke="{COLOURS["coarse"]}"/>'
        )
    for k, (label, spans) in enumerate(rows, start=1):
        y = 6 + 28 * k
        parts.append(f'<text x="0" y="{y + 12}">{label}</text>')
        for span, colour, title in spans:
            w = max(2.0, x(span.end) - x(span.start))
            parts.append(
                f'<rect class="{label.split()[0]}" x="{x(span.start):.1f}" y="{y}" width="{w:.1f}" height="16" '
                f'fill="{colour}" opacity="0.75"><title>{_e(title)} {_e(span)}</title></rect>'
            )
    axis_y = 6 + 28 * (len(rows) + 1)
    for i in range(6):
        t = duration * i / 5
        anchor = "end" if i == 5 else "middle"
        parts.append(f'<text x="{x(t):.1f}" y="{axis_y + 12}" text-anchor="{anchor}">{t:.1f}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _clips_html(clips: Sequence[ClipRef], thumbs: Thumbs) -> str:
    out = []
    for clip in clips:
        shots = thumbs(clip)
        figures = "".join(
            f'<figure><img src="{_e(src)}" alt="frame at {t:.1f} s" height="{THUMB_HEIGHT}">'
            f"<figcaption>{t:.1f}s</figcaption></figure>"
            for t, src in shots
        )
        note = "" if shots else '<span class="muted">(video not readable here)</span>'
        out.append(f'<div>{_e(clip.role)} {_e(clip.describe())} {note}</div><div class="thumbs">{figures}</div>')
    return "".join(out)


def question_page(item: ViewItem, thumbs: Thumbs) -> str:
    """One question: its text and options, the answer against the truth, the timeline, the
    scores of the spans and of each zoom window, and each turn with the frames it saw."""
    r, q, c = item.result, item.question, item.comparison
    options = ""
    if q is not None and q.options:
        marks = ["✓" if q.answer == i else "" for i in range(len(q.options))]
        options = "<ol type=A>" + "".join(f"<li>{_e(o)} {m}</li>" for o, m in zip(q.options, marks, strict=True))
        options += "</ol>"
    verdict = "" if c is None or c.correct is None else (" (correct)" if c.correct else " (wrong)")
    scores = ""
    if c is not None:
        zoom_rows = "".join(
            f"<tr><td>round {z.round}</td><td>{_e(z.window or 'failed call')}</td><td>{_pct(z.iou)}</td>"
            f"<td>{_pct(z.iop)}</td></tr>"
            for z in c.zooms
        )
        scores = (
            '<table id="scores"><tr><th></th><th>window</th><th>IoU %</th><th>IoP %</th></tr>'
            f"<tr><td>spans (all)</td><td>{_e(', '.join(map(str, r.spans)) or '–')}</td><td>{_pct(c.span_iou)}</td>"
            f"<td></td></tr><tr><td>first span</td><td></td><td>{_pct(c.first_iou)}</td>"
            f"<td>{_pct(c.first_iop)}</td></tr>"
            f"{zoom_rows}</table>"
        )
    turns = "".join(
        f'<section class="turn"><h3>turn {t.round}</h3>{_clips_html(t.clips, thumbs)}<pre>{_e(t.text)}</pre>'
        f'<p class="muted">answer confidence {_num(t.answer_confidence)}, span confidence {_num(t.span_confidence)}, '
        f"{_num(t.prompt_tokens, 0)} prompt / {_num(t.completion_tokens, 0)} completion tokens, "
        f"{t.latency_s:.2f} s</p></section>"
        for t in r.turns
    )
    body = (
        f'<p><a href="index.html">← all questions</a></p><h1>{_e(r.question_id)}</h1>'
        f"<p>{_e(q.question if q else '(question text not in the result)')}</p>{options}"
        f'<p id="answer">answer <b>{_e(r.answer or "–")}</b>{verdict} {_e(r.answer_text or "")}; '
        f"answer confidence {_num(r.answer_confidence)}, span confidence {_num(r.span_confidence)}; "
        f"status {_e(r.status)}{'; ' + _e(r.error) if r.error else ''}</p>"
        f"{timeline(item)}{scores}<h2>turns</h2>{turns}"
        f'<script type="application/json" id="result">{_e(json.dumps({"id": r.question_id}))}</script>'
    )
    return _document(r.question_id, body)
