"""`training.rewards.reward_parts`: their tvg_zoom rules (zoomzero preset) and ours, pinned to
values read by hand from their ``verl/utils/reward_score/tvg_zoom.py`` (docs/training.md §3)."""

from __future__ import annotations

import pytest

from zoom_agent.training.config import RewardConfig, TrainConfig, load_recipe
from zoom_agent.training.rewards import official_answer, official_glue, reward_parts

GT = [(5.0, 8.0), (20.0, 35.0)]
OFFICIAL = (
    "<think>The dog runs at <time> from 5.2s to 10.4s </time> and later.</think>\n"
    "<answer>(B)</answer>\n<glue>[(5, 8), (20, 35)]</glue>"
)


def _parts(reply: str, preset: str | RewardConfig = "zoomzero", zoom: float = 1.0) -> dict[str, float]:
    return reward_parts(reply, gt_spans=GT, gt_answer="B", preset=preset, zoom=zoom)


def test_official_style_reply_scores_full_under_the_preset() -> None:
    parts = _parts(OFFICIAL)
    assert parts["format"] == 1.0 and parts["iou"] == 1.0 and parts["answer"] == 1.0 and parts["zoom"] == 1.0
    assert parts["total"] == pytest.approx(1.0)
    # ours judges the time tag's content: "from 5.2s to 10.4s" is no window -> 0.5
    assert _parts(OFFICIAL, "ours")["format"] == 0.5


# Replies our parser takes (format 1) that their regexes refuse (format 0).
_TIMED = OFFICIAL.replace(" from 5.2s to 10.4s ", "(5, 8)")
LENIENT = {
    "same-line elements": _TIMED.replace("</think>\n", "</think> ").replace("</answer>\n", "</answer> "),
    "letter with a dot": _TIMED.replace("<answer>(B)</answer>", "<answer>B.</answer>"),
    "bare pairs": _TIMED.replace("[(5, 8), (20, 35)]", "(5, 8), (20, 35)"),
    "nested lists": _TIMED.replace("[(5, 8), (20, 35)]", "[[5, 8], [20, 35]]"),
    "exponent": _TIMED.replace("(20, 35)", "(20, 3.5e1)"),
    "no time tag": _TIMED.replace("<time>(5, 8)</time>", "5 s"),
}


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_departures_from_their_layout_get_format_zero(name: str) -> None:
    assert _parts(LENIENT[name])["format"] == 0.0
    assert _parts(LENIENT[name], "ours")["format"] == 1.0


def test_letters_beyond_f_are_refused_and_a_to_f_taken() -> None:
    f_reply = OFFICIAL.replace("(B)", "F")
    assert _parts(f_reply)["format"] == 1.0
    assert _parts(OFFICIAL.replace("(B)", "G"))["format"] == 0.0


def test_invalid_glue_is_zero_in_the_preset_and_half_as_an_option() -> None:
    reversed_pair = OFFICIAL.replace("(20, 35)", "(35, 20)")  # layout holds, the list is invalid
    assert _parts(reversed_pair)["format"] == 0.0
    sep = RewardConfig(rules="official", invalid_glue_format=0.5, parts_need_answer=False)
    assert _parts(reversed_pair, sep)["format"] == 0.5
    # the whole list is invalid: IoU 0, though (5, 8) alone would overlap
    assert _parts(reversed_pair)["iou"] == 0.0
    assert _parts(reversed_pair, "ours")["iou"] == pytest.approx(3 / 18)  # ours: the valid subset


def test_iou_without_a_parsed_answer() -> None:
    no_answer = OFFICIAL.replace("<answer>(B)</answer>", "")
    assert _parts(no_answer)["iou"] == 1.0  # their code: from the glue regardless
    assert _parts(no_answer)["answer"] == 0.0
    assert _parts(no_answer, "ours")["iou"] == 0.0  # parts_need_answer


def test_partial_iou_and_total() -> None:
    reply = OFFICIAL.replace("[(5, 8), (20, 35)]", "[(0, 8)]").replace("(B)", "C")
    parts = _parts(reply, zoom=0.0)
    assert parts["iou"] == pytest.approx(3 / 23)  # |(5,8)| / |(0,8) u (20,35)|
    assert parts["answer"] == 0.0
    assert parts["total"] == pytest.approx((0 + 1 + 3 / 23) / 3)


def test_glue_and_answer_readers() -> None:
    assert official_glue("<glue>[(1.5,2), (3, 4),]</glue>") == [(1.5, 2.0), (3.0, 4.0)]
    assert official_glue("<glue>[( 1, 2)]</glue>") == []
    assert official_glue("<glue>[(5., 6)]</glue>") == []
    assert official_glue("no glue") is None
    assert official_answer("<think><answer>A</answer></think>\n<answer> (C) </answer>") == "C"


def test_stage_recipes_resolve_the_preset_rules() -> None:
    for name in ("zoomzero-stage1", "zoomzero-stage2"):
        reward = load_recipe(name).reward
        assert (reward.rules, reward.invalid_glue_format, reward.parts_need_answer) == ("official", 0.0, False)
    assert load_recipe("tiny-cpu").reward.rules == "ours"
    direct = TrainConfig.model_validate({"preset": "zoomzero", "reward": {"invalid_glue_format": 0.5}})
    assert (direct.reward.rules, direct.reward.invalid_glue_format, direct.agent.temperature) == ("official", 0.5, 1.0)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="zoom reward"):
        _parts(OFFICIAL, zoom=2.0)
    with pytest.raises(ValueError, match="unknown preset"):
        _parts(OFFICIAL, "nope")
