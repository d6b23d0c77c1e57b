"""Divide and conquer as their long-video evaluation decides it (``divide="official"``,
``src_eval/eval_*_zoom.py``; docs/method.md §7). Pure rules; `zoom_agent.graphs.divide`
runs them.

1. The video is sampled once (`AgentConfig.long_budget`: their 2 fps, 128 to 1,024 frames)
   and cut into chunks of ``chunk_frames`` (256) sampled frames: at most 4 chunks.
2. Each chunk is asked for the letter (one chunk) or the letter and its spans (several), no
   thinking, at the long-video budget (16,384); the whole video once more for the letter alone.
3. Shortcut (`agreed`): one chunk, or the top chunks agree, or exactly one answer has
   confidence 1.0: the top chunk's answer is the fine answer, no fine request.
4. Otherwise the fine pass pools the spans of the top chunks whose span confidence is above
   `SPAN_CONFIDENCE_FLOOR` (the whole video when none is) and asks for the letter alone.
5. The fine answer beats the whole-video one only with a higher confidence; a final
   confidence below `FALLBACK_BELOW` (and below the top chunk's) falls back to the top chunk.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_agent.config import AgentConfig
from zoom_agent.geometry import VisionGeometry
from zoom_agent.planning import plan_clip, plan_frames
from zoom_agent.types import ClipRef, Span, TurnTrace, VideoInfo

SPAN_CONFIDENCE_FLOOR = 10.0  # their eval: glue['confidence'] > 10 (the official span confidence)
FALLBACK_BELOW = 0.5  # their eval: final_confidence < 0.5 -> the top chunk's answer


def official_chunks(info: VideoInfo, config: AgentConfig, geometry: VisionGeometry) -> tuple[ClipRef, list[ClipRef]]:
    """The whole sampled video and its chunks of ``chunk_frames`` sampled frames, each sized
    on its own under the long-video budget (their ``resize_video`` per chunk)."""
    budget = config.long_budget()
    whole = plan_clip(info, info.whole, budget, geometry, role="coarse")
    spacing = whole.frame_spacing
    chunks = []
    for i in range(0, whole.num_frames, config.chunk_frames):
        run = whole.frame_indices[i : i + config.chunk_frames]
        start = run[0] / info.fps
        end = min(run[-1] / info.fps + spacing, info.duration)
        chunks.append(plan_frames(info, Span(start=start, end=end), run, budget, geometry, "coarse"))
    return whole, chunks


def confidence(turn: TurnTrace | None) -> float:
    """A turn's answer confidence, 0 when it has none (no answer, or no log-probs)."""
    if turn is None or turn.answer is None or turn.answer_confidence is None:
        return 0.0
    return turn.answer_confidence


def top_chunks(chunks: Sequence[TurnTrace], config: AgentConfig) -> list[TurnTrace]:
    """The ``top_k_chunks`` answering chunks by answer confidence (stable: video order on ties)."""
    answering = [t for t in chunks if t.answer is not None]
    return sorted(answering, key=lambda t: -confidence(t))[: config.top_k_chunks]


def agreed(chunks: Sequence[TurnTrace], top: Sequence[TurnTrace]) -> bool:
    """Rule 3: no fine pass when there is one chunk, the top chunks agree, or exactly one
    answer is certain (confidence 1.0)."""
    certain = {t.answer for t in top if confidence(t) == 1.0}
    return len(chunks) == 1 or len({t.answer for t in top}) == 1 or (confidence(top[0]) == 1.0 and len(certain) == 1)


def fine_windows(top: Sequence[TurnTrace]) -> list[Span]:
    """Rule 4: the spans of the top chunks whose span confidence is above the floor."""
    return [s for t in top if (t.span_confidence or 0.0) > SPAN_CONFIDENCE_FLOOR for s in t.spans]


def final_turn(overview: TurnTrace | None, fine: TurnTrace, top: Sequence[TurnTrace]) -> TurnTrace:
    """Rule 5: fine over the whole-video pass only if more confident; the top chunk when the
    winner's confidence is below `FALLBACK_BELOW` and below the top chunk's."""
    chosen = fine if overview is None or confidence(fine) > confidence(overview) else overview
    if top and confidence(chosen) < FALLBACK_BELOW and confidence(chosen) < confidence(top[0]):
        return top[0]
    return chosen
