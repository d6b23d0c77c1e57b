"""Async, resumable batch evaluation: tasks, the runner, reports (docs/architecture.md §6).

    from zoom_agent.eval import get_task, run_eval, read_results, write_report

    task = get_task("synthetic", video_root="runs/synth/videos")
    summary = await run_eval(agent, task.questions(), "runs/synth", concurrency=16)
    write_report("runs/synth", task, task.questions(), read_results("runs/synth"), model_label="my-model")

The ``zoom-agent eval`` command lives in `zoom_agent.cli.eval`.
"""

from zoom_agent.eval.report import write_report
from zoom_agent.eval.results import MergeSummary, merge_results, read_results
from zoom_agent.eval.runner import RunSummary, run_eval, select
from zoom_agent.eval.tasks import TASKS, QuestionScore, Task, get_task

__all__ = [
    "TASKS",
    "MergeSummary",
    "QuestionScore",
    "RunSummary",
    "Task",
    "get_task",
    "merge_results",
    "read_results",
    "run_eval",
    "select",
    "write_report",
]
