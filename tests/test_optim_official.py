"""The optimiser as their code runs it (zoomzero preset) and ours: the schedule, the KL value
clamp, the aggregation, old log-probs once then mini-batches, constant groups, variant A's
masks, the difficulty filter, ``train --dry-run`` (docs/training.md §2, §3)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from zoom_agent.training.config import TrainConfig, load_recipe
from zoom_agent.training.core.credit import CHANNELS, token_selective_advantages
from zoom_agent.training.core.loss import policy_loss
from zoom_agent.training.core.rewards import difficulty_keep
from zoom_agent.training.loop.optim import lr_lambda, mini_batches
from zoom_agent.training.loop.update import _split


def _official_factor(step: int) -> float:
    """transformers' get_cosine_schedule_with_warmup(10, 500) written out by hand."""
    if step < 10:
        return step / 10
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - 10) / 490)))


@pytest.mark.parametrize("recipe", ["zoomzero-stage1", "zoomzero-stage2"])
def test_the_preset_schedule_is_theirs(recipe: str) -> None:
    config = load_recipe(recipe)
    f = lr_lambda(config, total_steps=37)  # the run's length does not matter: the horizon is 500
    assert f(0) == 0.0 and f(10) == 1.0 and f(500) == pytest.approx(0.0, abs=1e-12)
    # their global steps count from 1, so their step 200 runs at factor(199): 0.6755 (~0.68);
    # our 0-based step 200 is factor(200) = 0.6727
    assert f(199) == pytest.approx(0.68, abs=0.005) and f(200) == pytest.approx(0.6727, abs=1e-4)
    for step in (1, 5, 9, 11, 100, 250, 499):
        assert f(step) == pytest.approx(_official_factor(step))


def test_our_schedule_spans_the_run_and_step_zero_trains() -> None:
    f = lr_lambda(TrainConfig(), total_steps=200)
    assert f(0) == pytest.approx(1 / 11)  # (step + 1) / (warmup + 1)
    assert f(200) == pytest.approx(0.0, abs=1e-12)  # ~0 where theirs is 0.68


def test_mini_batches_per_rollout_step() -> None:
    assert mini_batches(load_recipe("zoomzero-stage1")) == 8  # 64 x 8 responses / 64
    assert mini_batches(TrainConfig()) == 1
    assert mini_batches(TrainConfig.model_validate({"optim": {"mini_batch_size": 100}})) == 6  # ceil(512 / 100)
    assert _split(5, 2) == [[0, 1, 2], [3, 4]]
    assert _split(1, 3) == [[0], [], []]  # a rank with fewer trajectories still joins every step


def test_the_preset_loss_settings() -> None:
    preset, ours = load_recipe("zoomzero-stage1").loss, TrainConfig().loss
    assert (preset.aggregation, preset.kl_value_clamp) == ("seq-mean-token-mean", 10.0)
    assert (ours.aggregation, ours.kl_value_clamp) == ("token-mean", None)


def test_kl_value_clamp() -> None:
    logp = torch.tensor([[-0.1, -0.1]], requires_grad=True)
    ref = torch.tensor([[-0.1, 3.0]])  # exp(3.1) - 3.1 - 1 = 18.1 on the second token
    args = dict(ref_logprobs=ref, kl_coef=1.0)
    zero = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    ours = policy_loss(logp, logp.detach(), zero, mask, **args)
    theirs = policy_loss(logp, logp.detach(), zero, mask, kl_value_clamp=10.0, **args)
    assert float(ours.kl) == pytest.approx((math.exp(3.1) - 3.1 - 1) / 2, rel=1e-5)
    assert float(theirs.kl) == pytest.approx(10.0 / 2)
    theirs.loss.backward()
    assert logp.grad is not None and float(logp.grad[0, 1]) == 0.0  # a clamped value has no gradient


