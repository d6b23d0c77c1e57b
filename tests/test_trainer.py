"""TrainConfig and recipes, loss accumulation, schedule, data stream, and the loop on the tiny model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.training.config import TrainConfig, available_recipes, load_recipe, parse_overrides
from zoom_agent.training.core.loss import policy_loss
from zoom_agent.training.loop import data as data_mod
from zoom_agent.training.loop.difficulty import filter_by_difficulty
from zoom_agent.training.loop.metrics import METRICS_FILE
from zoom_agent.training.loop.optim import lr_lambda
from zoom_agent.training.loop.run_folder import TRAIN_CONFIG_FILE
from zoom_agent.types import GroundedAnswer, Question, Span

# -- config and recipes ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-cpu", "zoomzero-stage1", "zoomzero-stage2"])
def test_shipped_recipes_load(name: str) -> None:
    assert name in available_recipes()
    config = load_recipe(name)
    assert config.agent.temperature == 1.0  # rollouts sample (their code)
    if name.startswith("zoomzero"):  # the paper's hyper-parameters (docs/method.md §4)
        assert (config.optim.lr, config.optim.weight_decay, config.optim.warmup_steps) == (1e-6, 0.01, 10)
        assert (config.group_size, config.prompts_per_step, config.agent.max_tokens) == (8, 64, 512)
        assert (config.loss.clip_low, config.loss.clip_high, config.loss.kl_coef) == (0.2, 0.28, 0.01)
        assert config.optim.grad_clip == 1.0 and config.policy.train_vision_tower


def test_defaults_are_the_papers() -> None:
    from zoom_agent.training.core.rewards import PARTS

    c = TrainConfig()
    assert (c.optim.lr, c.optim.schedule, c.group_size, c.epochs) == (1e-6, "cosine", 8, 1)
    assert c.reward.weights() == pytest.approx(
        {"format": 1 / 3, "iou": 1 / 3, "answer": 1 / 6, "zoom": 1 / 6, "number": 0}
    )
    assert tuple(c.reward.weights()) == PARTS  # one weight field per reward part, no more
    assert (c.credit.mode, c.credit.variant, c.loss.aggregation) == ("token-selective", "B", "token-mean")
    from zoom_agent.training import config as cfg

    for model in (
        TrainConfig,
        cfg.PolicyConfig,
        cfg.DataConfig,
        cfg.RewardConfig,
        cfg.CreditConfig,
        cfg.LossConfig,
        cfg.OptimConfig,
    ):
        undocumented = [n for n, f in model.model_fields.items() if not f.description]
        assert not undocumented, f"{model.__name__} fields without help text: {undocumented}"


def test_the_recipe_offers_exactly_the_modes_the_core_implements() -> None:
    """The recipe stays torch-free, so it restates the core's mode names: they must agree."""
    from typing import get_args

    from zoom_agent.training import config as cfg
    from zoom_agent.training.core.advantages import CreditMode
    from zoom_agent.training.core.credit import Variant
    from zoom_agent.training.core.loss import AGGREGATIONS

    def choices(model: Any, field: str) -> tuple[str, ...]:
        return get_args(model.model_fields[field].annotation)

    assert choices(cfg.LossConfig, "aggregation") == AGGREGATIONS
    assert choices(cfg.CreditConfig, "variant") == get_args(Variant)
    assert choices(cfg.CreditConfig, "mode") == get_args(CreditMode)


def test_overrides_nest_and_parse_yaml_scalars(tmp_path: Path) -> None:
    assert parse_overrides(["a.b=1e-5", "a.c=true", "d=[1, 2]", "e=text", "f=null"]) == {
        "a": {"b": 1e-5, "c": True},
        "d": [1, 2],
        "e": "text",
        "f": None,
    }
    config = load_recipe("tiny-cpu", [f"output_dir={tmp_path}", "optim.lr=0.5", "agent.budget.visual_tokens=32"])
    assert config.output_dir == str(tmp_path) and config.optim.lr == 0.5
    assert config.agent.budget.visual_tokens == 32 and config.agent.max_tokens == 16  # the rest kept
    path = tmp_path / "mine.yaml"
    path.write_text("max_steps: 3\nagent: {max_tokens: 7}\n")
    mine = load_recipe(path)
    assert mine.max_steps == 3 and mine.agent.max_tokens == 7 and mine.agent.temperature == 1.0


