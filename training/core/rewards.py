"""The rewards of docs/method.md §3, as pure functions returning named parts.

Every part lies in [0, 1]:

- ``format``: the dialect's layout, per model turn (`protocol.parse`'s format score: 1, 0.5
  when spans are present but invalid, else 0), averaged over the turns of the trajectory
  (ours: a multi-turn trajectory is well formed when every turn is).
- ``iou``: multi-span temporal IoU of the final evidence spans against the ground truth
  (`spans.multi_iou`, the same function as the metrics); 0 without spans or ground truth.
- ``answer``: 1 when the final option letter is the correct one.
- ``zoom``: zoom-in accuracy, decided by `training.loop.verifier` (passed in here: the verifier
  runs a model, these functions do not); 0 without a valid span.
- ``number``: a probe for CI (ours, weight 0 by default): 1 when the replies hold a digit
  (a time is a number). Random weights reach it about one time in four with the tiny
  model's 16-token replies, so a short CPU run can show learning.
- ``total``: ``sum_k weight_k * r_k``; the default weights give the paper's
  ``((answer + zoom) / 2 + format + iou) / 3``.

No function here prints, writes files or keeps state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from zoom_agent import protocol
from zoom_agent.spans import multi_iou
from zoom_agent.types import GroundedAnswer, Question, Span

PAPER_WEIGHTS: Mapping[str, float] = {"format": 1 / 3, "zoom": 1 / 6, "iou": 1 / 3, "answer": 1 / 6}
"""The paper's reward parts and their weights: ``R = ((R_acc + R_zoom) / 2 + R_fmt + R_IoU) / 3``
(their logs). These four are also the channels token-selective credit distributes
(`credit.CHANNELS`), in this order."""

PROBE = "number"
"""The CI probe part (ours); it weighs 0 unless a recipe sets ``reward.number``."""

PARTS: tuple[str, ...] = (*PAPER_WEIGHTS, PROBE)
"""Every reward part, in the order they are logged (``reward/<name>``); ``total`` comes last.
`RewardConfig` has one weight field per part."""


def format_reward(texts: Sequence[str], dialect: protocol.Dialect = "tool", letters: str = "ABCDE") -> float:
    """Mean format score of a trajectory's model turns (0 for no turn).

    Args:
        texts: the text of each model turn, in order.
        dialect: ``"tool"`` or ``"zoomzero"``.
        letters: the question's option letters.

    Returns:
        A value in [0, 1].
    """
    if not texts:
        return 0.0
    return sum(protocol.parse(t, dialect, letters=letters).format_score for t in texts) / len(texts)


def iou_reward(predicted: Iterable[Span | tuple[float, float]], truth: Iterable[Span]) -> float:
    """Multi-span temporal IoU (merged intervals), 0 when either side is empty or a span is bad.

    Args:
        predicted: the evidence spans the policy gave.
        truth: the ground-truth spans.

    Returns:
        ``|P ∩ G| / (|P| + |G| - |P ∩ G|)`` in [0, 1].
    """
    pred = [s.as_tuple() if isinstance(s, Span) else (float(s[0]), float(s[1])) for s in predicted]
    if not pred or any(protocol.check_window(a, b) for a, b in pred):  # the protocol's one window rule
        return 0.0
    return float(multi_iou(pred, list(truth)))


def answer_reward(answer: str | None, correct: str | None) -> float:
    """1.0 when the option letter equals the correct one, else 0 (no answer counts wrong)."""
    return 1.0 if answer is not None and correct is not None and answer == correct else 0.0


def number_probe(texts: Sequence[str]) -> float:
    """The CI probe: 1.0 when any turn's text holds an ASCII digit, else 0.0."""
    return 1.0 if any(c in "0123456789" for t in texts for c in t) else 0.0


def total_reward(parts: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """``sum_k weights[k] * parts[k]``.

    Raises:
        ValueError: a weight names a part that is not given.
    """
    missing = sorted(set(weights) - set(parts))
    if missing:
        raise ValueError(f"weights name parts {missing} that are not among {sorted(parts)}")
    return float(sum(w * parts[k] for k, w in weights.items()))


def trajectory_rewards(
    question: Question,
    result: GroundedAnswer,
    *,
    zoom: float,
    weights: Mapping[str, float],
    dialect: protocol.Dialect = "tool",
) -> dict[str, float]:
    """All reward parts of one rollout, and their weighted total.

    Args:
        question: the question with its ground truth (answer index, spans).
        result: what the agent graph returned for this rollout.
        zoom: the verifier's zoom-in reward for this rollout (0 or 1).
        weights: part -> weight of the total (missing parts weigh 0).
        dialect: the rollouts' dialect (for the format score).

    Returns:
        every part of `PARTS`, and ``total``; an errored rollout scores
        0 everywhere (its turns are still scored for the probe and format).
    """
    if not 0.0 <= zoom <= 1.0:
        raise ValueError(f"zoom reward must be in [0, 1], got {zoom}")
    texts = [t.text for t in result.turns]
    answered = result.status == "answered"
    parts = {
        "format": format_reward(texts, dialect, question.letters or "ABCDE"),
        "iou": iou_reward(result.spans, question.gt_spans) if answered else 0.0,
        "answer": answer_reward(result.answer, question.answer_letter) if answered else 0.0,
        "zoom": float(zoom) if answered and result.spans else 0.0,
        "number": number_probe(texts),
    }
    parts["total"] = total_reward(parts, weights)
    return parts


def difficulty_keep(ious: Sequence[float], answers: Sequence[float], *, keep_all_wrong: bool = False) -> bool:
    """Their data filter (docs/method.md §4): is this question worth training on?

    Keep when the group's IoUs spread (``max - mean > 0.1`` or ``min > 0``) and the answer
    hit-rate is strictly between 0 and 1 (ours), or ``0 <= hit rate < 1`` with
    ``keep_all_wrong`` (their filter_variance.py: questions every sample got wrong stay).

    Args:
        ious: the IoU reward of each sample of the question's group.
        answers: the answer reward (0/1) of each sample.
        keep_all_wrong: keep a hit rate of 0 too (their code).

    Returns:
        True to keep the question.
    """
    if not ious or len(ious) != len(answers):
        raise ValueError(f"need one IoU and one answer per sample, got {len(ious)} and {len(answers)}")
    mean_iou = sum(ious) / len(ious)
    spread = max(ious) - mean_iou > 0.1 or min(ious) > 0
    hit_rate = sum(answers) / len(answers)
    some_right = hit_rate > 0.0 or keep_all_wrong
    return spread and some_right and hit_rate < 1.0
