"""Their stage data manifest (`zoom_agent.datasets.stage_data`), on small fixtures in their layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoom_agent.datasets.stage_data import load_stage_data, source_of
from zoom_agent.training.config import DataConfig
from zoom_agent.training.loop.data import load_questions
from zoom_agent.types import Span

ANET = [
    {
        "video": "v_abc",
        "question": "What does the man do after he picks up the ball?",
        "options": ["(A) throws it", "(B) kicks it", "(C) drops it", "(D) sits down"],
        "answer": "(B)",
        "glue": [[12.5, 20.0], [31, 40]],
    }
]
NEXTGQA = [
    {
        "video": "1017/4402839155.mp4",
        "question": "why did the boy run?",
        "options": ["(A) chase dog", "(B) cold", "(C) play", "(D) rain", "(E) hungry"],
        "answer": "A",
        "glue": [[1.2, 5.8]],
        "id": "4402839155_3",
    }
]


def _manifest(tmp_path: Path, files: dict[str, list]) -> Path:
    entries = []
    for name, items in files.items():
        (tmp_path / name).write_text(json.dumps(items))
        entries.append(f"  - json_path: {name}\n    data_folder: videos/{name.split('_')[0]}")
    manifest = tmp_path / "stage1.yaml"
    manifest.write_text("datasets:\n" + "\n".join(entries) + "\n")
    return manifest


def test_items_become_questions_with_letters_spans_and_sources(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, {"anet_gvideoqa.json": ANET, "nextgqa_val.json": NEXTGQA})
    anet, nextgqa = load_stage_data(manifest)
    assert anet.options == ("throws it", "kicks it", "drops it", "sits down") and anet.answer_letter == "B"
    assert anet.gt_spans == (Span(start=12.5, end=20.0), Span(start=31, end=40))
    assert anet.video == str((tmp_path / "videos/anet/v_abc.mp4").resolve())  # .mp4 appended as theirs
    assert (anet.task, anet.id) == ("anet", "anet/anet_gvideoqa/0")
    assert (nextgqa.task, nextgqa.id, nextgqa.answer_letter) == ("nextgqa", "4402839155_3", "A")
    assert nextgqa.video.endswith("videos/nextgqa/1017/4402839155.mp4")
    config = DataConfig(kind="stage", path=str(manifest), shuffle=False)
    assert [q.id for q in load_questions(config, tmp_path / "out", write=False)] == [anet.id, nextgqa.id]


def test_sources_are_named_as_their_loader_names_them() -> None:
    names = ["plm_clean_5k.json", "nextgqa_clean_2k.json", "qvhighlights_gqa.json", "anet_long.json", "other.json"]
    assert [source_of(n) for n in names] == ["plm", "nextgqa", "qvhighlights", "anet", "gqa"]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ({k: v for k, v in ANET[0].items() if k != "glue"}, "item 0: expected an object with keys"),
        (ANET[0] | {"answer": "(F)"}, "answer '\\(F\\)' is not one of the options' letters"),
        (ANET[0] | {"options": ["throws it", "kicks it"]}, r"option 0 'throws it' should start with \(A\)"),
        (ANET[0] | {"glue": [[5]]}, "bad glue"),
        (ANET[0] | {"video": "../../etc/passwd"}, "escapes the video root"),
    ],
)
def test_bad_items_name_the_file_the_item_and_what_was_expected(tmp_path: Path, item: dict, match: str) -> None:
    manifest = _manifest(tmp_path, {"anet_gvideoqa.json": [item]})
    with pytest.raises(ValueError, match=match) as info:
        load_stage_data(manifest)
    assert "anet_gvideoqa.json" in str(info.value)


def test_bad_manifests_and_ego4d_features_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("datasets: []\n")
    with pytest.raises(ValueError, match="non-empty list 'datasets'"):
        load_stage_data(tmp_path / "empty.yaml")
    with pytest.raises(ValueError, match=r"ego4d items are \.npy features"):
        load_stage_data(_manifest(tmp_path, {"ego4d_nlq.json": ANET}))


FIXTURES = Path(__file__).parent / "fixtures" / "stage_data"


def test_their_stage1_manifest_with_the_raw_nextgqa_release() -> None:
    questions = load_stage_data(FIXTURES / "stage1.yaml")
    assert [q.task for q in questions] == ["anet", "anet", "qvhighlights", "nextgqa", "nextgqa", "nextgqa"]
    first, second, qvh = questions[:3]
    assert first.answer_letter == "A" and first.options == (
        "She starts jogging.",
        "She sits down.",
        "She drinks water.",
        "She stretches her arms.",
    )
    assert first.video == str((FIXTURES / "videos/activitynet/v_fixture_anet_1.mp4").resolve())
    assert second.video.endswith("videos/activitynet/v_fixture_anet_2.mp4")  # already .mp4: kept
    assert second.gt_spans == (Span(start=3.0, end=7.5), Span(start=20.0, end=26.25))
    assert qvh.gt_spans == (Span(start=0, end=16),) and qvh.answer_letter == "B"
    # The raw release: csv order, answer text -> index, gsub spans and duration, id video_qid.
    gqa = {q.id: q for q in questions[3:]}
    assert list(gqa) == ["4882821564_1", "2435100235_7", "2435100235_1"]
    watch = gqa["2435100235_1"]
    assert watch.answer == 2 and (watch.options or ())[2] == "want to sell watch" and watch.answer_letter == "C"
    assert watch.gt_spans[0] == Span(start=20.9, end=22.8) and len(watch.gt_spans) == 4
    assert (watch.duration, watch.qtype) == (64.0, "CW")
    assert watch.video == str((FIXTURES / "videos/NExTVideo/2435100235.mp4").resolve())


def test_their_stage2_manifest_names_its_sources_as_theirs() -> None:
    plm, anet_long, clean = load_stage_data(FIXTURES / "stage2.yaml")
    assert (plm.task, anet_long.task, clean.task) == ("plm", "anet", "nextgqa")
    assert anet_long.gt_spans == (Span(start=301.5, end=322.0),)
    assert clean.answer_letter == "C" and len(clean.options or ()) == 5
    assert clean.id == "nextgqa/nextgqa-clean-2k/0"


def test_the_stage_recipes_resolve_with_the_fixture_manifests(tmp_path: Path) -> None:
    from zoom_agent.cli import main
    from zoom_agent.training.config import load_recipe

    for name, manifest, count in (("zoomzero-stage1", "stage1.yaml", 6), ("zoomzero-stage2", "stage2.yaml", 3)):
        config = load_recipe(name, ["data.kind=stage", f"data.path={FIXTURES / manifest}", "data.shuffle=false"])
        assert len(load_questions(config.data, tmp_path, write=False)) == count
        assert main(["train", name, "--dry-run", "--json", "-o", "data.kind=stage", f"data.path={manifest}"]) == 0


def _raw_manifest(tmp_path: Path, entry: str) -> Path:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(f"datasets:\n  - {entry}\n")
    return manifest


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("{format: nextgqa, json_path: x.json, data_folder: v}", "a nextgqa entry needs ann_dir and data_folder"),
        ("{format: gvideoqa, json_path: x.json, data_folder: v}", "format 'gvideoqa' is not one of zoomzero, nextgqa"),
        ("{format: nextgqa, ann_dir: ann, data_folder: v, split: train}", "split 'train' should be val or test"),
        ("just-a-string", r"datasets\[0\]: expected a mapping"),
    ],
)
def test_bad_raw_entries_name_the_manifest_the_entry_and_what_was_expected(
    tmp_path: Path, entry: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match) as info:
        load_stage_data(_raw_manifest(tmp_path, entry))
    assert "m.yaml:datasets[0]" in str(info.value)


def test_a_raw_nextgqa_entry_takes_the_id_map_and_names_bad_release_files(tmp_path: Path) -> None:
    import shutil

    ann = shutil.copytree(FIXTURES / "nextgqa", tmp_path / "ann")
    (tmp_path / "map.json").write_text('{"4882821564": "1105/4882821564", "2435100235": "0004/2435100235"}')
    entry = "{format: nextgqa, ann_dir: ann, data_folder: NExTVideo, id_map: map.json}"
    first = load_stage_data(_raw_manifest(tmp_path, entry))[0]
    assert first.video == str((tmp_path / "NExTVideo/1105/4882821564.mp4").resolve())
    (ann / "gsub_val.json").write_text('{"4882821564": {"duration": 90, "location": {"1": [[30, 10]]}}}')
    with pytest.raises(ValueError, match=r"gsub_val\.json:4882821564_1: segment \[30, 10\] has start > end"):
        load_stage_data(_raw_manifest(tmp_path, "{format: nextgqa, ann_dir: ann, data_folder: NExTVideo}"))
