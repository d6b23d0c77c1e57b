"""The tiny offline Qwen-VL models: build, reload with Auto*, tokenizer, chat templates."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zoom_agent.models.chat_templates import CHAT_TEMPLATES
from zoom_agent.models.tiny import (
    FAMILIES,
    MARKER_FILE,
    PROJECT_TAGS,
    QWEN_SPECIAL_TOKENS,
    build_tiny_model,
    tiny_corpus,
    token_id,
)

FAMILY_PATCH = {"qwen2_5_vl": 14, "qwen3_vl": 16}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {family: build_tiny_model(root / family, family) for family in FAMILIES}


def _digest(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def _conversation() -> list[dict[str, Any]]:
    call = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 3.5, "end": 7.0}}</tool_call>'
    answer = (
        "<think>The man waves at <time>(3.5, 7.0)</time>, café naïve ½.</think>\n"
        "<answer>B</answer>\n<glue>[(1.0, 2.5), (3.5, 7.0)]</glue>"
    )
    return [
        {"role": "system", "content": [{"type": "text", "text": "You answer questions about videos."}]},
        {
            "role": "user",
            "content": [
                {"type": "video"},
                {"type": "text", "text": "Question: What does the man do?\nOptions:\nA. runs\nB. waves"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": call}]},
        {"role": "tool", "content": [{"type": "text", "text": "8 frames between 3.5 s and 7.0 s."}]},
        {"role": "user", "content": [{"type": "text", "text": "Zoomed 3.5-7.0 s:"}, {"type": "video"}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_loads_offline_with_auto_classes(built: dict[str, Path], family: str) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    path = built[family]
    processor = AutoProcessor.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)

    assert model.config.model_type == family
    text = model.config.text_config
    assert text.vocab_size % 64 == 0 and text.vocab_size >= len(tokenizer)
    assert text.hidden_size // text.num_attention_heads >= 32  # vLLM's CPU attention needs it
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    for token in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"):
        attr = {"<|image_pad|>": "image_token_id", "<|video_pad|>": "video_token_id"}.get(
            token, token.strip("<|>") + "_token_id"
        )
        assert getattr(model.config, attr) == tokenizer.convert_tokens_to_ids(token)
    video = processor.video_processor
    assert (video.patch_size, video.temporal_patch_size, video.merge_size) == (FAMILY_PATCH[family], 2, 2)
    assert processor.image_processor.patch_size == FAMILY_PATCH[family]
    if family == "qwen3_vl":
        assert list(video.image_mean) == [0.5] * 3 and list(video.image_std) == [0.5] * 3
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token_id == 0
    eos = model.generation_config.eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (eos if isinstance(eos, list) else [eos])


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_chat_template_round_trip_is_exact(built: dict[str, Path], family: str) -> None:
    from transformers import AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(built[family])
    tokenizer = AutoTokenizer.from_pretrained(built[family])
    text = processor.apply_chat_template(_conversation(), tokenize=False, add_generation_prompt=False)
    assert text == tokenizer.apply_chat_template(_conversation(), tokenize=False)  # type: ignore[arg-type]

    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert text.count("<|vision_start|><|video_pad|><|vision_end|>") == 2
    # Tags are whole tokens, and decoding with skip_special_tokens keeps them.
    for tag in (*PROJECT_TAGS, "<tool_call>", "</tool_call>", "<think>", "</think>"):
        assert tag in tokenizer.convert_ids_to_tokens(ids), tag
    kept = tokenizer.decode(ids, skip_special_tokens=True)
    assert "<answer>B</answer>" in kept and "<|im_end|>" not in kept and "<|video_pad|>" not in kept


def test_chat_templates_are_the_families_own() -> None:
    from jinja2 import Environment

    env = Environment()
    user = {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q?"}]}
    tool = {"role": "tool", "content": "4 frames"}
    qwen25 = env.from_string(CHAT_TEMPLATES["qwen2_5_vl"]).render(messages=[user, tool], add_generation_prompt=True)
    assert qwen25 == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n"
        "<|im_start|>tool\n4 frames<|im_end|>\n<|im_start|>assistant\n"
    )
    qwen3 = env.from_string(CHAT_TEMPLATES["qwen3_vl"]).render(messages=[user, tool], add_generation_prompt=True)
    assert qwen3 == (
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Q?<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n4 frames\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_build_is_deterministic_per_seed(tmp_path: Path, built: dict[str, Path]) -> None:
    again = _digest(build_tiny_model(tmp_path / "again", "qwen2_5_vl", seed=0))
    assert again == _digest(built["qwen2_5_vl"])
    other = _digest(build_tiny_model(tmp_path / "other", "qwen2_5_vl", seed=1))
    assert other["model.safetensors"] != again["model.safetensors"]
    assert other["tokenizer.json"] == again["tokenizer.json"]  # one shared tokenizer


@pytest.mark.slow
def test_build_writes_atomically_and_refuses_to_clobber(tmp_path: Path) -> None:
    out = tmp_path / "model"
    assert build_tiny_model(out, "qwen3_vl") == out.resolve()
    assert '"family": "qwen3_vl"' in (out / MARKER_FILE).read_text()
    with pytest.raises(FileExistsError, match="not empty"):
        build_tiny_model(out, "qwen2_5_vl")
    build_tiny_model(out, "qwen2_5_vl", overwrite=True)
    assert '"family": "qwen2_5_vl"' in (out / MARKER_FILE).read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folders left behind


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="family must be one of"):
        build_tiny_model(tmp_path / "m", "llama")  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        build_tiny_model(tmp_path / "file")


def test_corpus_looks_like_the_protocol() -> None:
    corpus = tiny_corpus(200)
    assert corpus == tiny_corpus(200)
    joined = "\n".join(corpus)
    for needle in ("<answer>", "<glue>[(", '"name": "temporal_zoom"', "\nA. ", "<time>(", " s at "):
        assert needle in joined


def test_tokenizer_covers_qwen_special_tokens() -> None:
    from zoom_agent.models.tiny import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    assert tok.convert_tokens_to_ids(QWEN_SPECIAL_TOKENS[0]) == 0
    ids = [token_id(tok, t) for t in QWEN_SPECIAL_TOKENS + PROJECT_TAGS]
    assert len(set(ids)) == len(ids) and all(i > 0 for i in ids[1:])
    odd = "Ünïcödé 漢字 🎬 12.75 s\ttab"
    assert tok.decode(tok(odd)["input_ids"]) == odd


def test_importing_tiny_stays_light() -> None:
    code = "import sys, zoom_agent.models.tiny; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
