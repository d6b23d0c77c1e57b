"""Nothing of a training run is lost: every recipe checkpoints, a rerun resumes only the same
run and appends its metrics, and a run that cannot start says so before it builds or loads
anything. (The kill-and-resume of a real run is in tests/test_trainer.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from zoom_agent.training.config import available_recipes, load_recipe
from zoom_agent.training.loop.metrics import METRICS_FILE, resume_log
from zoom_agent.training.loop.preflight import RunSetupError, check_runnable
from zoom_agent.training.loop.run_folder import TRAIN_CONFIG_FILE, RunFolderError, open_run_folder

# -- every recipe checkpoints ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(available_recipes()))
def test_every_shipped_recipe_checkpoints_before_its_end(name: str) -> None:
    config = load_recipe(name)
    assert config.save_every >= 1 and config.resume
    if config.max_steps is not None:
        assert config.save_every < config.max_steps


# -- groups of one -------------------------------------------------------------------------


def test_group_size_one_is_refused_unless_groups_of_one_have_a_credit_rule() -> None:
    with pytest.raises(ValueError, match=r"group_size 1 trains at zero advantage.*group_size >= 2"):
        load_recipe("tiny-cpu", ["group_size=1"])
    assert load_recipe("tiny-cpu", ["group_size=1", "credit.single_response=raw"]).group_size == 1
    assert load_recipe("zoomzero-stage1", ["group_size=1"]).credit.single_response == "raw"  # their rule


# -- what a run needs, checked before anything is built -----------------------------------


def test_a_run_without_a_model_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    from zoom_agent.training.loop.trainer import Trainer

    out = tmp_path / "stage1"
    config = load_recipe("zoomzero-stage1", [f"output_dir={out}", "data.path=ann", "data.video_root=videos"])
    with pytest.raises(RunSetupError, match=r"^policy.path is not set: give the model to train, a Qwen2.5-VL"):
        Trainer(config)
    assert not out.exists()  # no tiny model, no data, no folder
    with pytest.raises(RunSetupError, match=r"policy.path '.*nope' does not exist: expected a Qwen2.5-VL"):
        check_runnable(load_recipe("zoomzero-stage1", [f"policy.path={tmp_path / 'nope'}"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunSetupError, match=r"holds no config\.json"):
        check_runnable(load_recipe("zoomzero-stage1", [f"policy.path={tmp_path / 'empty'}"]))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_cuda_recipe_on_a_machine_without_cuda_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_agent.cli import main

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    out = tmp_path / "run"
    status = main(["train", "zoomzero-stage1", "-o", f"policy.path={tmp_path / 'model'}", f"output_dir={out}"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "policy.device is 'cuda' but this machine has no usable CUDA GPU" in err and "policy.device=cpu" in err
    assert not out.exists()
    status = main(["train", "zoomzero-stage1", "-o", f"output_dir={out}"])  # the case: no model at all
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "policy.path is not set" in err, err


# -- the run folder ------------------------------------------------------------------------


def _tiny(out: Path, *extra: str) -> Any:
    return load_recipe("tiny-cpu", [f"output_dir={out}", *extra])


def test_a_rerun_resumes_only_the_same_run_and_never_replaces_its_settings(tmp_path: Path) -> None:
    assert open_run_folder(tmp_path, _tiny(tmp_path)) is False  # fresh: settings recorded
    recorded = (tmp_path / TRAIN_CONFIG_FILE).read_bytes()
    assert json.loads(recorded)["optim"]["lr"] == 0.01
    assert open_run_folder(tmp_path, _tiny(tmp_path)) is True  # the same run: resume
    # what does not change results may differ; the record stays as the run started
    assert open_run_folder(tmp_path, _tiny(tmp_path, "progress=false", "save_every=3", "rollout_concurrency=1"))
    assert (tmp_path / TRAIN_CONFIG_FILE).read_bytes() == recorded

    with pytest.raises(RunFolderError) as refused:
        open_run_folder(tmp_path, _tiny(tmp_path, "optim.lr=1e-3", "group_size=4", "max_steps=30"))
    message = str(refused.value)
    assert "\n" not in message
    for part in ("group_size 8 -> 4", "max_steps 24 -> 30", "optim.lr 0.01 -> 0.001", "--overwrite"):
        assert part in message, message
    for key in ("seed=1", "policy.tiny_family=qwen3_vl", "data.synthetic_videos=3", "reward.number=0.5"):
        with pytest.raises(RunFolderError, match=key.partition("=")[0]):
            open_run_folder(tmp_path, _tiny(tmp_path, key))
    assert (tmp_path / TRAIN_CONFIG_FILE).read_bytes() == recorded

    with pytest.raises(RunFolderError, match="resume is off"):
        open_run_folder(tmp_path, _tiny(tmp_path, "resume=false"))
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\n')
    (tmp_path / "tiny-model").mkdir()
    assert open_run_folder(tmp_path, _tiny(tmp_path, "optim.lr=1e-3"), overwrite=True) is False
    assert json.loads((tmp_path / TRAIN_CONFIG_FILE).read_text())["optim"]["lr"] == 0.001
    assert not (tmp_path / METRICS_FILE).exists() and not (tmp_path / "tiny-model").exists()

    (tmp_path / TRAIN_CONFIG_FILE).unlink()
    (tmp_path / METRICS_FILE).write_text('{"step": 1}\n')
    with pytest.raises(RunFolderError, match=f"without {TRAIN_CONFIG_FILE}"):
        open_run_folder(tmp_path, _tiny(tmp_path))


def test_resuming_the_log_cuts_it_after_the_checkpoint_and_keeps_every_earlier_byte(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    lines = [json.dumps({"step": s, "x": s / 3}).encode() + b"\n" for s in (1, 2, 2, 3, 4)]  # 2 twice: a val line
    path.write_bytes(b"".join(lines) + b'{"step": 5, "x"')  # torn by a kill mid-write
    inode = path.stat().st_ino
    assert resume_log(path, 2) == [3, 4]
    assert path.read_bytes() == b"".join(lines[:3]) and path.stat().st_ino == inode  # cut, not rewritten
    assert resume_log(path, 2) == [] and resume_log(tmp_path / "none.jsonl", 2) == []
    path.write_bytes(lines[0] + b"garbage\n" + lines[1])
    with pytest.raises(ValueError, match=r"line 2 is not a metrics line but more lines follow"):
        resume_log(path, 5)
