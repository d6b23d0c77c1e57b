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
