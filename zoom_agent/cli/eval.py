"""``zoom-agent eval``: run a task, resume it, shard it, merge shards, write the report.

``--model oracle[:NOISE]`` answers from the ground truth (a pipeline check, labelled so in
the report); any other spec (a model folder, a server URL) goes to `load_model`. Rerunning
the same command resumes. ``eval merge OUT SHARD_DIR...`` merges shard folders of one run
(they must share task, model and agent config, recorded in each ``run.json``) and writes
the report over the whole selection; questions of a shard that never ran count as missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from zoom_agent.cli.errors import UsageError
from zoom_agent.cli.options import (
    ExamplesHelp,
    add_agent_options,
    agent_config,
    check_model_spec,
    command_usage,
    parameter_default,
    positive_int,
)
from zoom_agent.cli.smoke import SMOKE_QUESTIONS, SMOKE_VIDEOS, smaller, smoke_mode
from zoom_agent.datasets.synthetic import make_synthetic_task
from zoom_agent.datasets.synthetic_gqa import GQA_TASK, SPLITS
from zoom_agent.eval.report import REPORT_FILE, write_report
from zoom_agent.eval.results import merge_results, read_results
from zoom_agent.eval.runner import RUN_FILE, FolderInUseError, run_eval, select
from zoom_agent.eval.tasks import NEXTGQA_SPLITS, SYNTHETIC_VIDEOS, TASK_ARGS, TASKS, Task, get_task
from zoom_agent.geometry import Family
from zoom_agent.types import Question

__all__ = ["parse_shard", "register"]

_SYNTHETIC = ("synthetic", GQA_TASK)  # tasks that write their own videos (no --ann)

_EXAMPLES = """examples:
  zoom-agent eval synthetic --model oracle:0.2 --out runs/synth
  zoom-agent eval nextgqa --ann data/nextgqa --video-root /videos --model ./ckpt --out runs/ngqa --shard 0/4
  zoom-agent eval merge runs/ngqa runs/ngqa-0 runs/ngqa-1 runs/ngqa-2 runs/ngqa-3
