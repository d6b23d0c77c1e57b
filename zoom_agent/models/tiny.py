"""Tiny random Qwen-VL models, built offline in seconds (for tests, CI and the demo).

`build_tiny_model` writes a directory that ``AutoProcessor``, ``AutoTokenizer`` and
``AutoModelForImageTextToText`` load with no network: an architecturally real
Qwen2.5-VL or Qwen3-VL (vision tower, patch merger, M-RoPE, deepstack for Qwen3-VL) with
random weights, a byte-level BPE tokenizer trained here on text shaped like this
project's prompts and replies, the family's real chat template and its image and video
processor configs. Answers are meaningless; shapes, token plumbing, timestamps, logprobs
and gradients are real, which is what tests, CI and the offline demo need.

Sizes that work here: text hidden 64, 2 layers, head_dim 32 (vLLM's CPU attention
refuses 16), M-RoPE sections summing to head_dim / 2, vision depth 2, the family's patch
size, temporal patch 2, spatial merge 2. The tokenizer is trained on a fixed corpus per size
preset, so every model of one size shares it; ``seed`` sets the weights only.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from zoom_agent.geometry import FAMILIES, GEOMETRY, Family
from zoom_agent.models.chat_templates import CHAT_TEMPLATES
from zoom_agent.protocol import ZOOM_TOOL_NAME

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

MARKER_FILE = "zoom_agent_tiny.json"
BUILD_VERSION = 1  # bump when the layout of a built directory changes

# Qwen's own special tokens, in Qwen's id order; `special` = skipped when decoding with
# skip_special_tokens (Qwen marks the tool and fim tokens non-special, so do we).
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN_TEXT_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
# This project's tags (zoom_agent.protocol): whole tokens here, kept when decoding.
PROJECT_TAGS: tuple[str, ...] = ("<time>", "</time>", "<answer>", "</answer>", "<glue>", "</glue>")


# Processor settings of the real checkpoints (preprocessor_config.json and
# video_preprocessor_config.json of Qwen2.5-VL-7B-Instruct and Qwen3-VL-8B-Instruct).
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_PROCESSOR_SETTINGS: dict[Family, dict[str, Any]] = {
    "qwen2_5_vl": {
        "mean": _CLIP_MEAN,
        "std": _CLIP_STD,
        "image_size": {"shortest_edge": 3136, "longest_edge": 12845056},
        "video_size": {"shortest_edge": 3136, "longest_edge": 12845056},
    },
    "qwen3_vl": {
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "image_size": {"shortest_edge": 65536, "longest_edge": 16777216},
        "video_size": {"shortest_edge": 4096, "longest_edge": 25165824},
    },
}


@dataclass(frozen=True)
class ModelSize:
    """The dimensions of one size preset (the architecture is the family's real one)."""

    hidden: int  # text hidden size; the vision merger's output size too
    intermediate: int
    layers: int
    heads: int  # head_dim = hidden / heads (vLLM's CPU attention needs >= 32)
    kv_heads: int
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    mrope: dict[Family, tuple[int, int, int]]  # M-RoPE (t, h, w) sections, summing to head_dim / 2
    # also train the tokenizer on the project's own prompt turns (`prompt_corpus`): the system
    # prompt, tool schema and layout become whole-word tokens, so a conversation is shorter
    prompt_corpus: bool = False


SIZES: dict[str, ModelSize] = {
    # tests and CI: about 0.2 M parameters, built in ~2 s
    "tiny": ModelSize(64, 128, 2, 2, 1, 2, 32, 1, {"qwen2_5_vl": (4, 6, 6), "qwen3_vl": (6, 5, 5)}),
    # for the synthetic-gqa task on a CPU (docs/training.md §8): 1.01 M parameters, head_dim 64, sections
    # in the real checkpoints' proportions (Qwen2.5-VL 16/24/24, Qwen3-VL 24/20/20 of 64)
    # Its tokenizer learns the prompt turns too: a synthetic-gqa conversation 1,270 -> 820 tokens.
    "small": ModelSize(128, 384, 3, 2, 1, 2, 64, 1, {"qwen2_5_vl": (8, 12, 12), "qwen3_vl": (12, 10, 10)}, True),
}
SIZE_NAMES = tuple(SIZES)

_TOKENIZER_VOCAB = 1024  # BPE target; both corpora saturate below it (589 and 879 entries)
_CORPUS_SIZE = 3000
_CORPUS_SEED = 20251216  # fixed: every tiny model shares one tokenizer


def tiny_corpus(n: int = _CORPUS_SIZE, seed: int = _CORPUS_SEED) -> list[str]:
    """Generated sentences shaped like this project's prompts and replies.

    Questions with lettered options, clip descriptions with times and sizes, zoom tool
    calls, ``<think>``/``<time>`` reasoning, ``<answer>`` and ``<glue>`` lines.

    Args:
        n: number of samples.
        seed: seed of the generator (the default is the one every tiny model uses).

    Returns:
        The samples, deterministic for ``(n, seed)``.
    """
    rng = random.Random(seed)
    kinds = (_q_sample, _clip_sample, _call_sample, _answer_sample)
    return [kinds[i % len(kinds)](rng) for i in range(n)]


_WHO = ("the man", "the woman", "the boy", "the girl", "a child", "the dog", "the baby", "a person")
_DOES = (
    "picks up the ball",
    "opens the door",
    "sits down on the sofa",
    "waves at the camera",
    "runs to the table",
    "puts down the cup",
    "rides a bike",
    "looks at the others",
    "walks away",
    "laughs",
    "holds the toy",
    "jumps into the water",
)
_ASK = (
    "What does {w} do after {w2} {d}?",
    "Why does {w} {d_base}?",
    "How does {w} react when {w2} {d}?",
    "What happens before {w} {d}?",
    "When does {w} {d_base}?",
    "How many times does {w} {d_base}?",
)


def _t(rng: random.Random, hi: float = 120.0) -> float:
    return round(rng.uniform(0.0, hi), 1)


def _span(rng: random.Random) -> tuple[float, float]:
    a, b = sorted((_t(rng), _t(rng)))
    return a, b


def _q_sample(rng: random.Random) -> str:
    w, w2, d = rng.choice(_WHO), rng.choice(_WHO), rng.choice(_DOES)
    d_base = d.split(" ", 1)[0].rstrip("s") + (" " + d.split(" ", 1)[1] if " " in d else "")
    q = rng.choice(_ASK).format(w=w, w2=w2, d=d, d_base=d_base)
    options = "\n".join(f"{'ABCDE'[i]}. {rng.choice(_WHO)} {rng.choice(_DOES)}" for i in range(5))
    return f"Question: {q[0].upper()}{q[1:]}\nOptions:\n{options}\nAnswer with the option's letter."


def _clip_sample(rng: random.Random) -> str:
    s, e = _span(rng)
    n, w, h = rng.choice((4, 8, 16, 32, 64)), rng.choice((224, 448, 640)), rng.choice((168, 252, 360))
    return rng.choice(
        (
            f"The video lasts {e:.1f} seconds. You see {n} frames from 0.0 s to {e:.1f} s at {w}x{h}.",
            f"Zoomed clip {s:.1f}-{e:.1f} s of the video: {n} frames at {w}x{h}.",
            f"{ZOOM_TOOL_NAME} returned {n} frames between {s:.1f} s and {e:.1f} s.",
            f"Frame times: {', '.join(f'{_t(rng):.1f}' for _ in range(4))} seconds.",
        )
    )


def _call_sample(rng: random.Random) -> str:
    s, e = _span(rng)
    call = json.dumps({"name": ZOOM_TOOL_NAME, "arguments": {"start": s, "end": e}})
    return f"<think>I need a closer look at {s:.1f} to {e:.1f} s.</think>\n<tool_call>{call}</tool_call>"


def _answer_sample(rng: random.Random) -> str:
    spans = [_span(rng) for _ in range(rng.randint(1, 3))]
    glue = ", ".join(f"({s:.1f}, {e:.1f})" for s, e in spans)
    s, e = spans[0]
    why = f"{rng.choice(_WHO)} {rng.choice(_DOES)} at <time>({s:.1f}, {e:.1f})</time>"
    letter = rng.choice("ABCDE")
    return f"<think>{why}, so the answer is clear.</think>\n<answer>{letter}</answer>\n<glue>[{glue}]</glue>"


def prompt_corpus(n: int = _CORPUS_SIZE, seed: int = _CORPUS_SEED) -> list[str]:
    """The project's own prompt turns (`zoom_agent.protocol.prompts`), as the graph sends them.

    System prompts for 0-2 zoom rounds, question turns (with the zoom tool's schema and
    without), follow-ups and format reminders, around the questions of `tiny_corpus` and
    of the synthetic videos (`datasets.synthetic.synthetic_questions`, random events).

    Returns:
        ``n`` samples, deterministic for ``(n, seed)``.
    """
    from zoom_agent.datasets.synthetic import synthetic_questions
    from zoom_agent.datasets.synthetic_video import COLOURS, SHAPES, SyntheticEvent
    from zoom_agent.protocol import prompts

    rng = random.Random(seed)
    fixed = [prompts.system_prompt("tool", max_zoom_rounds=r) for r in range(3)]
    fixed += [prompts.follow_up_prompt("tool", rounds_left=r) for r in range(2)]
    fixed += [prompts.format_reminder("tool"), prompts.system_prompt("zoomzero", max_zoom_rounds=1)]
    out: list[str] = []
    while len(out) < n:
        out.append(fixed[len(out) // 4 % len(fixed)])
        events = []
        for shape in rng.sample(SHAPES, 2):
            start = round(rng.uniform(0.0, 7.0), 2)
            end = round(start + rng.uniform(1.0, 3.0), 2)
            frames = (int(start * 4), int(end * 4))
            colour = rng.choice(list(COLOURS))
            events.append(SyntheticEvent(start, end, shape, colour, rng.randrange(10), *frames, 8, 40, 1, (0, 0, 4, 6)))
        asked = synthetic_questions("v.mp4", events, seed=rng.randrange(1 << 30), duration=10.0)
        for q in rng.sample(asked, 2):
            out.append(prompts.question_prompt(q.question, q.options, allow_zoom=rng.random() < 0.75))
        question = _q_sample(rng).split("\n")[0].removeprefix("Question: ")
        options = [f"{rng.choice(_WHO)} {rng.choice(_DOES)}" for _ in range(4)]
        out.append(prompts.question_prompt(question, options, allow_zoom=rng.random() < 0.75))
    return out[:n]


def build_tiny_tokenizer(size: str = "tiny") -> PreTrainedTokenizerBase:
    """Train the byte-level BPE tokenizer of a size preset, wrapped as Qwen2Tokenizer.

    Every model of one size shares its tokenizer: ``tiny`` learns `tiny_corpus`; ``small``
    learns `prompt_corpus` too (`ModelSize.prompt_corpus`), so the system prompt, the tool
    schema and the layout cost about a token a word.

    Qwen2's pre-tokenizer (its split regex, then ByteLevel without its own regex), an NFC
    normaliser and a ByteLevel decoder, so the round trip text -> ids -> text is exact.
    ``<|endoftext|>`` is id 0 (pad); Qwen's special tokens and this project's tags follow
    the learned vocabulary as added tokens.

    Returns:
        A ``Qwen2Tokenizer`` (eos ``<|im_end|>``, pad ``<|endoftext|>``).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

    bpe = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_TOKENIZER_VOCAB,
        special_tokens=[QWEN_SPECIAL_TOKENS[0]],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = tiny_corpus() + (prompt_corpus() if SIZES[size].prompt_corpus else [])
    bpe.train_from_iterator(corpus, trainer)
    model = json.loads(bpe.to_str())["model"]
    # Qwen2Tokenizer wants merges as pairs; "a b" strings raise a TypeError.
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Qwen2Tokenizer(vocab=model["vocab"], merges=cast(Any, merges), model_max_length=32768)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS[1:]])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_TEXT_TOKENS + PROJECT_TAGS])
    tok.eos_token = "<|im_end|>"
    return tok


def _token_ids(tok: PreTrainedTokenizerBase) -> dict[str, int]:
    names = (
        "<|endoftext|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
    )
    return {name: token_id(tok, name) for name in names}


def token_id(tok: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one token of the vocabulary (a clear error when it is missing)."""
    value = tok.convert_tokens_to_ids(token)
    if not isinstance(value, int) or (value == tok.unk_token_id and token != tok.unk_token):
        raise ValueError(f"token {token!r} is not in the tokenizer's vocabulary")
    return value


def _model_config(family: Family, tok: PreTrainedTokenizerBase, size: str = "tiny") -> Any:
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    ids = _token_ids(tok)
    dims = SIZES[size]
    vocab = -(-len(tok) // 64) * 64  # padded to a multiple of 64, as the real checkpoints are
    text: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": dims.hidden,
        "intermediate_size": dims.intermediate,
        "num_hidden_layers": dims.layers,
        "num_attention_heads": dims.heads,
        "num_key_value_heads": dims.kv_heads,
        "max_position_embeddings": 32768,
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision: dict[str, Any] = {
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "intermediate_size": 2 * dims.vision_hidden,
        "num_heads": dims.vision_heads,
        "patch_size": GEOMETRY[family].patch_size,  # the released checkpoints' geometry
        "spatial_merge_size": GEOMETRY[family].merge_size,
        "temporal_patch_size": GEOMETRY[family].temporal_patch,
        "out_hidden_size": dims.hidden,
    }
    special: dict[str, Any] = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }
    if family == "qwen2_5_vl":
        # M-RoPE sections (t, h, w) sum to head_dim / 2.
        mrope = list(dims.mrope[family])
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope}
        text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
        last = dims.vision_depth - 1  # full attention in the last block (the real ones: every 8th)
        vision.update(window_size=112, fullatt_block_indexes=[last], tokens_per_second=2)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special)
    text["head_dim"] = dims.hidden // dims.heads
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5e6,
        "mrope_section": list(dims.mrope[family]),
        "mrope_interleaved": True,
    }
    vision.update(
        hidden_act="gelu_pytorch_tanh",
        num_position_embeddings=256,  # a perfect square (16 x 16 learned grid)
        deepstack_visual_indexes=[0],
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, **special)