def test_train_dry_run_prints_the_plan_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from zoom_agent.cli import main

    assert main(["train", "zoomzero-stage1", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["optimizer_steps_per_rollout_step"] == 8
    lr = plan["lr"]
    assert lr["0"] == 0.0 and lr["10"] == pytest.approx(1e-6) and lr["500"] == pytest.approx(0.0, abs=1e-18)
    assert lr["200"] == pytest.approx(1e-6 * _official_factor(200))
    assert plan["config"]["preset"] == "zoomzero" and plan["config"]["reward"]["rules"] == "official"
    # ours: the horizon is the run's length, unknown without max_steps
    assert main(["train", "tiny-cpu", "--dry-run", "--json", "-o", "max_steps=100"]) == 0
    ours = json.loads(capsys.readouterr().out)
    assert ours["optimizer_steps_per_rollout_step"] == 1 and ours["lr"]["200"] == pytest.approx(0.0, abs=1e-18)


def _two_responses() -> dict[str, Any]:
    """Two responses of one group: two reasoning tokens then one answer token each."""
    answer = torch.tensor([[False, False, True], [False, False, True]])
    return {
        "regions": {"span": torch.zeros(2, 3, dtype=torch.bool), "answer": answer},
        "loss_mask": torch.ones(2, 3, dtype=torch.bool),
        "group": torch.tensor([0, 0]),
    }


def _channels(**pairs: tuple[float, float]) -> dict[str, torch.Tensor]:
    base = {k: (0.0, 0.0) for k in CHANNELS} | pairs
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in base.items()}


def test_constant_groups_zeroed_by_us_and_ranked_by_their_formula() -> None:
    same = _channels(format=(1.0, 1.0), zoom=(1.0, 1.0), iou=(1.0, 1.0))  # answer 0 for both
    ours = token_selective_advantages(same, **_two_responses(), variant="B")
    assert torch.equal(ours, torch.zeros(2, 3, dtype=torch.float64))
    theirs = token_selective_advantages(same, **_two_responses(), variant="B", zero_constant_groups=False)
    # s_t: reasoning (1 + 1 + 1) / 4 = .75, answer (1 + 1 + 0) / 4 = .5; 6 tokens, mean 2/3,
    # unbiased std sqrt((4 / 144 + 2 / 36) / 5) = 0.1290994
    std = math.sqrt((4 / 144 + 2 / 36) / 5)
    z_reason, z_answer = (0.75 - 2 / 3) / (std + 1e-6), (0.5 - 2 / 3) / (std + 1e-6)
    assert torch.allclose(theirs, torch.tensor([[z_reason, z_reason, z_answer]] * 2, dtype=torch.float64))
    assert load_recipe("zoomzero-stage1").credit.zero_constant_groups is False
    assert TrainConfig().credit.zero_constant_groups is True


def test_variant_a_answer_channel_on_reasoning_as_their_code() -> None:
    theirs = load_recipe("zoomzero-stage1", ["credit.variant=A"]).credit
    assert theirs.regions() == {"answer": ("reasoning", "answer")}
    assert load_recipe("zoomzero-stage1").credit.regions() is None  # variant B: their masks are ours
    assert TrainConfig.model_validate({"credit": {"variant": "A"}}).credit.regions() is None
    rewards = _channels(answer=(1.0, 0.0))
    a_hat = 0.5 / (1 / math.sqrt(2) + 1e-6)
    official = token_selective_advantages(
        rewards,
        **_two_responses(),
        variant="A",
        channel_regions=theirs.regions(),
    )
    assert torch.allclose(official[0], torch.full((3,), a_hat / 3, dtype=torch.float64))
    ours = token_selective_advantages(rewards, **_two_responses(), variant="A")
    assert torch.allclose(ours[0], torch.tensor([0.0, 0.0, a_hat / 3], dtype=torch.float64))


def test_difficulty_filter_keeps_all_wrong_questions_in_their_setting() -> None:
    ious, all_wrong = [0.5, 0.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0]
    assert not difficulty_keep(ious, all_wrong)
    assert difficulty_keep(ious, all_wrong, keep_all_wrong=True)
    assert not difficulty_keep(ious, [1.0] * 4, keep_all_wrong=True)  # all right: dropped in both
    assert load_recipe("zoomzero-stage1").difficulty_keep_all_wrong is True
    assert TrainConfig().difficulty_keep_all_wrong is False
