"""The bound on an exact coarse pass (docs/video.md §7): what an exact decoder must decode.

An exact decoder that works at frame granularity must decode, for each wanted frame, its
GOP's keyframe, every reference frame between that keyframe and the wanted frame in decode
order (H.264 ``nal_ref_idc != 0``: a later frame may read any of them), and the wanted frame
itself: the *minimum set*. The (c) keyframe-seek floor decodes every packet from the keyframe
until the wanted frame comes out of the decoder. Both counts come from the file's own packets:

- `scan`: per packet in decode order, its picture type and reference flag, parsed from the
  first slice's NAL header and slice header (AVCC length-prefixed NAL units; no decode);
- `measure`: one single-thread decode of every GOP of the file from its keyframe, on a fresh
  decoder each (as after a seek): the CPU time of each ``decode`` call by picture type, how
  many packets each frame needs sent before it comes out (single-thread and with the floor's
  frame threads), the cost of a non-reference packet sent with ``skip_frame = NONREF``, and
  the RGB conversion per frame.

`count` applies these to a plan's frames. Used by ``bench_video.py --bound``.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType

KINDS = ("I", "P", "B")
_SLICE_KIND = {0: "P", 1: "B", 2: "I", 3: "P", 4: "I"}  # slice_type % 5: P, B, I, SP, SI
_SLICE_NALS = (1, 5)  # coded slice of a non-IDR / an IDR picture
TAIL = 16  # packets past a GOP's end that a run may send before it flushes (B-frame reorder delay)
RGB_SAMPLES = 100  # frames converted to RGB for the conversion's cost


@dataclass(frozen=True)
class Packet:
    """One coded frame, in decode order."""

    order: int  # position in decode order
    slot: int  # display index (frame number on the constant-rate grid)
    kind: str  # I, P or B: the first slice's slice_type
    ref: bool  # nal_ref_idc != 0: other frames may reference it
    key: bool  # the container flags it a keyframe


def nal_length_size(extradata: bytes) -> int:
    """Bytes of each NAL unit's length prefix, from an avcC record (ISO/IEC 14496-15)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError(f"extradata {extradata[:8].hex()}: expected an avcC record (H.264 in MP4/MKV)")
    return (extradata[4] & 3) + 1


def _unescape(payload: bytes) -> bytes:
    """Drop the emulation-prevention bytes (00 00 03 -> 00 00) of a NAL unit's payload."""
    return payload.replace(b"\x00\x00\x03", b"\x00\x00")


def _ue(bits: str, pos: int) -> tuple[int, int]:
    """One Exp-Golomb ue(v) value read at ``pos`` of a bit string; returns (value, next pos)."""
    zeros = 0
    while bits[pos + zeros] == "0":
        zeros += 1
    end = pos + 2 * zeros + 1
    return int(bits[pos + zeros : end], 2) - 1, end


def first_slice(packet: bytes, length_size: int) -> tuple[int, str]:
    """(nal_ref_idc, picture type) of the first slice NAL unit of an AVCC packet."""
    i = 0
    while i + length_size < len(packet):
        n = int.from_bytes(packet[i : i + length_size], "big")
        nal = packet[i + length_size : i + length_size + n]
        i += length_size + n
        if not nal or nal[0] & 31 not in _SLICE_NALS:
            continue  # SEI, AUD, parameter sets...
        head = _unescape(nal[1:17])  # first_mb_in_slice and slice_type fit in far fewer bits
        bits = "".join(f"{b:08b}" for b in head)
        _, pos = _ue(bits, 0)  # first_mb_in_slice
        slice_type, _ = _ue(bits, pos)
        return (nal[0] >> 5) & 3, _SLICE_KIND[slice_type % 5]
    raise ValueError(f"packet of {len(packet)} bytes holds no slice NAL unit (types 1, 5)")


def _slotter(stream: Any) -> Any:
    tb, fps, start = float(stream.time_base), float(stream.average_rate), stream.start_time or 0
    return lambda pts: round((pts - start) * tb * fps)


