"""Credit assignment: GRPO, per-channel, token-selective A/B against a slow reference loop."""

from __future__ import annotations

import math
import random

import pytest
import torch
from credit_reference import reference_token_selective_advantages

from zoom_agent.training.core.credit import (
    CHANNELS,
    REGIONS,
    grpo_advantages,
    token_selective_advantages,
)

EPS = 1e-6


def _random_batch(seed: int, dtype: torch.dtype = torch.float64) -> dict:
    """Random groups of sizes 1..6 with shuffled, non-contiguous ids, random masks and rewards."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    sizes = [rng.randint(1, 6) for _ in range(rng.randint(1, 5))]
    ids = [rng.randint(-50, 10_000) for _ in sizes]
    while len(set(ids)) < len(ids):
        ids = [rng.randint(-50, 10_000) for _ in sizes]
    group = [i for i, n in zip(ids, sizes, strict=True) for _ in range(n)]
    rng.shuffle(group)
    batch, length = len(group), rng.randint(1, 24)
    # Discrete rewards half the time, so that zero-variance groups and channels come up often.
    if rng.random() < 0.5:
        rewards = {k: torch.randint(0, 3, (batch,), generator=gen).to(dtype) / 2 for k in CHANNELS}
    else:
        rewards = {k: torch.rand(batch, generator=gen, dtype=dtype) for k in CHANNELS}
    loss_mask = torch.rand(batch, length, generator=gen) < rng.random()
    loss_mask[torch.rand(batch, generator=gen) < 0.15] = False  # empty responses
    regions = {
        "span": torch.rand(batch, length, generator=gen) < rng.random() * 0.5,
        "answer": torch.rand(batch, length, generator=gen) < rng.random() * 0.3,
    }
    return {"rewards": rewards, "regions": regions, "loss_mask": loss_mask, "group": torch.tensor(group)}


def _random_channel_regions(seed: int) -> dict[str, list[str]] | None:
    rng = random.Random(seed * 7 + 1)
    if rng.random() < 0.4:
        return None
    chosen = rng.sample(CHANNELS, rng.randint(1, len(CHANNELS)))
    return {k: rng.sample(REGIONS, rng.randint(0, 3)) for k in chosen}


@pytest.mark.parametrize("variant", ["A", "B"])
def test_vectorised_equals_reference_over_seeds(variant: str) -> None:
    for seed in range(150):
        inputs = _random_batch(seed)
        channel_regions = _random_channel_regions(seed)
        fast = token_selective_advantages(**inputs, variant=variant, channel_regions=channel_regions)
        slow = reference_token_selective_advantages(**inputs, variant=variant, channel_regions=channel_regions)
        assert fast.dtype == torch.float64 and fast.shape == slow.shape
        assert torch.isfinite(fast).all()
        assert torch.allclose(fast, slow, rtol=1e-6, atol=1e-6), f"seed {seed}: {(fast - slow).abs().max()}"
        assert (fast[~inputs["loss_mask"]] == 0).all()


@pytest.mark.parametrize("variant", ["A", "B"])
def test_float32_rewards_give_float32_close_to_reference(variant: str) -> None:
    for seed in range(20):
        inputs = _random_batch(seed, dtype=torch.float32)
        fast = token_selective_advantages(**inputs, variant=variant)
        slow = reference_token_selective_advantages(**inputs, variant=variant)
        assert fast.dtype == torch.float32
        assert torch.allclose(fast.double(), slow, rtol=1e-6, atol=1e-6)


def test_zero_one_integer_masks_equal_bool_masks() -> None:
    inputs = _random_batch(11)
    as_int = dict(
        inputs,
        loss_mask=inputs["loss_mask"].long(),
        regions={k: v.to(torch.uint8) for k, v in inputs["regions"].items()},
    )
    for variant in ("A", "B"):
        assert torch.equal(
            token_selective_advantages(**inputs, variant=variant),
            token_selective_advantages(**as_int, variant=variant),
        )


def _hand_group() -> tuple[dict, torch.Tensor]:
    """Two responses of one prompt; tokens: reasoning, reasoning, span, span, answer, tool (mask 0)."""
    loss_mask = torch.tensor([[1, 1, 1, 1, 1, 0]] * 2, dtype=torch.bool)
    regions = {
        "span": torch.tensor([[0, 0, 1, 1, 0, 0]] * 2, dtype=torch.bool),
        "answer": torch.tensor([[0, 0, 0, 0, 1, 0]] * 2, dtype=torch.bool),
    }
    return {"regions": regions, "loss_mask": loss_mask, "group": torch.tensor([7, 7])}, loss_mask


def _rewards(**pairs: tuple[float, float]) -> dict[str, torch.Tensor]:
    base = {k: (0.0, 0.0) for k in CHANNELS} | pairs
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in base.items()}


def test_variant_a_answer_tokens_get_only_answer_and_shared_channels() -> None:
    inputs, _ = _hand_group()
    # Only the answer channel differs: reasoning and span tokens must get nothing from it.
    adv = token_selective_advantages(_rewards(answer=(1.0, 0.0)), **inputs, variant="A")
    # Group of two with rewards 1, 0: mean 0.5, unbiased std 1/sqrt(2); Â = ±0.5 / (0.7071068 + eps).
    a_hat = 0.5 / (1 / math.sqrt(2) + EPS)
    expected = torch.tensor([[0, 0, 0, 0, a_hat / 3, 0], [0, 0, 0, 0, -a_hat / 3, 0]], dtype=torch.float64)
    assert torch.allclose(adv, expected, atol=1e-12)

    # Only IoU differs (0.8 vs 0.2): reasoning and span tokens get it, the answer token does not.
    adv = token_selective_advantages(_rewards(iou=(0.8, 0.2)), **inputs, variant="A")
    i_hat = 0.3 / (0.6 / math.sqrt(2) + EPS)
    row = [i_hat / 3] * 4 + [0.0, 0.0]
    assert torch.allclose(adv, torch.tensor([row, [-x for x in row]], dtype=torch.float64), atol=1e-12)

    # A shared channel (zoom) reaches every policy token; all channels add up per token.
    adv = token_selective_advantages(
        _rewards(zoom=(1.0, 0.0), iou=(0.8, 0.2), answer=(0.0, 1.0)), **inputs, variant="A"
    )
    first = [(a_hat + i_hat) / 3] * 4 + [(a_hat - a_hat) / 3, 0.0]
    assert torch.allclose(adv[0], torch.tensor(first, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(adv[1], -adv[0], atol=1e-12)


def test_variant_b_span_tokens_get_only_grounding_and_shared_channels() -> None:
    inputs, _ = _hand_group()
    # Response 0 earned only IoU, response 1 only the answer.
    adv = token_selective_advantages(_rewards(iou=(1.0, 0.0), answer=(0.0, 1.0)), **inputs, variant="B")
    # s_t = r/4 on tokens of the credited region: response 0 -> .25 on its 4 reasoning/span
    # tokens, 0 on its answer; response 1 -> 0 on reasoning/span, .25 on its answer.
    # 10 tokens: four .25 + one .25 = 5 of .25, 5 of 0 -> mean .125, unbiased
    # std = sqrt(10 * .125^2 / 9) = .125 * sqrt(10 / 9); z = ±1 / sqrt(10 / 9) = ±0.9486833.
    std = 0.125 * math.sqrt(10 / 9)
    z = 0.125 / (std + EPS)
    expected = torch.tensor([[z, z, z, z, -z, 0], [-z, -z, -z, -z, z, 0]], dtype=torch.float64)
    assert abs(z - 0.9486833) < 1e-5
    assert torch.allclose(adv, expected, atol=1e-12)

    # A shared channel (format) moves every policy token of a response together.
    adv = token_selective_advantages(_rewards(format=(1.0, 0.0)), **inputs, variant="B")
    assert torch.allclose(adv[0, :5], torch.full((5,), z, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(adv[1, :5], torch.full((5,), -z, dtype=torch.float64), atol=1e-12)


def test_custom_channel_regions_route_a_channel() -> None:
    inputs, _ = _hand_group()
    # IoU credited to span tokens only (not reasoning): reasoning tokens get 0.
    adv = token_selective_advantages(_rewards(iou=(0.8, 0.2)), **inputs, variant="A", channel_regions={"iou": ["span"]})
    i_hat = 0.3 / (0.6 / math.sqrt(2) + EPS)
    assert torch.allclose(adv[0], torch.tensor([0, 0, i_hat / 3, i_hat / 3, 0, 0], dtype=torch.float64))
    # An empty list credits the channel to no token at all.
    adv = token_selective_advantages(_rewards(iou=(0.8, 0.2)), **inputs, variant="B", channel_regions={"iou": []})
    assert (adv == 0).all()


@pytest.mark.parametrize("variant", ["A", "B"])
def test_zero_variance_group_gives_zeros_not_nan(variant: str) -> None:
    inputs, _ = _hand_group()
    # 0.1 etc. are not exact in binary: a naive (r - mean) / (0 + eps) would give noise / 1e-6.
    same = {k: torch.tensor([v, v], dtype=torch.float32) for k, v in zip(CHANNELS, (0.1, 0.7, 0.3, 1.0), strict=True)}
    adv = token_selective_advantages(same, **inputs, variant=variant)
    assert torch.equal(adv, torch.zeros(2, 6))


@pytest.mark.parametrize("variant", ["A", "B"])
def test_group_of_one_and_empty_responses_give_zeros(variant: str) -> None:
    inputs, _ = _hand_group()
    single = {k: v[:1] for k, v in _rewards(iou=(1.0, 0.0), answer=(0.3, 0.0)).items()}
    adv = token_selective_advantages(
        single,
        {k: v[:1] for k, v in inputs["regions"].items()},
        inputs["loss_mask"][:1],
        torch.tensor([3]),
        variant=variant,
    )
    assert torch.equal(adv, torch.zeros(1, 6, dtype=torch.float64))
    empty = dict(inputs, loss_mask=torch.zeros(2, 6, dtype=torch.bool))
    adv = token_selective_advantages(_rewards(iou=(1.0, 0.0)), **empty, variant=variant)
    assert torch.equal(adv, torch.zeros(2, 6, dtype=torch.float64))
    no_tokens = token_selective_advantages(
        _rewards(iou=(1.0, 0.0)),
        {k: v[:, :0] for k, v in inputs["regions"].items()},
        inputs["loss_mask"][:, :0],
        inputs["group"],
        variant=variant,
    )
    assert no_tokens.shape == (2, 0)


def _single_response(variant: str, single_response: str, **rewards: float) -> torch.Tensor:
    """Token-selective advantages of one response alone in its group (the hand group's first)."""
    inputs, _ = _hand_group()
    one = {k: torch.tensor([rewards.get(k, 0.0)], dtype=torch.float64) for k in CHANNELS}
    return token_selective_advantages(
        one,
        {k: v[:1] for k, v in inputs["regions"].items()},
        inputs["loss_mask"][:1],
        torch.tensor([3]),
        variant=variant,
        single_response=single_response,
        zero_constant_groups=False,
    )


def test_group_of_one_is_zero_by_us_and_raw_by_their_mean_0_std_1() -> None:
    rewards = {"format": 1.0, "zoom": 0.0, "iou": 0.6, "answer": 1.0}
    for variant in ("A", "B"):
        assert torch.equal(_single_response(variant, "zero", **rewards), torch.zeros(1, 6, dtype=torch.float64))
    # Theirs: (x - 0) / (1 + eps). Tokens: reasoning, reasoning, span, span, answer, tool.
    # B: s_t = (format + zoom + iou) / 4 on reasoning/span, (format + zoom + answer) / 4 on the answer.
    b = _single_response("B", "raw", **rewards)
    reason, answer = (1.0 + 0.6) / 4 / (1 + EPS), (1.0 + 1.0) / 4 / (1 + EPS)
    assert torch.allclose(b, torch.tensor([[reason] * 4 + [answer, 0.0]], dtype=torch.float64), atol=1e-12)
    # A: (1/3) * sum of the raw channel rewards each token is credited with.
    a = _single_response("A", "raw", **rewards)
    reason, answer = (1.0 + 0.6) / 3 / (1 + EPS), (1.0 + 1.0) / 3 / (1 + EPS)
    assert torch.allclose(a, torch.tensor([[reason] * 4 + [answer, 0.0]], dtype=torch.float64), atol=1e-12)
    # GRPO: the total over (1 + eps); groups of two are untouched by the option.
    rewards_seq, group = torch.tensor([0.9, 1.0, 0.0]), torch.tensor([5, 6, 6])
    raw = grpo_advantages(rewards_seq, group, single_response="raw")
    assert raw[0].item() == pytest.approx(0.9 / (1 + EPS), abs=1e-7)
    assert torch.equal(raw[1:], grpo_advantages(rewards_seq, group)[1:])
    assert grpo_advantages(rewards_seq, group)[0].item() == 0.0
    centred = grpo_advantages(rewards_seq, group, normalize_std=False, single_response="raw")
    assert centred[0].item() == pytest.approx(0.9)
    with pytest.raises(ValueError, match="single_response must be 'zero' or 'raw'"):
        grpo_advantages(rewards_seq, group, single_response="one")  # type: ignore[arg-type]


def test_zoomzero_preset_gives_groups_of_one_their_raw_advantage() -> None:
    from zoom_agent.training.config import TrainConfig, load_recipe

    assert TrainConfig().credit.single_response == "zero"
    assert TrainConfig(preset="zoomzero").credit.single_response == "raw"
    assert load_recipe("zoomzero-stage1").credit.single_response == "raw"


def test_grpo_advantages_hand_values() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.9, 0.2, 0.4, 0.3])
    group = torch.tensor([10, 10, 3, 3, -1, 42, 42, 42])
    adv = grpo_advantages(rewards, group)
    # 42: mean .3, unbiased std .1 -> (-.1/.1, .1/.1, 0); -1 alone -> 0; 3 equal -> 0.
    expected = torch.tensor([0.5 / (0.5**0.5 + EPS), -0.5 / (0.5**0.5 + EPS), 0, 0, 0, -1, 1, 0])
    assert torch.allclose(adv, expected, atol=1e-4)
    assert adv[2:5].eq(0).all()
    centred = grpo_advantages(rewards, group, normalize_std=False)
    assert torch.allclose(centred, torch.tensor([0.5, -0.5, 0, 0, 0, -0.1, 0.1, 0.0]), atol=1e-6)