def _random_model(family: Family, tok: PreTrainedTokenizerBase, seed: int, size: str = "tiny") -> PreTrainedModel:
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen3VLForConditionalGeneration,
    )

    config = _model_config(family, tok, size)
    cls = Qwen2_5_VLForConditionalGeneration if family == "qwen2_5_vl" else Qwen3VLForConditionalGeneration
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state untouched
        torch.manual_seed(seed)
        model = cls(config)
    ids = _token_ids(tok)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    return model.eval()


def _processor(family: Family, tok: PreTrainedTokenizerBase) -> ProcessorMixin:
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    s, geometry = _PROCESSOR_SETTINGS[family], GEOMETRY[family]
    common: dict[str, Any] = {
        "patch_size": geometry.patch_size,
        "temporal_patch_size": geometry.temporal_patch,
        "merge_size": geometry.merge_size,
        "image_mean": list(s["mean"]),
        "image_std": list(s["std"]),
    }
    image = Qwen2VLImageProcessor(size=dict(s["image_size"]), **common)
    if family == "qwen2_5_vl":
        video: Any = Qwen2VLVideoProcessor(size=dict(s["video_size"]), **common)
        return Qwen2_5_VLProcessor(
            image_processor=image, tokenizer=tok, video_processor=video, chat_template=CHAT_TEMPLATES[family]
        )
    video = Qwen3VLVideoProcessor(size=dict(s["video_size"]), fps=2, **common)
    return Qwen3VLProcessor(
        image_processor=image, tokenizer=tok, video_processor=video, chat_template=CHAT_TEMPLATES[family]
    )


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    family: Family = "qwen2_5_vl",
    *,
    seed: int = 0,
    overwrite: bool = False,
    size: str = "tiny",
    on_stage: Callable[[str], None] | None = None,
) -> Path:
    """Write a tiny, randomly initialised Qwen-VL model that loads offline.

    Built in a temporary sibling directory and renamed into place, so a reader never sees
    a half-written model. Deterministic: the same ``(family, seed)`` gives the same files.

    Args:
        out_dir: target directory; must not exist or be empty unless ``overwrite``.
        family: ``"qwen2_5_vl"`` (patch 14, CLIP mean/std) or ``"qwen3_vl"`` (patch 16,
            mean/std 0.5, absolute ``<t seconds>`` in prompts).
        seed: seed of the weight initialisation.
        overwrite: replace an existing non-empty ``out_dir``.
        on_stage: called with the name of each step as it begins (the CLI shows them).
        size: a `SIZES` preset: ``tiny`` (tests, about 0.2 M parameters) or ``small``
            (1.01 M, meant to learn the synthetic-gqa task on a CPU).

    Returns:
        The resolved ``out_dir``.

    Example:
        >>> path = build_tiny_model("/tmp/tiny-qwen3", "qwen3_vl")  # doctest: +SKIP
        >>> AutoModelForImageTextToText.from_pretrained(path)  # doctest: +SKIP
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZE_NAMES}, got {size!r}")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out_dir {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty: choose a new folder, or overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_model(tmp, family, seed, size, on_stage or (lambda _: None))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(old / "model")  # move aside first: rename cannot replace a non-empty dir
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_model(tmp: Path, family: Family, seed: int, size: str, on_stage: Callable[[str], None]) -> None:
    on_stage("training the byte-level BPE tokenizer")
    tok = build_tiny_tokenizer(size)
    on_stage(f"building a random {size} {family} model")
    model = _random_model(family, tok, seed, size)
    on_stage(f"writing the weights, processor and tokenizer to {tmp.parent}")
    with quiet_progress_bars():
        model.save_pretrained(tmp)
    _processor(family, tok).save_pretrained(tmp)
    marker = {"family": family, "size": size, "seed": seed, "build_version": BUILD_VERSION, "builder": __name__}
    (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
    # mkdtemp and the safetensors writer make owner-only files; a model is shared-readable.
    tmp.chmod(0o755)
    for f in tmp.iterdir():
        f.chmod(0o644)


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars ("Loading weights", "Writing model shards")."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
