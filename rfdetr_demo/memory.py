"""Hand memory freed after a large request back to the operating system (glibc ``malloc_trim``).

A 12-megapixel photo passes through several full-size buffers (decode, colour conversion, drawn views, JPEG
encoding). Python frees them, but glibc keeps freed heap pages in its per-thread arenas, so the server's RSS steps
up under a stream of large photos although nothing is kept. ``malloc_trim(0)`` returns those pages; it takes a few
milliseconds, so it runs only after requests with large images. A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)

LARGE_IMAGE_PIXELS = 4_000_000  # ~2.3k × 1.7k: below this the buffers are small next to the model's own memory


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


def after_image(pixels: int) -> None:
    """Call when a request that handled an image of ``pixels`` pixels is done."""
    if pixels >= LARGE_IMAGE_PIXELS:
        release_freed_memory()
