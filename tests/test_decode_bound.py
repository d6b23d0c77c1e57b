"""The exact coarse pass's bound (benchmarks/decode_bound.py, docs/video.md §7): the H.264
reference-flag parser against what FFmpeg does, and ours against the minimum set it implies.

The parser reads each packet's first slice (nal_ref_idc, slice_type); if it were wrong, the
bound would be computed on the wrong frames without any sign, so it is checked against the
decoder itself: the picture types FFmpeg reports, and the frames ``skip_frame = NONREF``
drops (exactly those with nal_ref_idc 0).
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import pytest
from conftest import ROOT
from video_files import BIKES, needs, write_av

from zoom_agent.video import VideoSource

sys.path.insert(0, str(ROOT / "benchmarks"))
import decode_bound


@pytest.fixture(scope="module")
def bframes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # PyAV's libx264 defaults: 3 B-frames with B-pyramid (some B-frames are references)
    return write_av(tmp_path_factory.mktemp("bound") / "bframes.mp4", 120, w=64, h=48, gop=25)


def _clip(name: str, bframes: Path) -> Path:
    return bframes if name == "bframes" else needs(BIKES)


def _decoded(path: Path, skip: str) -> dict[int, str]:
    """Slot -> picture type of every frame a sequential PyAV decode returns with ``skip_frame``."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = skip
        tb, fps, start = float(s.time_base), float(s.average_rate), s.start_time or 0
        return {round((f.pts - start) * tb * fps): av.video.frame.PictureType(f.pict_type).name for f in c.decode(s)}


@pytest.mark.parametrize("name", ["bframes", "bikes"])
def test_parsed_reference_flags_are_the_frames_nonref_skip_drops(name: str, bframes: Path) -> None:
    path = _clip(name, bframes)
    packets, _ = decode_bound.scan(path)
    nonref = {p.slot for p in packets if not p.ref}
    assert nonref and {p.kind for p in packets if p.ref} == {"I", "P", "B"}  # both kinds of B-frame: it can fail
    assert _decoded(path, "DEFAULT") == {p.slot: p.kind for p in packets}
    assert set(_decoded(path, "NONREF")) == {p.slot for p in packets} - nonref


@pytest.mark.parametrize("name", ["bframes", "bikes"])
def test_ours_reconstructs_exactly_the_minimum_set(name: str, bframes: Path) -> None:
    """One wanted frame at a time: ours sends the keyframe through the wanted packet and the
    decoder returns exactly the keyframe, the references among them and the wanted frame."""
    path = _clip(name, bframes)
    packets, raw = decode_bound.scan(path)
    keys = decode_bound.gops(packets)
    m = decode_bound.measure(path, packets, raw, keys, floor_threads=2, repeat=1)
    assert m.out_with_nonref_skip == {p.slot for p in packets if p.ref}  # the same check, through measure
    by_slot = {p.slot: p for p in packets}
    # non-reference B-frames (shown before a reference decoded ahead of them) and a P-frame
    late_b = [s for s, p in by_slot.items() if p.kind == "B" and not p.ref and s > 40]
    for w in (late_b[0], late_b[-1], next(s for s, p in by_slot.items() if p.kind == "P" and s > 60)):
        want = decode_bound.count(packets, len(packets), [w], m.sent_until_out[1])
        src = VideoSource(path, workers=1)
        src.read_indices([w])
        assert src.stats.packets_sent == want.sent, f"frame {w}"
        assert src.stats.frames_decoded == sum(want.minimum.values()), f"frame {w}"
        assert src.stats.packets_sent - src.stats.frames_decoded == want.skipped
        # and the floor decodes at least that: every packet until the frame comes out
        assert sum(want.floor.values()) >= want.sent


def _slice_nal(ref_idc: int, nal_type: int, first_mb: int, slice_type: int) -> bytes:
    """A slice NAL unit's start as an encoder writes it: ue(v) fields, then emulation prevention."""
    bits = "".join("0" * (len(f"{v + 1:b}") - 1) + f"{v + 1:b}" for v in (first_mb, slice_type)) + "1"
    bits += "0" * (-len(bits) % 8)
    out, zeros = bytearray([ref_idc << 5 | nal_type]), 0
    for byte in int(bits, 2).to_bytes(len(bits) // 8, "big"):
        if zeros >= 2 and byte <= 3:
            out.append(3)  # 00 00 0x -> 00 00 03 0x
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _avcc(*nals: bytes, size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def test_slice_header_parsing() -> None:
    sei = bytes([0x06, 0x05, 0x01, 0x80])  # skipped: not a slice
    idr = _slice_nal(3, 5, 0, 7)  # slice_type 7 = I (all slices of the picture)
    assert decode_bound.first_slice(_avcc(sei, idr, _slice_nal(0, 1, 0, 1)), 4) == (3, "I")
    assert decode_bound.first_slice(_avcc(_slice_nal(0, 1, 3, 6), size=2), 2) == (0, "B")
    # a huge first_mb_in_slice puts 00 00 0x in the header: the escapes must be dropped first
    escaped = _slice_nal(2, 1, 2**23 - 1, 1)
    assert b"\x00\x00\x03" in escaped
    assert decode_bound.first_slice(_avcc(escaped), 4) == (2, "B")
    assert decode_bound.first_slice(_avcc(_slice_nal(1, 1, 2**20, 5)), 4) == (1, "P")
    with pytest.raises(ValueError, match="holds no slice NAL unit"):
        decode_bound.first_slice(_avcc(sei), 4)
    with pytest.raises(ValueError, match="expected an avcC record"):
        decode_bound.nal_length_size(b"\x00\x00\x00\x01\x67")