"""

_TASK_HELP = {
    "synthetic": "synthetic videos with known events (written to OUT/videos or --video-root)",
    "synthetic-gqa": "the learnable grounded-QA task: grounding, coarse and fine questions, seeded splits "
    "(written to OUT/videos or --video-root)",
    "nextgqa": "NExT-GQA: --ann folder with {split}.csv + gsub_{split}.json",
    "rextime": "ReXTime: --ann jsonl (+ --options file for the answer metrics)",
    "charades": "Charades-STA: --ann 'vid start end##sentence' file + --durations",
    "videomme": "Video-MME multiple choice: --ann json/jsonl",
    "mlvu": "MLVU multiple choice: --ann json",
    "lvbench": "LVBench multiple choice: --ann video_info.meta.jsonl",
}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard expects K/N such as 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (one sub-command per task, plus ``merge``) to the ``zoom-agent`` sub-commands."""
    ev = subparsers.add_parser(
        "eval",
        help="evaluate on a benchmark (resumable, shardable)",
        description="Evaluate the zoom agent on a benchmark task; rerun the same command to resume.",
        epilog=_EXAMPLES,
        formatter_class=ExamplesHelp,
    )
    tasks = ev.add_subparsers(dest="eval_command", metavar="{TASK,merge}")
    ev.set_defaults(run=command_usage(ev, f"{', '.join(TASKS)}, merge"))
    common = argparse.ArgumentParser(add_help=False)
    _run_options(common)
    add_agent_options(common)
    for name in TASKS:
        about = f"Evaluate the zoom agent on the {name} task: {_TASK_HELP[name]}."
        p = tasks.add_parser(name, parents=[common], help=_TASK_HELP[name], description=about)
        _task_options(p, name)
        p.set_defaults(run=_run)
    merge = tasks.add_parser(
        "merge",
        help="merge shard folders of one run and write its report",
        description="Merge the shard folders of one run and write the report over all of them.",
    )
    merge.add_argument("out", type=Path, help="the merged folder")
    merge.add_argument("shards", type=Path, nargs="+", help="the shard folders")
    merge.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results, run.json and report of a folder that holds another run "
        "(default: refuse; a merge of the same shards is always redone in place)",
    )
    merge.set_defaults(run=_merge)
    return ev


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="oracle[:NOISE] (a pipeline check), a local model directory, or an http(s):// server URL",
    )
    p.add_argument("--out", type=Path, required=True, help="run folder: results.jsonl, report; rerun to resume")
    p.add_argument(
        "--concurrency", type=int, default=parameter_default(run_eval, "concurrency"), help="questions in flight"
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N questions (default: all)")
    p.add_argument(
        "--shard", type=parse_shard, default=None, help="K/N: questions i with i %% N == K (default: all questions)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--seed",
        type=int,
        default=parameter_default(make_synthetic_task, "seed"),
        help="seed of the synthetic task and the oracle's noise",
    )


def _task_options(p: argparse.ArgumentParser, name: str) -> None:
    needs_ann = name not in _SYNTHETIC
    where = "" if needs_ann else " (default: OUT/videos)"
    p.add_argument(
        "--video-root", type=Path, default=None, required=needs_ann, help=f"folder the videos live under{where}"
    )
    if needs_ann:
        p.add_argument("--ann", type=Path, required=True, help="annotation file (nextgqa: folder)")
    if name in ("nextgqa", "rextime", "charades"):
        p.add_argument(
            "--video-pattern", default=None, help="relative video path pattern, e.g. '{vid}.mp4' (default: the task's)"
        )
    if name == "nextgqa":
        p.add_argument("--split", choices=NEXTGQA_SPLITS, default=NEXTGQA_SPLITS[0], help="annotation split")
        p.add_argument("--id-map", type=Path, default=None, help="map_vid_vidorID.json (default: none)")
    if name == "rextime":
        p.add_argument("--options", type=Path, default=None, help="options file, enables Acc (default: none)")
    if name == "charades":
        p.add_argument("--durations", type=Path, required=True, help="CSV or JSON of video durations")
    if name == "synthetic":
        p.add_argument(
            "--num-videos",
            type=positive_int,
            default=SYNTHETIC_VIDEOS,
            help="synthetic videos (about 13 questions each)",
        )
    if name == GQA_TASK:
        p.add_argument("--split", choices=SPLITS, default="test", help="split (its videos have their own seeds)")
        p.add_argument(
            "--num-videos",
            type=positive_int,
            default=None,
            help="videos of the split, 8 questions each (default: the split's)",
        )


def _task_from_args(args: argparse.Namespace) -> Task:
    name = args.eval_command
    paths = {k: getattr(args, k, None) for k in TASK_ARGS - {"seed"}}
    if name in _SYNTHETIC:
        paths["video_root"] = paths["video_root"] or args.out / "videos"
        paths["seed"] = args.seed
    return get_task(name, **{k: str(v) if isinstance(v, Path) else v for k, v in paths.items()})


def _check_inputs(args: argparse.Namespace) -> None:
    """Refuse a missing ``--video-root`` or ``--ann`` before any work (the synthetic tasks
    write their videos, so their ``--video-root`` need not exist yet)."""
    if args.eval_command not in _SYNTHETIC and not args.video_root.is_dir():
        what = "is not a folder" if args.video_root.exists() else "no such folder"
        raise UsageError(f"--video-root {args.video_root}: {what}: expected the folder the task's videos live under")
    ann = getattr(args, "ann", None)
    if ann is not None and not ann.exists():
        raise UsageError(f"--ann {ann}: no such file or folder")


def _model(spec: str, questions: list[Question], seed: int, family: Family | None) -> tuple[Any, str, str | None]:
    """``(model, label, pipeline-check label or None)`` for a ``--model`` spec."""
    if spec == "oracle" or spec.startswith("oracle:"):
        from zoom_agent.models.oracle import OracleVLM

        text = spec.partition(":")[2] or "0"
        try:
            noise = float(text)
        except ValueError:
            raise ValueError(f"--model oracle:NOISE needs a number in [0, 1], got {text!r}") from None
        return OracleVLM(questions, noise=noise, seed=seed), f"oracle(noise={noise:g})", OracleVLM.label
    from zoom_agent.models import load_model

    return load_model(spec, family=family), spec, None


def _run(args: argparse.Namespace) -> int:
    from zoom_agent.agent import ZoomAgent

    if smoke_mode():  # CI runs the README's commands at smoke sizes (zoom_agent.cli.smoke)
        args.limit = smaller("eval", "--limit", args.limit, SMOKE_QUESTIONS)
        if hasattr(args, "num_videos"):  # the synthetic tasks
            args.num_videos = smaller("eval", "--num-videos", args.num_videos, SMOKE_VIDEOS)
    config = agent_config(args)  # every input is checked before videos are made or a model loads
    check_model_spec(args.model, oracle=True)
    _check_inputs(args)
    task = _task_from_args(args)
    questions = task.questions()
    model, label, check = _model(args.model, questions, args.seed, args.family)
    # What must agree for results to share a file (and for shards to merge). The video root
    # is left out: shards on other machines mount the videos elsewhere.
    identity = {
        "task": task.name,
        "task_args": {k: v for k, v in task.args.items() if k != "video_root"},
        "model": label,
        "pipeline_check": check,
        "agent_config": config.model_dump(mode="json"),
    }
    selection = {"limit": args.limit, "shard": list(args.shard) if args.shard else None}
    paths = {"video_root": str(Path(task.args["video_root"]).resolve())}
    try:
        summary = asyncio.run(
            run_eval(
                ZoomAgent(model, config),
                questions,
                args.out,
                concurrency=args.concurrency,
                limit=args.limit,
                shard=args.shard,
                progress=not args.no_progress,
                meta={"identity": identity, "selection": selection, "paths": paths},
            )
        )
    except FolderInUseError as exc:  # a user error: one clear line, like the others
        print(f"zoom-agent eval: error: {exc}", file=sys.stderr)
        return 1
    chosen = [q for _, q in select(questions, limit=args.limit, shard=args.shard)]
    doc = write_report(args.out, task, chosen, read_results(args.out), model_label=label, pipeline_check=check)
    print(
        f"{task.name}: {summary.selected} questions ({summary.resumed} resumed, {summary.ran} run in "
        f"{summary.elapsed_s:.1f} s): {summary.answered} answered, {summary.unanswered} unanswered, "
        f"{summary.errors} errors, {summary.infra_errors} model/server errors"
        + (" (rerun to retry them)" if summary.infra_errors else "")
    )
    _print_headline(task, doc, args.out)
    if summary.selected and summary.errors + summary.infra_errors == summary.selected:
        print("every question failed: check --video-root and --model (see results.jsonl)", file=sys.stderr)
        return 1
    return 0


def _print_headline(task: Task, doc: dict[str, Any], out: Path) -> None:
    for note in doc["notes"]:  # a pipeline check, errors, missing questions (zoom_agent.eval.report)
        print(f"NOTE: {note}")
    metrics = doc["metrics"]
    cells = [(title, metrics[key]) for title, key in task.headline if key in metrics]
    print("  ".join(f"{title} {'–' if v is None else f'{v:.1f}'}" for title, v in cells))
    print(f"report: {out / REPORT_FILE}")


def _read_run(folder: Path) -> dict[str, Any]:
    path = folder / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {RUN_FILE}: not a folder written by 'zoom-agent eval'")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("identity"), dict):
        raise ValueError(f"{path}: expected {{'identity': {{...}}, 'selection': {{...}}}}")
    return doc


def _check_merge_target(out: Path, identity: dict[str, Any]) -> None:
    """Refuse a merged folder that holds another run: its run.json is not a merge with this
    identity, or it has a report but no run.json (what its results are, `merge_results` checks)."""
    fix = "merge into a new folder, or replace it with --overwrite"
    if (out / RUN_FILE).is_file():
        run = _read_run(out)
        if run["identity"] != identity:
            raise FileExistsError(f"{out} holds another run (task, model or agent config differ): {fix}")
        if not run.get("selection", {}).get("merged_from"):
            raise FileExistsError(f"{out} holds a run of its own, not a merge of shards: {fix}")
    elif (out / REPORT_FILE).is_file():
        raise FileExistsError(f"{out} holds a report but no {RUN_FILE}: {fix}")


def _merge(args: argparse.Namespace) -> int:
    runs = [_read_run(d) for d in args.shards]
    identity = runs[0]["identity"]
    for folder, run in zip(args.shards, runs, strict=True):
        if run["identity"] != identity:
            raise ValueError(f"{folder} holds another run than {args.shards[0]} (task, model or agent config differ)")
    limits = {run.get("selection", {}).get("limit") for run in runs}
    if len(limits) > 1:
        raise ValueError(f"the shards ran with different --limit values: {sorted(limits, key=str)}")
    shards = {tuple(s) for run in runs if (s := run.get("selection", {}).get("shard"))}
    counts = {n for _, n in shards}
    if len(counts) > 1:
        raise ValueError(f"the shards split the task differently: {sorted(shards)}")
    if counts and len(shards) < next(iter(counts)):
        ran = sorted(k for k, _ in shards)
        print(f"warning: only shards {ran} of {counts.pop()} were given: the rest count as missing")
    if not args.overwrite:
        _check_merge_target(args.out, identity)
    summary = merge_results(args.shards, args.out, overwrite=args.overwrite)
    video_root = Path(runs[0].get("paths", {}).get("video_root") or args.out / "videos")
    if identity["task"] == "synthetic" and not video_root.is_dir():
        video_root = args.out / "videos"  # the shard's videos are elsewhere: rebuild them here (seeded)
    task = get_task(identity["task"], video_root=str(video_root), **identity["task_args"])
    (limit,) = limits
    chosen = [q for _, q in select(task.questions(), limit=limit)]
    meta = {
        "identity": identity,
        "selection": {"limit": limit, "shard": None, "merged_from": [str(d) for d in args.shards]},
        "paths": {"video_root": str(video_root.resolve())},
    }
    (args.out / RUN_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    doc = write_report(
        args.out,
        task,
        chosen,
        read_results(args.out),
        model_label=identity["model"],
        pipeline_check=identity.get("pipeline_check"),
    )
    print(
        f"merged {summary.shards} shards: {summary.lines} questions, {summary.duplicates} duplicate lines, "
        f"{len(summary.conflicts)} conflicting ids, {summary.torn_lines} torn lines skipped"
    )
    if summary.conflicts:
        print(f"conflicting ids (first line kept): {', '.join(summary.conflicts[:10])}", file=sys.stderr)
    _print_headline(task, doc, args.out)
    return 0