def scan(path: Path, limit: int | None = None) -> tuple[list[Packet], list[bytes]]:
    """Every packet (or the first ``limit``) of the file's video stream, in decode order, and their bytes."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        size, slot = nal_length_size(bytes(s.codec_context.extradata or b"")), _slotter(s)
        out: list[Packet] = []
        raw: list[bytes] = []
        for pkt in c.demux(s):
            if pkt.size == 0:
                continue  # the demuxer's end-of-stream marker
            if limit is not None and len(out) == limit:
                break
            data = bytes(pkt)
            ref_idc, kind = first_slice(data, size)
            out.append(Packet(len(out), slot(pkt.pts), kind, ref_idc != 0, bool(pkt.is_keyframe)))
            raw.append(data)
    return out, raw


def gops(packets: Sequence[Packet]) -> list[int]:
    """Decode-order positions of the keyframes."""
    return [p.order for p in packets if p.key]


@dataclass
class Measured:
    """What one decode of every GOP measured (CPU seconds)."""

    cost: dict[str, list[float]] = field(default_factory=dict)  # per decode call, by picture type
    skip: list[float] = field(default_factory=list)  # a non-reference packet sent with NONREF
    rgb: list[float] = field(default_factory=list)  # one frame to (H, W, 3) RGB
    sent_until_out: dict[int, dict[int, int]] = field(default_factory=dict)  # threads -> slot -> packets
    decoded_kinds: dict[int, str] = field(default_factory=dict)  # slot -> the decoder's pict_type
    out_with_nonref_skip: set[int] = field(default_factory=set)  # slots that come out with NONREF

    def mean(self, kind: str) -> float:
        return statistics.fmean(self.cost[kind])


def _context(path: Path, threads: int) -> Any:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = av.CodecContext.create(s.codec_context.name, "r")
        cc.extradata = s.codec_context.extradata
    cc.thread_count = threads
    cc.thread_type = "FRAME" if threads > 1 else "SLICE"
    return cc


def _gop_run(
    path: Path, packets: Sequence[Packet], raw: Sequence[bytes], key: int, threads: int, skip: bool, m: Measured
) -> dict[int, int]:
    """Decode from the keyframe at decode position ``key`` on a fresh decoder (as after a
    seek) until every frame of its GOP came out (at most `TAIL` packets past the GOP, then a
    flush); returns each of the GOP's frames' slot -> packets sent when it came out."""
    cc = _context(path, threads)
    if skip:
        cc.skip_frame = "NONREF"
    gop_end = next((p.order for p in packets[key + 1 :] if p.key), len(packets))
    pending = {p.slot for p in packets[key:gop_end]}
    out: dict[int, int] = {}
    timing = threads == 1
    run = packets[key : gop_end + TAIL]
    for n, p in enumerate(run, start=1):
        pkt = av.Packet(raw[p.order])
        pkt.pts = p.slot  # frames come out carrying their slot
        t = time.process_time()
        frames = cc.decode(pkt)
        dt = time.process_time() - t
        if timing and not skip:
            m.cost.setdefault(p.kind, []).append(dt)
        elif timing and not p.ref:
            m.skip.append(dt)
        for f in frames:
            out.setdefault(f.pts, n)
            if timing and not skip:
                m.decoded_kinds[f.pts] = PictureType(f.pict_type).name
                if len(m.rgb) < RGB_SAMPLES and f.pts % 4 == 0:
                    t = time.process_time()
                    f.to_ndarray(format="rgb24")
                    m.rgb.append(time.process_time() - t)
        if pending <= out.keys():
            break
    else:  # the packets ended (or skipped frames never come): a flush gives the rest
        for f in cc.decode(None):
            out.setdefault(f.pts, len(run))
    return {s: out[s] for s in pending if s in out}


def measure(
    path: Path,
    packets: Sequence[Packet],
    raw: Sequence[bytes],
    keys: Iterable[int],
    floor_threads: int,
    repeat: int = 2,
) -> Measured:
    """Decode the GOPs starting at decode positions ``keys`` from their keyframe: costs
    (``repeat`` times, single thread), output points (single thread and ``floor_threads``
    frame threads) and which frames survive ``skip_frame = NONREF``."""
    m = Measured()
    for key in keys:
        for rep in range(repeat):
            single = _gop_run(path, packets, raw, key, 1, False, m)
            if rep == 0:
                m.sent_until_out.setdefault(1, {}).update(single)
        m.sent_until_out.setdefault(floor_threads, {}).update(
            _gop_run(path, packets, raw, key, floor_threads, False, m)
        )
        m.out_with_nonref_skip |= _gop_run(path, packets, raw, key, 1, True, m).keys()
    return m


def verify_loop(
    segment: Sequence[Packet], seg_raw: Sequence[bytes], looped: Sequence[Packet], raw: Sequence[bytes]
) -> None:
    """The looped file's packets repeat the segment's: same bytes, same flags, slots shifted by
    one period per copy. Raises ValueError naming the first packet that does not."""
    period = len(segment)
    for p in looped:
        q = segment[p.order % period]
        shift = period * (p.order // period)
        if raw[p.order] != seg_raw[q.order] or p.key != q.key or p.slot != q.slot + shift:
            raise ValueError(f"packet {p.order} of the looped file is not packet {q.order} of the segment")


@dataclass
class Counts:
    """Frames a plan's wanted frames cost, by picture type."""

    floor: Counter[str]  # (c): every packet from the keyframe until the wanted frame comes out
    minimum: Counter[str]  # the keyframe, every reference frame up to the wanted one, the wanted frame
    sent: int  # packets ours sends: the keyframe through the last wanted packet (then drains)
    skipped: int  # of those, non-reference frames nobody wants (sent with NONREF, not reconstructed)
    returned: int  # wanted frames


