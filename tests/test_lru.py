"""The one byte-bounded LRU: used by the frame cache and by the served backend's clip cache."""

from __future__ import annotations

import doctest
import threading

import numpy as np
import pytest

from zoom_agent import lru
from zoom_agent._frame_cache import FrameCache
from zoom_agent.lru import ByteLRU
from zoom_agent.models.chat_format import EncodedClip


def block(n: int) -> np.ndarray:
    return np.zeros(n, np.uint8)


def test_drops_the_least_recently_used_past_the_byte_bound():
    cache = ByteLRU[str, np.ndarray](max_bytes=30)
    for key in "abc":
        cache.put(key, block(10))
    assert cache.get("a") is not None  # "a" is now the most recent; "b" the oldest
    cache.put("d", block(10))
    assert [k for k in "abcd" if cache.get(k) is None] == ["b"]  # now a, c, d were used in that order
    cache.put("e", block(25))  # needs room for 25 bytes: drops a, c, d in that order
    assert [k for k in "abcde" if cache.get(k) is not None] == ["e"] and cache.nbytes == 25 and len(cache) == 1


def test_values_larger_than_the_bound_and_repeated_keys_change_nothing():
    cache = ByteLRU[int, np.ndarray](max_bytes=16)
    cache.put(1, block(17))
    assert cache.get(1) is None and cache.nbytes == 0
    first = block(8)
    cache.put(2, first)
    cache.put(2, block(4))  # same key again: the first value stays, counted once
    assert cache.get(2) is first and cache.nbytes == 8
    nothing = ByteLRU[int, np.ndarray](max_bytes=0)
    nothing.put(1, block(1))
    assert len(nothing) == 0 and nothing.get(1) is None


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10"])
def test_a_bad_bound_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="max_bytes must be an int >= 0"):
        ByteLRU(bad)


def test_encoded_clips_are_sized_by_their_base64_frames():
    cache = ByteLRU[str, EncodedClip](max_bytes=10)
    cache.put("x", EncodedClip(frames=("abcd", "ef"), timestamps=(0.0, 0.5)))
    cache.put("y", EncodedClip(frames=("ghijk",), timestamps=(1.0,)))
    assert cache.nbytes == 5 and cache.get("x") is None and cache.get("y") is not None  # 6 + 5 > 10: x goes


def test_the_frame_cache_makes_frames_read_only():
    cache = FrameCache(max_bytes=100)
    frame = block(10)
    cache.put(7, frame)
    with pytest.raises(ValueError, match="read-only"):
        frame[0] = 1


def test_concurrent_puts_and_gets_keep_the_bound_and_the_count():
    cache = ByteLRU[int, np.ndarray](max_bytes=1000)
    start = threading.Barrier(4)

    def work(offset: int) -> None:
        start.wait()
        for i in range(2000):
            cache.put(offset * 10_000 + i % 300, block(1 + i % 50))
            cache.get(offset * 10_000 + (i * 7) % 300)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [v for o in range(4) for k in range(o * 10_000, o * 10_000 + 300) if (v := cache.get(k)) is not None]
    assert cache.nbytes <= 1000 and len(held) == len(cache) and cache.nbytes == sum(v.nbytes for v in held)


def test_the_docstring_example_runs():
    assert doctest.testmod(lru, raise_on_error=True).attempted > 0
