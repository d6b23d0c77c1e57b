"""The ``zoom-agent`` command: every flag shows its default (read from the config, never
re-declared), usage errors are one line with exit status 2, and ``python -m`` works."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from zoom_agent.cli import build_parser, main
from zoom_agent.cli.options import agent_config
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.eval.runner import run_eval
from zoom_agent.serve import build_vllm_command


def leaf_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every parser that runs a command, by its words (``("eval", "nextgqa")``)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {path: parser}
    out: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for name, child in subs[0].choices.items():
        out |= leaf_parsers(child, (*path, name))
    return out


def test_every_command_is_there() -> None:
    leaves = leaf_parsers(build_parser())
    assert {"ask", "eval", "train", "serve", "demo", "tiny-model"} <= {words[0] for words in leaves}
    assert ("eval", "synthetic") in leaves and ("eval", "merge") in leaves


def test_every_flag_has_a_one_line_help_and_shows_its_default() -> None:
    for words, parser in leaf_parsers(build_parser()).items():
        body = parser.format_help().split("\noptions:\n", 1)[1]  # the option list
        text = " ".join(body.split())  # wrapped lines joined
        assert parser.description and parser.description.rstrip().endswith("."), words
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and "\n" not in action.help, (words, action.dest)
            switch = isinstance(action.const, bool) and action.nargs == 0
            if action.option_strings and not (action.required or switch or action.default in ("", [])):
                flag = action.option_strings[0]
                shown = text.split(flag, 1)[1].split(" --", 1)[0]
                assert "(default" in shown, (words, flag, shown)


def test_defaults_come_from_where_the_project_states_them() -> None:
    parser = build_parser()
    ask = parser.parse_args(["ask", "v.mp4", "q?", "--model", "m"])
    assert agent_config(ask) == AgentConfig()  # the "ours" preset is the defaults, flags unset
    ev = parser.parse_args(["eval", "synthetic", "--model", "oracle", "--out", "o"])
    assert ev.concurrency == run_eval.__kwdefaults__["concurrency"]
    serve = parser.parse_args(["serve", "m", "--video-root", "."])
    assert (serve.host, serve.port) == (
        build_vllm_command.__kwdefaults__["host"],
        build_vllm_command.__kwdefaults__["port"],
    )
    help_text = " ".join(leaf_parsers(parser)[("ask",)].format_help().split())
    assert f"(default: the preset's; ours: {Budget.model_fields['visual_tokens'].default})" in help_text


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "choose one of ask, eval"),
        (["eval"], "choose one of synthetic"),
        (["ask"], "the following arguments are required"),
        (["bogus"], "invalid choice"),
        (["ask", "v.mp4", "q", "--model", "m", "--zoom-rounds", "two"], "invalid int value"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and says in err and err.startswith("zoom-agent")


def test_a_bad_input_found_while_running_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["view", str(tmp_path)]) == 1  # a folder, but not one 'zoom-agent eval' wrote
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"zoom-agent view: error: {tmp_path} has no results.jsonl")


def test_a_model_of_no_known_form_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "v.mp4", "q?", "--model", "/no/such/model"]) == 2  # checked before the video
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zoom-agent ask: error: --model '/no/such/model' is not a local")


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zoom_agent.cli", "tiny-model", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "--seed" in done.stdout and "(default: 0)" in done.stdout


def test_override_takes_several_key_values_after_one_flag(capsys: pytest.CaptureFixture[str]) -> None:
    # The README's form: --override a=b c=d (argparse's append took only the first).
    argv = ["train", "tiny-cpu", "--override", "output_dir=runs/x", "optim.lr=0.5", "-o", "group_size=3"]
    assert main([*argv, "--dry-run", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert (config["output_dir"], config["optim"]["lr"], config["group_size"]) == ("runs/x", 0.5, 3)
