"""Hand memory freed by requests back to the operating system (glibc ``malloc_trim``).

Every request allocates and frees buffers (decode, drawn views, JPEG encoding, tables). Python frees them, but glibc
keeps freed heap pages in its per-thread arenas, so the server's RSS creeps up under steady traffic although nothing
is kept (docs/benchmarks.md, bench_load (b)). ``malloc_trim(0)`` returns those pages in a few milliseconds: after
every large image, and otherwise at most once per ``TRIM_INTERVAL_S``. Buffers of ``MMAP_THRESHOLD`` or more (photos,
drawn views) get their own mapping, returned when freed, instead of glibc's rising default that puts them in the
heap, where small objects kept meanwhile pin their pages (RSS then steps up by tens of MB now and then). A no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from functools import cache

log = logging.getLogger(__name__)

LARGE_IMAGE_PIXELS = 4_000_000  # ~2.3k × 1.7k: trimmed after each such image
MMAP_THRESHOLD = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)
TRIM_INTERVAL_S = 1.0  # smaller requests: at most one trim per interval (they come many per second)

_last_trim = [float("-inf")]
_last_trim_lock = threading.Lock()


@cache
def _libc():  # -> ctypes.CDLL or None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def configure_allocator() -> bool:
    """Give large buffers their own mappings (call once at start-up); False where that is not possible."""
    libc = _libc()
    try:
        return bool(libc is not None and libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except AttributeError:  # not glibc
        return False


@cache
def _malloc_trim():  # -> ctypes function or None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return freed heap memory to the OS now; False where that is not possible (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def after_request(pixels: int = 0) -> None:
    """Call when a request is done (``pixels``: the largest image it handled)."""
    now = time.monotonic()
    with _last_trim_lock:
        if pixels < LARGE_IMAGE_PIXELS and now - _last_trim[0] < TRIM_INTERVAL_S:
            return
        _last_trim[0] = now
    release_freed_memory()