def count(segment: Sequence[Packet], total: int, wanted: Iterable[int], sent_until_out: dict[int, int]) -> Counts:
    """Counts for ``wanted`` slots of a file that loops ``segment`` (``total`` packets in all);
    ``sent_until_out``: per segment slot, packets sent from its keyframe until it came out."""
    period = len(segment)
    order = {p.slot: p.order for p in segment}
    keys = sorted((p.slot, p.order) for p in segment if p.key)
    groups: dict[int, list[int]] = {}  # absolute decode position of a keyframe -> wanted slots
    for w in sorted(set(wanted)):
        copy, local = divmod(w, period)
        key = max(o for s, o in keys if s <= local)
        groups.setdefault(copy * period + key, []).append(w)
    c = Counts(Counter(), Counter(), 0, 0, 0)
    for key, ws in groups.items():
        base = key - key % period
        last = max(base + order[w % period] for w in ws)
        wanted_at = {base + order[w % period] for w in ws}
        for o in range(key, last + 1):
            p = segment[o % period]
            if p.ref or o in wanted_at:
                c.minimum[p.kind] += 1
            else:
                c.skipped += 1
        c.sent += last + 1 - key
        n = max(sent_until_out[w % period] for w in ws)
        for o in range(key, min(key + n, total)):
            c.floor[segment[o % period].kind] += 1
        c.returned += len(ws)
    return c


def _cpu(counts: Counter[str], m: Measured) -> float:
    return sum(n * m.mean(k) for k, n in counts.items())


def _row(name: str, counts: Counter[str], cpu: float) -> str:
    cells = " | ".join(str(counts.get(k, 0)) for k in KINDS)
    return f"| {name} | {cells} | {sum(counts.values())} | {cpu:.2f} |"


