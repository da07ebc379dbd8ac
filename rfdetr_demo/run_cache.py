"""One process-wide, byte-bounded LRU cache for what display-only redraws need (the Image tab's kept runs).

Why not ``gr.State``: a state lives per session for its whole ``time_to_live``, and every API client and every
visitor is a new session, so a decoded 12-megapixel photo (36 MB) kept in state is multiplied by the number of
visitors; a shared link then grows the server without bound. Here the total is bounded by ``--state-memory-mb``:
the session state holds only a small key, the least recently used runs are evicted first, and a redraw whose run
was evicted runs the model again once (the page says so). Entries also expire after ``ttl_s``.

Pure Python and thread-safe (Gradio runs handlers in worker threads); no Gradio import.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")

MB = 1024 * 1024
# 16 GB host: the model and runtime take ~1.4 GB, each running video job a few hundred MB; 1 GiB of kept runs is
# ~28 full-size phone photos (36 MB decoded each) or ~1000 VGA images, leaving most of the memory unused.
DEFAULT_STATE_MEMORY_MB = 1024
DEFAULT_TTL_S = 1800.0


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    budget_bytes: int
    evictions: int
    hits: int
    misses: int


class ByteLRU(Generic[V]):
    """A thread-safe LRU mapping whose values' total size (``size_of``) stays within ``budget_bytes``.

    A value larger than the whole budget is not kept at all (counted as an eviction): the caller then behaves as
    after any eviction. ``clock`` is injectable so tests can expire entries without sleeping.
    """

    def __init__(
        self,
        budget_bytes: int,
        size_of: Callable[[V], int],
        ttl_s: float | None = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget must be >= 0 bytes, got {budget_bytes}")
        self._budget = int(budget_bytes)
        self._size_of = size_of
        self._ttl = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[V, int, float]] = OrderedDict()
        self._bytes = 0
        self._evictions = self._hits = self._misses = 0

    @property
    def budget_bytes(self) -> int:
        return self._budget

    def resize(self, budget_bytes: int) -> None:
        """Change the budget (at app start, from ``--state-memory-mb``); evicts at once if it shrank."""
        with self._lock:
            self._budget = int(budget_bytes)
            self._shrink()

    def put(self, key: str, value: V) -> bool:
        """Keep ``value`` under ``key`` (replacing that key's old value); False if it is too big to keep."""
        size = int(self._size_of(value))
        with self._lock:
            self._drop(key)
            self._expire()
            if size > self._budget:
                self._evictions += 1
                return False
            self._items[key] = (value, size, self._clock())
            self._bytes += size
            self._shrink()
            return key in self._items

    def get(self, key: str) -> V | None:
        """The value for ``key`` (now the most recently used), or None if it was never kept, evicted or expired."""
        with self._lock:
            self._expire()
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._items[key] = (item[0], item[1], self._clock())
            self._hits += 1
            return item[0]

    def pop(self, key: str) -> None:
        """Forget ``key`` (a closed page frees its memory at once)."""
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._items), self._bytes, self._budget, self._evictions, self._hits, self._misses)

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def _shrink(self) -> None:
        while self._bytes > self._budget and self._items:
            _key, (_value, size, _t) = self._items.popitem(last=False)
            self._bytes -= size
            self._evictions += 1

    def _expire(self) -> None:
        if self._ttl is None:
            return
        cutoff = self._clock() - self._ttl
        while self._items:
            key, (_value, size, used) = next(iter(self._items.items()))
            if used >= cutoff:
                break
            del self._items[key]
            self._bytes -= size
            self._evictions += 1
