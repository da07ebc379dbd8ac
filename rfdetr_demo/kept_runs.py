"""The Image tab's kept runs: a tiny :class:`RunRef` per session, the heavy :class:`ImageRun` in one bounded cache.

A session's ``gr.State`` holds only the ref (a few hundred bytes: cache key, run id and what is needed to recognise
or repeat the request). The decoded image and the prediction live in :data:`KEPT_RUNS`, a process-wide
:class:`~rfdetr_demo.run_cache.ByteLRU` sized by ``--state-memory-mb``. One cache key per session, so a session's
new run replaces its old one; a ref whose run was evicted (or replaced) finds nothing and the caller re-runs the
model once. Gradio-free.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rfdetr_demo.run_cache import DEFAULT_STATE_MEMORY_MB, MB, ByteLRU

if TYPE_CHECKING:
    from rfdetr_demo.image_task import ImageRun

EVICTED_NOTE = (
    "The previous result had been freed to keep the server's memory bounded, so the model ran once more "
    "(same image, same settings, same result)."
)


def deep_nbytes(obj: Any, _depth: int = 0, _seen: set[int] | None = None) -> int:
    """Bytes held by the numpy arrays reachable from ``obj`` (dataclasses, dicts, sequences, attributes).

    Only arrays matter at this scale (a run is one decoded image plus a few small per-person arrays); shared arrays
    are counted once and the walk stops at a small depth so an unexpected object graph cannot make it slow.
    """
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes) if obj.base is None or id(obj.base) not in seen else 0
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return 0
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = obj
    elif dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        children = vars(obj).values()
    else:
        return 0
    return sum(deep_nbytes(c, _depth + 1, seen) for c in children)


def run_nbytes(run: ImageRun) -> int:
    """What keeping ``run`` costs: its decoded image plus the prediction's arrays, plus a small fixed overhead."""
    return deep_nbytes(run) + 4096


KEPT_RUNS: ByteLRU[tuple[str, ImageRun]] = ByteLRU(DEFAULT_STATE_MEMORY_MB * MB, lambda item: run_nbytes(item[1]))


def configure(state_memory_mb: float) -> None:
    """Set the cache budget from ``--state-memory-mb`` (at app start)."""
    KEPT_RUNS.resize(int(float(state_memory_mb) * MB))


@dataclass(frozen=True)
class RunRef:
    """What a session keeps in ``gr.State``: enough to find its run, or to recognise the same request again."""

    key: str
    run_id: str
    source_path: str | None
    model_threshold: float
    resolution: int

    def covers(self, threshold: float) -> bool:
        return float(threshold) >= self.model_threshold

    def same_request(self, source: object, threshold: float, resolution: int) -> bool:
        """Whether running ``source`` with these settings would only reproduce this run (the model is deterministic)."""
        return (
            self.source_path is not None
            and isinstance(source, (str, Path))
            and str(source) == self.source_path
            and self.covers(threshold)
            and int(resolution) == self.resolution
        )


def keep(run: ImageRun, session: str | None, cache: ByteLRU | None = None) -> RunRef:
    """Store ``run`` as ``session``'s kept run (replacing its previous one) and return the ref for ``gr.State``."""
    cache = KEPT_RUNS if cache is None else cache
    key = session or f"anonymous-{uuid.uuid4().hex}"
    run_id = uuid.uuid4().hex
    cache.put(key, (run_id, run))
    return RunRef(key, run_id, run.source_path, float(run.prediction.threshold), int(run.prediction.resolution))


def lookup(ref: RunRef | None, cache: ByteLRU | None = None) -> ImageRun | None:
    """The run ``ref`` points to, or None when there is none, it was evicted, or the session ran something newer."""
    if not isinstance(ref, RunRef):
        return None
    item = (KEPT_RUNS if cache is None else cache).get(ref.key)
    if item is None or item[0] != ref.run_id:
        return None
    return item[1]


def forget(session: str | None, cache: ByteLRU | None = None) -> None:
    """Free a session's kept run (its page was closed)."""
    if session:
        (KEPT_RUNS if cache is None else cache).pop(session)
