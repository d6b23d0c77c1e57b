"""Policy loss: PPO-clip (asymmetric), k3 KL, aggregation modes, masks and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from zoom_agent.training.core.loss import AGGREGATIONS, policy_loss

# Ratios pi/pi_old with old logprobs 0; clip range [0.8, 1.28] (their code).
RATIOS = [[1.5, 0.5, 1.0], [1.1, 0.7, 2.0]]
ADV = [[1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
MASK = [[1, 1, 1], [1, 1, 0]]
# Per token -min(r A, clip(r) A): 1.5,+ -> -1.28 (clipped); 0.5,+ -> -0.5; 1.0,- -> 1.0;
# 1.1,- -> 1.1; 0.7,- -> 0.8 (clipped); the last token is masked out.
HAND = {
    "token-mean": (-1.28 - 0.5 + 1.0 + 1.1 + 0.8) / 5,  # 0.224
    "seq-mean-token-mean": ((-1.28 - 0.5 + 1.0) / 3 + (1.1 + 0.8) / 2) / 2,  # 0.345
    "seq-mean-token-sum-norm": ((-1.28 - 0.5 + 1.0) + (1.1 + 0.8)) / (2 * 4),  # 0.14, max_len 4
}


def _hand_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    logprobs = torch.tensor(RATIOS, dtype=torch.float64).log().requires_grad_()
    return (
        logprobs,
        torch.zeros(2, 3, dtype=torch.float64),
        torch.tensor(ADV, dtype=torch.float64),
        torch.tensor(MASK),
    )


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_hand_computed_pg_loss_for_each_aggregation(aggregation: str) -> None:
    logprobs, old, adv, mask = _hand_inputs()
    out = policy_loss(logprobs, old, adv, mask, aggregation=aggregation, max_len=4)  # type: ignore[arg-type]
    assert out.loss.item() == pytest.approx(HAND[aggregation], abs=1e-12)
    assert out.pg_loss.item() == pytest.approx(HAND[aggregation], abs=1e-12)
    assert out.clip_frac.item() == pytest.approx(2 / 5)
    assert out.kl.item() == 0.0 and not out.pg_loss.requires_grad


def test_clip_stops_the_gradient_only_where_ppo_says() -> None:
    logprobs, old, adv, mask = _hand_inputs()
    policy_loss(logprobs, old, adv, mask).loss.backward()
    grad = logprobs.grad
    assert grad is not None
    # d/dlogp of -A r is -A r, / 5 tokens. A > 0 and r > 1.28: clipped, no gradient; A > 0 and
    # r < 0.8: not clipped (min keeps r A), so pushed up; A < 0 and r < 0.8: clipped, none;
    # A < 0 and r within range: pushed down.
    expected = torch.tensor([[0.0, -0.5 / 5, 1.0 / 5], [1.1 / 5, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(grad, expected, atol=1e-12)

    # A < 0 with r above 1 + clip_high is NOT clipped (the unclipped branch is larger).
    lp = torch.tensor([[math.log(2.0)]], dtype=torch.float64, requires_grad=True)
    out = policy_loss(lp, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[-1.0]]), torch.ones(1, 1))
    out.loss.backward()
    assert out.loss.item() == pytest.approx(2.0) and out.clip_frac.item() == 0.0
    assert lp.grad is not None and lp.grad.item() == pytest.approx(2.0)


def test_k3_kl_value_and_zero_when_policy_equals_reference() -> None:
    logprobs, _, adv, mask = _hand_inputs()
    zero_adv = torch.zeros_like(adv)
    out = policy_loss(logprobs, logprobs.detach(), zero_adv, mask, ref_logprobs=logprobs.detach(), kl_coef=0.5)
    assert out.kl.item() == 0.0 and out.loss.item() == 0.0
    out.loss.backward()
    assert logprobs.grad is not None and torch.equal(logprobs.grad, torch.zeros(2, 3, dtype=torch.float64))

    # ref - pi = log 2 on every token: k3 = 2 - log 2 - 1.
    ref = logprobs.detach() + math.log(2.0)
    out = policy_loss(logprobs, logprobs.detach(), zero_adv, mask, ref_logprobs=ref, kl_coef=0.5)
    assert out.kl.item() == pytest.approx(1.0 - math.log(2.0))
    assert out.loss.item() == pytest.approx(0.5 * (1.0 - math.log(2.0)))


def test_gradient_flows_only_through_masked_tokens_even_with_garbage_outside() -> None:
    logprobs, old, adv, mask = _hand_inputs()
    with torch.no_grad():
        logprobs[1, 2] = -math.inf  # padding may hold anything
    old = old.clone()
    old[1, 2] = math.nan
    ref = torch.zeros(2, 3, dtype=torch.float64)
    ref[1, 2] = math.inf
    entropy = torch.ones(2, 3, dtype=torch.float64)
    entropy[1, 2] = math.nan
    out = policy_loss(logprobs, old, adv, mask, ref_logprobs=ref, entropy=entropy, entropy_coef=0.1)
    assert all(torch.isfinite(v) for v in (out.loss, out.kl, out.approx_kl, out.entropy, out.clip_frac))
    out.loss.backward()
    assert logprobs.grad is not None
    assert logprobs.grad[1, 2] == 0.0 and torch.isfinite(logprobs.grad).all()
    assert (logprobs.grad[mask.bool()] != 0).any()


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_all_zero_mask_gives_zero_loss_with_a_graph(aggregation: str) -> None:
    logprobs, old, adv, _ = _hand_inputs()
    mask = torch.zeros(2, 3, dtype=torch.bool)
    out = policy_loss(logprobs, old, adv, mask, ref_logprobs=old, aggregation=aggregation, max_len=8)  # type: ignore[arg-type]
    assert out.loss.item() == 0.0 and out.loss.requires_grad
    out.loss.backward()
    assert logprobs.grad is not None and torch.equal(logprobs.grad, torch.zeros(2, 3, dtype=torch.float64))
    assert all(v.item() == 0.0 for v in (out.kl, out.clip_frac, out.entropy, out.approx_kl))


def _reference_loss(lp, old, adv, mask, ref, ent, clip_low, clip_high, kl_coef, ent_coef, aggregation, max_len):
    """Token by token, in plain Python, straight from the formulas."""
    per_seq: list[list[float]] = []
    for b in range(len(lp)):
        row = []
        for t in range(len(lp[b])):
            if not mask[b][t]:
                continue
            ratio = math.exp(lp[b][t] - old[b][t])
            a = adv[b][t]
            value = -min(ratio * a, min(max(ratio, 1 - clip_low), 1 + clip_high) * a)
            d = ref[b][t] - lp[b][t]
            value += kl_coef * (math.exp(d) - d - 1) - ent_coef * ent[b][t]
            row.append(value)
        per_seq.append(row)
    if aggregation == "token-mean":
        tokens = [v for row in per_seq for v in row]
        return sum(tokens) / max(len(tokens), 1)
    if aggregation == "seq-mean-token-mean":
        means = [sum(row) / len(row) for row in per_seq if row]
        return sum(means) / max(len(means), 1)
    return sum(sum(row) for row in per_seq) / (len(per_seq) * max_len)


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_matches_a_straightforward_reference(aggregation: str) -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(20):
        shape = (int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(1, 9, (1,), generator=gen)))
        lp = -torch.rand(shape, generator=gen, dtype=torch.float64) * 3
        old = lp + torch.randn(shape, generator=gen, dtype=torch.float64) * 0.3
        ref = lp + torch.randn(shape, generator=gen, dtype=torch.float64) * 0.3
        adv = torch.randn(shape, generator=gen, dtype=torch.float64)
        ent = torch.rand(shape, generator=gen, dtype=torch.float64)
        mask = torch.rand(shape, generator=gen) < 0.7
        kw = {"clip_low": 0.2, "clip_high": 0.28, "kl_coef": 0.05, "entropy_coef": 0.01}
        out = policy_loss(lp, old, adv, mask, ref_logprobs=ref, entropy=ent, aggregation=aggregation, max_len=10, **kw)  # type: ignore[arg-type]
        want = _reference_loss(
            lp.tolist(), old.tolist(), adv.tolist(), mask.tolist(), ref.tolist(), ent.tolist(),
            kw["clip_low"], kw["clip_high"], kw["kl_coef"], kw["entropy_coef"], aggregation, 10,
        )  # fmt: skip
        assert out.loss.item() == pytest.approx(want, abs=1e-12), trial


def test_sequence_advantages_broadcast_and_metrics() -> None:
    logprobs, old, _, mask = _hand_inputs()
    seq_adv = torch.tensor([0.5, -2.0], dtype=torch.float64)
    a = policy_loss(logprobs, old, seq_adv, mask, ref_logprobs=old)
    b = policy_loss(logprobs, old, seq_adv[:, None].expand(2, 3), mask, ref_logprobs=old)
    assert torch.equal(a.loss, b.loss)
    metrics = a.metrics()
    assert set(metrics) == {f"actor/{k}" for k in ("loss", "pg_loss", "kl", "clip_frac", "entropy", "approx_kl")}
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    # approx_kl = mean of (r - 1 - log r) over the 5 masked tokens.
    ratios = [1.5, 0.5, 1.0, 1.1, 0.7]
    assert metrics["actor/approx_kl"] == pytest.approx(sum(r - 1 - math.log(r) for r in ratios) / 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"old_logprobs": torch.zeros(2, 4)}, "old_logprobs must have shape"),
        ({"advantages": torch.zeros(3)}, "advantages must have shape"),
        ({"loss_mask": torch.full((2, 3), 3)}, "0 and 1"),
        ({"aggregation": "sum"}, "aggregation must be one of"),
        ({"aggregation": "seq-mean-token-sum-norm"}, "needs max_len"),
        ({"entropy_coef": 0.1}, "no per-token entropy"),
        ({"clip_low": 1.0}, "clip_low"),
        ({"logprobs": torch.zeros(6)}, "logprobs must be a floating"),
    ],
)
def test_bad_input_gets_clear_error(change: dict, message: str) -> None:
    logprobs, old, adv, mask = _hand_inputs()
    kwargs = {"logprobs": logprobs, "old_logprobs": old, "advantages": adv, "loss_mask": mask} | change
    with pytest.raises(ValueError, match=message):
        policy_loss(**kwargs)
