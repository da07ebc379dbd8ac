"""Per-request temporary folders for downloads and videos, inside the pruned temp area.

Each request gets its own folder so nothing one person uploaded or produced is served to another session. The
folders live under Gradio's temp dir (Gradio serves returned files only from there or ``allowed_paths``), where
:data:`rfdetr_demo.disk_budget.BUDGET` prunes them, with Gradio's uploads, by age and total size
(``--max-temp-gb``). A folder created inside a :meth:`~rfdetr_demo.disk_budget.DiskBudget.in_use` scope is held
until that scope ends, so it is never pruned while its request is still writing it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rfdetr_demo.disk_budget import BUDGET, REQUEST_DIR_NAME


def base_dir() -> Path:
    root = BUDGET.root() / REQUEST_DIR_NAME
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_request_dir(prefix: str = "req_") -> Path:
    """A fresh private folder for one request (and a chance to prune old ones)."""
    BUDGET.maybe_prune()
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir()))
    BUDGET.adopt(path)
    return path
