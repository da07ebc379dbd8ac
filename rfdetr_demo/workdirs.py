"""Per-request temporary folders for downloads and videos, cleaned up after a while.

Each request gets its own folder so nothing one person uploaded or produced is served to another session, and
folders older than ``max_age_s`` are removed on the next request so a long-running demo does not fill the disk.
Gradio serves returned files only from its temp dir or ``allowed_paths``; the base here is inside the system
temp dir, which Gradio allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

_lock = threading.Lock()


def base_dir() -> Path:
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio") / "rfdetr_demo"
    root.mkdir(parents=True, exist_ok=True)
    return root


def prune(max_age_s: float = 3600.0, root: Path | None = None) -> int:
    """Delete request folders older than ``max_age_s``; return how many were removed."""
    root = root or base_dir()
    cutoff = time.time() - max_age_s
    removed = 0
    with _lock:
        for child in root.iterdir():
            try:
                if child.is_dir() and child.stat().st_mtime < cutoff:
                    shutil.rmtree(child, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def new_request_dir(prefix: str = "req_", max_age_s: float = 3600.0) -> Path:
    """A fresh private folder for one request (and a chance to clean old ones)."""
    prune(max_age_s)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir()))
