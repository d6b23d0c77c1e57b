"""The reward parts of one reply's text, under either rule set (docs/training.md §3).

``reward_parts(response, gt_spans=..., gt_answer=..., preset=...)`` is the public entry:
the preset (or a `RewardConfig`) decides the rules.

- ``rules="official"``: the authors' ``tvg_zoom`` reward (their
  ``verl/utils/reward_score/tvg_zoom.py``), its regexes restated here:

  - format 1 when the stripped reply is exactly ``<think>…<time>…</time>…</think>``,
    newline(s), ``<answer>`` + ``(A)``/``A`` (A–F only) + ``</answer>``, newline(s),
    ``<glue>[(s, e), …]</glue>``; a ``<time>`` inside ``<think>`` is required and its content
    is never read. When that layout holds but the glue list is invalid (a pair with start
    after end, ``5.`` for a number, spaces inside a pair's parentheses), format is
    ``invalid_glue_format`` (their stage scripts: 0; their ``tvg_sep_zoom``: 0.5).
  - IoU: the first ``<glue>``'s list, all pairs or none (one bad pair makes the list empty),
    merged multi-span IoU; scored whether or not the answer parsed.
  - answer: the first ``<answer>`` after the last ``</think>``, stripped, parentheses
    removed, equal to the correct letter.
- ``rules="ours"``: `protocol.parse` in the ``zoomzero`` dialect (its lenient layout, the
  valid subset of the spans, time tags judged, invalid spans 0.5).

``parts_need_answer`` (ours) zeroes IoU and zoom when no answer parsed. The zoom part is the
verifier's verdict (`training.loop.verifier`), given here; it counts only with a valid span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from zoom_agent import protocol
from zoom_agent.presets import Preset
from zoom_agent.training.config import RewardConfig, TrainConfig
from zoom_agent.training.core.rewards import answer_reward, iou_reward, number_probe, total_reward
from zoom_agent.types import Span

_NUM = r"\d+\.?\d*"
OFFICIAL_LAYOUT = re.compile(
    r"<think>.*?<time>.*?</time>.*?</think>\s*\n"
    r"<answer>\(?[A-F]\)?</answer>\s*\n"
    rf"<glue>\s*\[\s*\({_NUM},\s*{_NUM}\)(?:\s*,\s*\({_NUM},\s*{_NUM}\))*\s*\]\s*</glue>",
    re.DOTALL,
)
"""Their ``tvg_format_reward`` layout, matched against the whole stripped reply."""

_PAIR = r"\((\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?)\)"
OFFICIAL_GLUE_LIST = re.compile(rf"\[(?:{_PAIR}(?:,\s*{_PAIR})*,?)?\]")
"""Their ``is_valid_two_d_list_format`` list form, matched against the stripped glue content."""

_GLUE = re.compile(r"<glue>(.*?)</glue>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PAIR_RE = re.compile(_PAIR)


def official_glue(response: str) -> list[tuple[float, float]] | None:
    """The first ``<glue>``'s spans as their code reads them.

    Returns:
        None without a ``<glue>…</glue>``; ``[]`` when the list is invalid (any pair bad);
        else every ``(start, end)``.
    """
    found = _GLUE.search(response)
    if found is None:
        return None
    content = found.group(1).strip()
    if OFFICIAL_GLUE_LIST.fullmatch(content) is None:
        return []
    pairs = [(float(a), float(b)) for a, b in _PAIR_RE.findall(content)]
    return [] if any(a > b for a, b in pairs) else pairs


def official_format(response: str, invalid_glue_format: float) -> float:
    """1 for their layout with a valid glue list, ``invalid_glue_format`` for the layout with
    an invalid one, else 0."""
    text = response.strip()
    if OFFICIAL_LAYOUT.fullmatch(text) is None:
        return 0.0
    return 1.0 if official_glue(text) else float(invalid_glue_format)


def official_answer(response: str) -> str | None:
    """The answer their code compares: the first ``<answer>`` after the last ``</think>``,
    stripped, parentheses removed; None without one."""
    found = _ANSWER.search(response.split("</think>")[-1])
    return None if found is None else found.group(1).strip().replace("(", "").replace(")", "")


def reward_config(preset: Preset | str | RewardConfig) -> RewardConfig:
    """The reward section a preset resolves to (a `RewardConfig` is taken as is).

    Raises:
        ValueError: an unknown preset name.
    """
    if isinstance(preset, RewardConfig):
        return preset
    name = preset.name if isinstance(preset, Preset) else preset
    return TrainConfig(preset=name).reward


def reward_parts(
    response: str,
    *,
    gt_spans: Iterable[Span | tuple[float, float]],
    gt_answer: str,
    preset: Preset | str | RewardConfig,
    zoom: float = 0.0,
    letters: str = "ABCDE",
) -> dict[str, float]:
    """Every reward part of one ``zoomzero``-layout reply, and the weighted ``total``.

    Args:
        response: the reply's text.
        gt_spans: the ground-truth spans in seconds.
        gt_answer: the correct option letter (``"A"``).
        preset: a preset (name or object), or a `RewardConfig`: the rules and weights.
        zoom: the verifier's zoom-in verdict (0 or 1).
        letters: the question's option letters (ours rules only; theirs accept A–F).

    Returns:
        ``format``, ``iou``, ``answer``, ``zoom``, ``number`` and ``total``.

    Raises:
        ValueError: ``zoom`` outside [0, 1], or an unknown preset.

    Example:
        >>> reply = "<think>At <time>x</time> a dog.</think>\\n<answer>(B)</answer>\\n<glue>[(5, 8)]</glue>"
        >>> reward_parts(reply, gt_spans=[(5, 8)], gt_answer="B", preset="zoomzero", zoom=1)["format"]
        1.0
    """
    if not 0.0 <= zoom <= 1.0:
        raise ValueError(f"zoom reward must be in [0, 1], got {zoom}")
    config = reward_config(preset)
    truth = [s if isinstance(s, Span) else Span(start=float(s[0]), end=float(s[1])) for s in gt_spans]
    if config.rules == "official":
        spans = official_glue(response) or []
        answer = official_answer(response)
        fmt = official_format(response, config.invalid_glue_format)
    else:
        parsed = protocol.parse(response, "zoomzero", letters=letters)
        spans, answer, fmt = list(parsed.spans), parsed.answer, parsed.format_score
    scored = answer is not None or not config.parts_need_answer
    parts = {
        "format": fmt,
        "iou": iou_reward(spans, truth) if scored and spans else 0.0,
        "answer": answer_reward(answer, gt_answer),
        "zoom": float(zoom) if scored and spans else 0.0,
        "number": number_probe([response]),
    }
    parts["total"] = total_reward(parts, config.weights())
    return parts
