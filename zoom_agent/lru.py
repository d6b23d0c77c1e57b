"""One byte-bounded least-recently-used cache, for decoded frames and for encoded clips.

`VideoSource` keeps native RGB frames in one (`zoom_agent._frame_cache.FrameCache`), the
served backend keeps base64 JPEG clips in another (`zoom_agent.models.served`). Both bound
memory by the bytes their values hold, not by a count of entries.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class HasBytes(Protocol):
    """A value that knows its size: NumPy arrays and `EncodedClip` both do."""

    @property
    def nbytes(self) -> int: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=HasBytes)


class ByteLRU(Generic[K, V]):
    """A map that drops its least recently used entries once their ``nbytes`` exceed a bound.

    Thread-safe: every call holds the cache's own lock. A value larger than the whole bound
    is not kept, and putting a key that is already held changes nothing (values are
    immutable snapshots of the same content: the first one stays).

    Args:
        max_bytes: the bound on the summed ``nbytes`` of the values held (0 keeps nothing).

    Example:
        >>> import numpy as np
        >>> cache = ByteLRU[int, np.ndarray](max_bytes=16)
        >>> cache.put(1, np.zeros(8, np.uint8)); cache.put(2, np.zeros(8, np.uint8))
        >>> _ = cache.get(1); cache.put(3, np.zeros(8, np.uint8))  # 2 was the oldest
        >>> cache.get(2) is None, cache.nbytes
        (True, 16)
    """

    def __init__(self, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, V] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value held for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used past the bound."""
        size = value.nbytes
        with self._lock:
            if key in self._items or size > self.max_bytes:
                return
            self._items[key] = value
            self._nbytes += size
            while self._nbytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._nbytes -= old.nbytes

    @property
    def nbytes(self) -> int:
        """The summed ``nbytes`` of the values held (never above ``max_bytes``)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._items)