def _segment(segment_path: Path, looped_path: Path, floor_threads: int) -> tuple[list[Packet], Measured]:
    """Scan the segment, check that the looped file repeats it, measure its GOPs, check the parser."""
    segment, seg_raw = scan(segment_path)
    period = len(segment)
    looped, raw = scan(looped_path, limit=2 * period)
    verify_loop(segment, seg_raw, looped, raw)
    kinds = Counter(p.kind for p in segment)
    refs = Counter(p.kind for p in segment if p.ref)
    print(
        f"{segment_path.name}: {period} frames, {len(gops(segment))} GOPs; "
        + ", ".join(f"{kinds[k]} {k} ({refs[k]} reference)" for k in KINDS)
        + f"; {looped_path.name}: its first {len(looped)} packets repeat it (bytes, keyframes, slots + {period})"
    )
    # the segment's GOPs, decoded from the looped file so the last one runs on into the next copy
    m = measure(looped_path, looped, raw, gops(looped)[: len(gops(segment))], floor_threads)
    parsed = {p.slot: p.kind for p in segment}
    if m.decoded_kinds != parsed:
        bad = sorted(s for s in parsed if m.decoded_kinds.get(s) != parsed[s])[:5]
        raise SystemExit(f"parsed picture types differ from the decoder's at slots {bad}")
    nonref = {p.slot for p in segment if not p.ref}
    if m.out_with_nonref_skip != set(parsed) - nonref:
        raise SystemExit("the frames skip_frame=NONREF drops are not the parsed non-reference frames")
    ms = {k: 1000 * m.mean(k) for k in KINDS}
    print(
        "CPU per decode call, single thread ("
        + ", ".join(f"{k} {ms[k]:.2f} ms over {len(m.cost[k])}" for k in KINDS)
        + f"); a non-reference packet sent with NONREF {1000 * statistics.fmean(m.skip):.3f} ms over "
        f"{len(m.skip)}; RGB conversion {1000 * statistics.fmean(m.rgb):.2f} ms over {len(m.rgb)} frames. "
        f"Parsed types match the decoder's; NONREF drops exactly the {len(nonref)} parsed non-reference frames."
    )
    return segment, m


def run(segment_path: Path, looped_path: Path, wanted: Sequence[int], ours_first: int, floor_threads: int) -> None:
    """Scan, verify, measure, count and print the bound for ``wanted`` slots of the looped file.

    ``ours_first``: read the plan's first N frames with `VideoSource` and check that its
    counters match the minimum set (0: skip that read)."""
    from zoom_agent.video import VideoSource

    segment, m = _segment(segment_path, looped_path, floor_threads)
    total = VideoSource(looped_path).info.num_frames
    rgb = len(wanted) * statistics.fmean(m.rgb)
    floors = {t: count(segment, total, wanted, m.sent_until_out[t]) for t in sorted(m.sent_until_out)}
    c = floors[1]
    low = _cpu(c.minimum, m) + rgb
    ours = low + c.skipped * statistics.fmean(m.skip)
    print(
        f"\nCoarse plan of {looped_path.name}, {len(wanted)} frames "
        "(CPU seconds estimated: frames x the costs above, + RGB per returned frame)\n"
    )
    print("| decodes | " + " | ".join(KINDS) + " | frames | CPU s |")
    print("|---|" + "---:|" * (len(KINDS) + 2))
    for t, f in floors.items():
        print(_row(f"(c) floor, {t} frame thread{'s' * (t > 1)}", f.floor, _cpu(f.floor, m) + rgb))
    print(_row("minimum: keyframe + references up to the wanted frame + the wanted frame", c.minimum, low))
    print(_row(f"ours (skip + drain): the minimum + {c.skipped} NONREF packets", c.minimum, ours))
    print(f"\nours sends {c.sent} packets (keyframe to wanted frame, then drains); {c.skipped} go with NONREF.")
    for t, f in floors.items():
        floor = _cpu(f.floor, m) + rgb
        print(
            f"Bound, floor with {t} thread(s): floor / minimum = {floor / low:.2f}x "
            f"(ours estimated {floor / ours:.2f}x; decode only, no RGB: {_cpu(f.floor, m) / _cpu(c.minimum, m):.2f}x)"
        )
    if ours_first:
        check = count(segment, total, wanted[:ours_first], m.sent_until_out[1])
        src = VideoSource(looped_path)
        src.read_indices(list(wanted[:ours_first]))
        st, least = src.stats, sum(check.minimum.values())
        same = st.frames_decoded == least and st.packets_sent == check.sent
        print(
            f"\nours on the plan's first {ours_first} frames (VideoSource counters): {st.frames_decoded} frames "
            f"decoded, {st.packets_sent} packets sent; the minimum set is {least} frames, "
            f"{check.sent} packets: {'the same' if same else 'DIFFERENT'}"
        )