def test_the_package_exports_its_public_names_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, zoom_agent.training as t; light = 'torch' not in sys.modules; "
        "missing = [n for n in t.__all__ if getattr(t, n, None) is None]; print(light, missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "[]"], out.stdout + out.stderr
    import zoom_agent.training as training

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        training.Nope  # noqa: B018


@pytest.mark.parametrize(
    ("recipe", "overrides", "error", "match"),
    [
        ("no-such-recipe", [], FileNotFoundError, "tiny-cpu"),
        ("tiny-cpu", ["optim.lrr=1"], ValueError, "lrr"),
        ("tiny-cpu", ["group_size=0"], ValueError, "group_size"),
        ("tiny-cpu", ["nonsense"], ValueError, "key=value"),
        ("tiny-cpu", ["engine=sglang"], ValueError, "engine"),  # engine: vllm runs on CPU too (tests/vllm_cpu)
    ],
)
def test_bad_recipes_get_clear_errors(recipe: str, overrides: list[str], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_recipe(recipe, overrides)


# -- the math of the loop -------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_per_sequence_pieces_with_the_batch_counts_add_up_to_the_batch_loss(aggregation: str) -> None:
    """The update scores one sequence at a time; with the batch's counts passed in, the
    pieces' losses, gradients and statistics are the batch's (verl's ``agg_loss``)."""
    torch.manual_seed(0)
    lengths = [3, 7, 1, 5]
    logp = [torch.randn(n, requires_grad=True) for n in lengths]
    adv = [torch.randn(n) for n in lengths]
    ref = [torch.randn(n) for n in lengths]
    ent = [torch.rand(n) for n in lengths]
    width = max(lengths)
    pad = lambda xs: torch.stack([torch.nn.functional.pad(x, (0, width - len(x))) for x in xs])  # noqa: E731
    mask = torch.stack([torch.arange(width) < n for n in lengths])
    kwargs: dict[str, Any] = {"aggregation": aggregation, "max_len": 16, "kl_coef": 0.1, "entropy_coef": 0.01}
    padded = pad(logp)
    whole = policy_loss(padded, padded.detach(), pad(adv), mask, ref_logprobs=pad(ref), entropy=pad(ent), **kwargs)
    whole_grads = torch.autograd.grad(whole.loss, logp)
    counts = {"tokens": float(sum(lengths)), "sequences": float(len(lengths))}
    pieces = [
        policy_loss(
            lp[None],
            lp.detach()[None],
            a[None],
            torch.ones(1, len(lp), dtype=torch.bool),
            ref_logprobs=r[None],
            entropy=e[None],
            **kwargs,
            **counts,
        )
        for lp, a, r, e in zip(logp, adv, ref, ent, strict=True)
    ]
    piece_grads = torch.autograd.grad(sum(p.loss for p in pieces), logp)
    for name in ("loss", "pg_loss", "kl", "clip_frac", "entropy", "approx_kl"):
        torch.testing.assert_close(sum(getattr(p, name) for p in pieces), getattr(whole, name), msg=name)
    for a, b in zip(piece_grads, whole_grads, strict=True):
        torch.testing.assert_close(a, b)
    # without the batch counts a piece is its own batch: the pieces do not add up
    one = torch.ones(1, 7, dtype=torch.bool)
    alone = policy_loss(logp[1][None], logp[1].detach()[None], adv[1][None], one, entropy=ent[1][None], **kwargs)
    assert not torch.allclose(alone.loss, pieces[1].loss)


def test_the_turn_budget_bounds_the_graph_and_the_training_sequence() -> None:
    agent = AgentConfig(max_zoom_rounds=2, format_retries=1)
    assert agent.max_model_calls == 1 + 2 + 3 * 1  # first turn, two zooms, a retry after each of the three
    assert agent.recursion_limit == 4 * agent.max_model_calls + 16
    assert AgentConfig(max_zoom_rounds=0, format_retries=0).max_model_calls == 1


def test_learning_rate_warms_up_then_follows_a_cosine() -> None:
    config = TrainConfig.model_validate({"optim": {"warmup_steps": 4, "min_lr_ratio": 0.1}})
    f = lr_lambda(config, total_steps=14)
    assert [f(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert f(4) == pytest.approx(1.0) and f(9) == pytest.approx(0.55) and f(14) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(4, 20))


def test_data_stream_covers_each_epoch_once_and_repeats_with_the_seed() -> None:
    qs = [Question(id=str(i), video="v.mp4", question="q?") for i in range(5)]
    stream = data_mod.step_items(qs, 0, 10, seed=3, shuffle=True)
    assert sorted(q.id for q in stream[:5]) == sorted(q.id for q in stream[5:]) == [str(i) for i in range(5)]
    assert stream[:5] != stream[5:]  # reshuffled per epoch
    assert data_mod.step_items(qs, 4, 3, seed=3, shuffle=True) == stream[4:7]  # resumable by position
    assert data_mod.step_items(qs, 0, 5, seed=3, shuffle=False) == qs


def test_jsonl_questions_resolve_under_the_video_root_and_bad_lines_name_their_line(tmp_path: Path) -> None:
    from zoom_agent.training.config import DataConfig

    good = Question(id="a", video="sub/v.mp4", question="q?")
    path = tmp_path / "qs.jsonl"
    path.write_text(good.model_dump_json() + "\n\n")  # blank lines are skipped
    config = DataConfig(kind="jsonl", path=str(path), video_root=str(tmp_path / "videos"))
    (q,) = data_mod.load_questions(config, tmp_path)
    assert q.video == os.path.realpath(tmp_path / "videos" / "sub" / "v.mp4")
    path.write_text(good.model_dump_json() + '\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"qs\.jsonl:line 2: not a Question"):
        data_mod.load_questions(config, tmp_path)
    path.write_text(good.model_dump_json() + "\n{not json\n")
    with pytest.raises(ValueError, match=r"qs\.jsonl:line 2: invalid JSON"):
        data_mod.load_questions(config, tmp_path)
    path.write_text(good.model_copy(update={"video": "../outside.mp4"}).model_dump_json() + "\n")
    with pytest.raises(ValueError, match="escapes the video root"):
        data_mod.load_questions(config, tmp_path)


def test_offline_difficulty_filter_keeps_only_informative_questions() -> None:
    easy, useful = (
        Question(
            id=i,
            video="v.mp4",
            question="q?",
            options=("a", "b"),
            answer=0,
            gt_spans=(Span(start=0, end=10),),
        )
        for i in "eu"
    )

    def result(answer: str, spans: tuple[Span, ...]) -> GroundedAnswer:
        return GroundedAnswer(question_id="x", status="answered", answer=answer, spans=spans)

    outcomes = {
        "e": [result("A", (Span(start=0, end=10),))] * 2,  # always right, same IoU
        "u": [result("A", (Span(start=0, end=10),)), result("B", (Span(start=20, end=30),))],
    }

    class FakeEngine:
        async def rollouts(self, questions: list[Question], agent: Any, **kw: Any) -> list[Any]:
            return [SimpleNamespace(result=r) for q in questions for r in outcomes[q.id]]

    kept = asyncio.run(filter_by_difficulty(FakeEngine(), [easy, useful], AgentConfig(), group_size=2, seed=0))  # type: ignore[arg-type]
    assert [q.id for q in kept] == ["u"]


def _traj(group: int, sample: int, layout: str) -> Any:
    """A trajectory whose tokens are: e = environment, r = reasoning, s = span, a = answer."""
    from zoom_agent.training.rollout.trajectory import PolicyCall, Trajectory

    q = Question(id=str(group), video="v.mp4", question="q?")
    calls, regions, start = [], [], 0
    while start < len(layout):  # one call per run of environment tokens and the reply after it
        env = len(layout[start:]) - len(layout[start:].lstrip("e"))
        end = start + env + len(layout[start + env :].split("e")[0])
        reply = layout[start + env : end]
        calls.append(PolicyCall(tuple(range(start + env)), tuple(range(len(reply))), (0.0,) * len(reply), "", "stop"))
        regions.append({"span": [c == "s" for c in reply], "answer": [c == "a" for c in reply]})
        start = end
    result = GroundedAnswer(question_id="x", status="answered")
    traj = Trajectory.from_calls(q, result, group=group, sample=sample, calls=calls, regions=regions)
    assert [c != "e" for c in layout] == list(traj.masks.policy)  # the layout as asked
    return traj


def test_a_trajectory_is_laid_out_once_and_cannot_be_edited() -> None:
    import dataclasses

    from zoom_agent.training.rollout.trajectory import PolicyCall, TokenMasks, Trajectory

    q = Question(id="q", video="v.mp4", question="q?")
    result = GroundedAnswer(question_id="q", status="answered")
    first = PolicyCall((1, 2), (3, 4), (-0.5, -0.25), "ab", "stop")
    second = PolicyCall((1, 2, 3, 4, 9), (5,), (-1.0,), "c", "stop")  # token 9: a tool result
    regions = [{"span": [True, False], "answer": [False, False]}, {"span": [False], "answer": [True]}]
    traj = Trajectory.from_calls(q, result, group=3, sample=1, calls=[first, second], regions=regions)
    assert traj.input_ids == (1, 2, 3, 4, 9, 5)
    assert [(s.kind, s.start, s.end) for s in traj.segments] == [
        ("env", 0, 2),
        ("policy", 2, 4),
        ("env", 4, 5),
        ("policy", 5, 6),
    ]
    assert traj.policy_positions == [2, 3, 5] and not traj.failed
    assert traj.masks.on_policy() == {"span": [True, False, False], "answer": [False, False, True]}
    assert traj.masks.sampled_logprobs() == [-0.5, -0.25, -1.0] and traj.masks.logprobs[4] == 0.0
    assert traj.turns[-1].text == "c"  # the last reply closes the conversation
    with pytest.raises(dataclasses.FrozenInstanceError):
        traj.group = 0  # type: ignore[misc]
    assert Trajectory.from_calls(q, result, group=0, sample=0).failed  # no call: nothing to train on

    with pytest.raises(ValueError, match="one region record per call"):
        Trajectory.from_calls(q, result, group=0, sample=0, calls=[first], regions=[])
    with pytest.raises(ValueError, match="one entry per reply token"):
        Trajectory.from_calls(q, result, group=0, sample=0, calls=[first], regions=[regions[1]])
    with pytest.raises(ValueError, match="must extend the previous prompt"):
        Trajectory.from_calls(q, result, group=0, sample=0, calls=[second, first], regions=regions[::-1])
    with pytest.raises(ValueError, match="must be policy tokens; token 0"):
        TokenMasks((False, True), (True, False), (False, False), (0.0, 0.0))
    with pytest.raises(ValueError, match="one length"):
        TokenMasks((True,), (False,), (False, False), (0.0,))


def _advantages(trajs: list[Any], parts: list[dict[str, float]], weights: dict[str, float], **credit: Any) -> list[Any]:
    from zoom_agent.training.core.advantages import policy_token_advantages

    regions = [t.masks.on_policy() for t in trajs]
    return policy_token_advantages(parts, regions, [t.group for t in trajs], weights=weights, **credit)


def _parts(answer: float, iou: float = 0.5, number: float = 0.0) -> dict[str, float]:
    return {"format": 1.0, "iou": iou, "answer": answer, "zoom": 0.0, "number": number, "total": 0.0}


def test_token_selective_credit_reaches_only_the_responsible_tokens() -> None:
    trajs = [_traj(0, 0, "eerrssrraa"), _traj(0, 1, "eerrssraae")]
    adv = _advantages(trajs, [_parts(1.0), _parts(0.0)], {"format": 1.0}, variant="A")
    # Only the answer channel differs: answer tokens get +-(1/3) * A_acc, the others nothing.
    assert [len(a) for a in adv] == [8, 7]
    torch.testing.assert_close(adv[0][:6], torch.zeros(6))
    assert bool((adv[0][6:] > 0).all()) and bool((adv[1][5:] < 0).all())
    torch.testing.assert_close(adv[0][6:], -adv[1][5:])
    tied = _advantages(trajs, [_parts(1.0), _parts(1.0)], {}, variant="A")
    assert all(bool((a == 0).all()) for a in tied)  # equal rewards: zero advantage, never NaN


def test_probe_channel_and_sequence_grpo_spread_over_every_policy_token() -> None:
    trajs = [_traj(0, 0, "errsa"), _traj(0, 1, "errsa"), _traj(1, 0, "ra")]
    parts = [_parts(0.0, number=1.0), _parts(0.0, number=0.0), _parts(1.0, number=1.0)]
    adv = _advantages(trajs, parts, {"number": 0.5}, variant="A")
    torch.testing.assert_close(adv[0], torch.full((4,), 0.5 * 0.7071), atol=1e-3, rtol=0)
    torch.testing.assert_close(adv[1], -adv[0])
    torch.testing.assert_close(adv[2], torch.zeros(2))  # a group of one: no signal
    for p, total in zip(parts, (1.0, 0.0, 0.0), strict=True):
        p["total"] = total
    seq = _advantages(trajs, parts, {}, mode="grpo")
    assert len(set(seq[0].tolist())) == 1 and float(seq[0][0]) > 0 and float(seq[1][0]) < 0


# -- the loop on the tiny model -------------------------------------------------------------


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny model and a synthetic task shared by the loop tests (built once)."""
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("trainer")
    make_synthetic_task(root / "data", num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    return {"model": str(build_tiny_model(root / "tiny", "qwen2_5_vl")), "data": str(root / "data")}


def _overrides(out: Path, prebuilt: dict[str, str], *extra: str) -> list[str]:
    """tiny-cpu on the prebuilt model and task, 2 questions x 2 samples per step."""
    return [
        f"output_dir={out}",
        f"policy.path={prebuilt['model']}",
        f"data.synthetic_dir={prebuilt['data']}",
        "data.synthetic_videos=1",
        "data.synthetic_video={duration: 10.0, fps: 4.0, size: [160, 120], num_events: 2}",
        "group_size=2",
        "prompts_per_step=2",
        "agent.max_tokens=8",
        "progress=false",
        *extra,
    ]


def _config(out: Path, prebuilt: dict[str, str], *extra: str) -> TrainConfig:
    return load_recipe("tiny-cpu", _overrides(out, prebuilt, *extra))


@pytest.mark.slow
def test_one_step_logs_every_reward_part_and_timing(tmp_path: Path, prebuilt: dict[str, str]) -> None:
    from zoom_agent.training.loop.trainer import Trainer

    trainer = Trainer(_config(tmp_path, prebuilt, "max_steps=1"))
    metrics = trainer.step()
    (line,) = (json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines())
    assert line == pytest.approx(metrics)
    for key in (
        "step",
        "reward/total",
        "reward/format",
        "reward/iou",
        "reward/answer",
        "reward/zoom",
        "reward/number",
    ):
        assert key in line
    for key in ("time/rollout", "time/rewards", "time/credit", "time/fwd_bwd", "actor/kl", "actor/grad_norm"):
        assert key in line and line[key] >= 0
    assert line["rollout/count"] == 4 and line["rollout/logprob_diff"] < 1e-3
    assert (tmp_path / "train_config.json").is_file()


@pytest.mark.slow
def test_mini_batches_step_several_times_against_old_logprobs_computed_once(
    tmp_path: Path, prebuilt: dict[str, str]
) -> None:
    """optim.mini_batch_size (their code): 4 responses in mini-batches of 2 = 2 optimiser steps;
    the second sees a moved policy (ratio != 1, approx_kl > 0); the schedule steps once."""
    from zoom_agent.training.loop.trainer import Trainer

    # weight decay moves the weights even where a group's advantages are all 0
    trainer = Trainer(_config(tmp_path, prebuilt, "max_steps=1", "optim.mini_batch_size=2", "optim.weight_decay=0.5"))
    metrics = trainer.step()
    assert metrics["actor/optimizer_steps"] == 2.0
    assert metrics["actor/approx_kl"] > 0.0, metrics  # mean of 0 (first step) and the second's drift
    assert metrics["rollout/logprob_diff"] < 1e-3  # compared once, before any update
    assert trainer.scheduler.last_epoch == 1
    ours = Trainer(_config(tmp_path / "ours", prebuilt, "max_steps=1")).step()
    assert ours["actor/optimizer_steps"] == 1.0 and ours["actor/approx_kl"] == 0.0


@pytest.mark.slow
def test_validation_every_step_keeps_the_best_model(tmp_path: Path, prebuilt: dict[str, str]) -> None:
    from zoom_agent.training.loop.trainer import Trainer

    val = f"val_data={{kind: synthetic, synthetic_dir: {prebuilt['data']}, limit: 2, shuffle: false}}"
    trainer = Trainer(_config(tmp_path, prebuilt, "max_steps=2", "val_every=1", val))
    trainer.train()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val_lines = [x for x in lines if "val/total" in x]
    assert [x["step"] for x in val_lines] == [1.0, 2.0]
    assert all(0.0 <= x["val/total"] <= 1.0 and "val/format" in x for x in val_lines)
    best = max(val_lines, key=lambda x: x["val/total"])  # the first of equal scores stays
    record = json.loads((tmp_path / "best.json").read_text())
    assert record == {"step": int(best["step"]), "val/total": pytest.approx(best["val/total"])}
    assert (tmp_path / "best_model" / "config.json").is_file()
    with pytest.raises(ValueError, match="val_every needs val_data"):
        _config(tmp_path, prebuilt, "val_every=5")


@pytest.mark.slow
def test_score_runs_the_verifier_for_answered_rollouts(tmp_path: Path, prebuilt: dict[str, str]) -> None:
    from zoom_agent.training.loop.trainer import Trainer
    from zoom_agent.training.loop.verifier import ZoomVerifier
    from zoom_agent.training.rollout.trajectory import Trajectory

    trainer = Trainer(_config(tmp_path, prebuilt, "max_steps=1", "reward.verifier=policy"))
    q = next(x for x in trainer.questions if x.qtype == "digit")
    trainer.verifier = ZoomVerifier(ScriptedVLM(lambda r: q.answer_letter or "A"), Budget(visual_tokens=64))
    good = GroundedAnswer(question_id=q.id, status="answered", answer=q.answer_letter, spans=q.gt_spans)
    none = GroundedAnswer(question_id=q.id, status="unanswered")
    trajs = [Trajectory(question=q, group=0, sample=i, result=r) for i, r in enumerate((good, none))]
    parts = asyncio.run(trainer.score(trajs))
    assert [p["zoom"] for p in parts] == [1.0, 0.0] and parts[0]["iou"] == 1.0 and parts[0]["answer"] == 1.0


# -- kill and resume -----------------------------------------------------------------------
# The kill happens at a known point, never on a timer: the child kills itself with SIGKILL
# right after it has logged step KILL_AT (a fault hook on the metrics log), after the
# checkpoint of step SAVE_EVERY and before the next one.

SAVE_EVERY, KILL_AT, STEPS = 2, 3, 4
CHILD = """
import json, os, signal, sys
from zoom_agent.training.config import load_recipe
from zoom_agent.training.loop import metrics
from zoom_agent.training.loop.trainer import Trainer

overrides, kill_at = json.loads(sys.argv[1]), int(sys.argv[2])
write = metrics.MetricsLog.write


def write_then_die(self, line):
    write(self, line)
    if int(line["step"]) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


metrics.MetricsLog.write = write_then_die
Trainer(load_recipe("tiny-cpu", overrides)).train()
"""


def _final_state(out: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Weights, optimiser/scheduler state and position of a run's last checkpoint."""
    from safetensors.torch import load_file

    step = out / "checkpoints" / f"step_{STEPS:06d}"
    weights: dict[str, Any] = {}
    for f in sorted((step / "model").glob("*.safetensors")):
        weights |= load_file(f)
    optim = torch.load(step / "optimizer.pt", weights_only=True)
    return weights, optim, json.loads((step / "trainer_state.json").read_text())


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=where)
    else:
        assert a == b, where


@pytest.mark.slow
def test_killed_mid_run_then_rerun_resumes_from_its_checkpoint_and_equals_an_uninterrupted_run(
    tmp_path: Path, prebuilt: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_agent.cli import main
    from zoom_agent.training.loop.trainer import Trainer

    killed, straight = tmp_path / "killed", tmp_path / "straight"
    run = (f"max_steps={STEPS}", f"save_every={SAVE_EVERY}")
    overrides = _overrides(killed, prebuilt, *run)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(overrides), str(KILL_AT)], capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    logged = (killed / METRICS_FILE).read_bytes().splitlines(keepends=True)
    assert [json.loads(x)["step"] for x in logged] == [1, 2, 3]  # step 3 logged, its checkpoint never came
    settings = (killed / TRAIN_CONFIG_FILE).read_bytes()

    capsys.readouterr()
    assert main(["train", "tiny-cpu", "--override", *overrides]) == 0  # the same command again
    out = capsys.readouterr().out
    assert f"from its checkpoint at step {SAVE_EVERY}/{STEPS}; steps [{KILL_AT}] logged after it run again" in out
    resumed = (killed / METRICS_FILE).read_bytes().splitlines(keepends=True)
    assert resumed[:SAVE_EVERY] == logged[:SAVE_EVERY]  # appended: the kept lines keep their bytes
    assert [json.loads(x)["step"] for x in resumed] == list(range(1, STEPS + 1))  # no step twice
    assert (killed / TRAIN_CONFIG_FILE).read_bytes() == settings

    Trainer(load_recipe("tiny-cpu", _overrides(straight, prebuilt, *run))).train()
    whole = [json.loads(x) for x in (straight / METRICS_FILE).read_text().splitlines()]
    again = [json.loads(x) for x in resumed]
    for key in ("reward/total", "lr", "actor/kl", "actor/grad_norm"):
        assert [x[key] for x in again] == pytest.approx([x[key] for x in whole], abs=1e-6), key
    weights, optim, position = _final_state(killed)
    weights_0, optim_0, position_0 = _final_state(straight)
    assert position == position_0 == {"step": STEPS, "consumed": STEPS * 2}
    _assert_same(weights, weights_0, "model")
    _assert_same(optim, optim_0, "optimizer")

    assert (killed / "final_model" / "config.json").is_file()
    assert Trainer(load_recipe("tiny-cpu", overrides)).train() == []  # nothing left to do

    status = main(["train", "tiny-cpu", "--override", *overrides, "optim.lr=0.02"])  # another run: refused
    assert status == 2 and "optim.lr 0.01 -> 0.02" in capsys.readouterr().err
    assert (killed / METRICS_FILE).read_bytes() == b"".join(resumed)


@pytest.mark.slow
def test_difficulty_filter_refuses_a_task_with_no_informative_question(
    tmp_path: Path, prebuilt: dict[str, str]
) -> None:
    from zoom_agent.training.loop.trainer import Trainer

    config = _config(tmp_path, prebuilt, "difficulty_filter=true", "filter_group_size=2", "data.limit=2")
    with pytest.raises(ValueError, match="kept no question"):
        Trainer(config)  # a random model never answers: every group is too hard
    assert json.loads((tmp_path / "difficulty_filter.json").read_text()) == []


@pytest.mark.slow
def test_train_command_builds_everything_offline(tmp_path: Path) -> None:
    from zoom_agent.cli import build_parser

    args = build_parser().parse_args(
        [
            "train",
            "tiny-cpu",
            "--override",
            f"output_dir={tmp_path}",
            "-o",
            "max_steps=1",
            "-o",
            "group_size=2",
        ]
    )
    assert args.run(args) == 0
    assert (tmp_path / "tiny-model" / "config.json").is_file() and (tmp_path / "data" / "questions.jsonl").is_file()
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(line)["step"] == 1