def test_grpo_zero_variance_is_exactly_zero_in_float32() -> None:
    adv = grpo_advantages(torch.full((8,), 0.1), torch.zeros(8, dtype=torch.long))
    assert torch.equal(adv, torch.zeros(8))
    assert grpo_advantages(torch.tensor([True, False]), torch.tensor([0, 0])).dtype == torch.float32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rewards": {"format": torch.zeros(2)}}, "missing"),
        ({"rewards": _rewards() | {"length": torch.zeros(2)}}, "unknown"),
        ({"channel_regions": {"speed": ["all"]}}, "unknown channel"),
        ({"channel_regions": {"iou": ["thinking"]}}, "unknown regions"),
        ({"channel_regions": {"iou": "span"}}, "list of region names"),
        ({"group": torch.tensor([0.0, 1.0])}, "integer"),
        ({"group": torch.tensor([0, 1, 2])}, "shape"),
        ({"loss_mask": torch.ones(2, 5, dtype=torch.bool)}, "shape"),
        ({"loss_mask": torch.full((2, 6), 2)}, "0 and 1"),
        ({"regions": {"span": torch.zeros(2, 6, dtype=torch.bool)}}, "missing"),
        ({"rewards": _rewards(iou=(math.nan, 0.0))}, "finite"),
        ({"rewards": _rewards() | {"zoom": torch.zeros(3)}}, "shape"),
        ({"variant": "C"}, "variant"),
    ],
)
def test_bad_input_gets_clear_error(change: dict, message: str) -> None:
    inputs, _ = _hand_group()
    kwargs = {"rewards": _rewards(), **inputs, "variant": "B"} | change
    with pytest.raises((ValueError, TypeError), match=message):
        token_selective_advantages(**kwargs)
