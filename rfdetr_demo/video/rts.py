"""Fixed-lag Rauch-Tung-Striebel smoothing of keypoints for offline video, where later frames are known.

A causal filter trails a moving joint and cannot tell a turn from noise until it has seen it; a file is not live.
The backward pass runs over the causal :class:`~rfdetr_demo.video.kalman.KalmanSmoother`'s step records, and each
frame is released ``lag`` frames later so memory stays flat (the backward gain decays within a few frames, so
half a second is all but full RTS).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import supervision as sv

from rfdetr_demo.result import with_arrays
from rfdetr_demo.video.kalman import KalmanSmoother, StepRecord


def rts_backward(records: list[StepRecord]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Smoothed ``(x, P)`` for each step of one track, oldest first; joints are chained only while alive."""
    x_s, p_s = records[-1].x_filt.copy(), records[-1].p_filt.copy()
    out = [(x_s, p_s)]
    for cur, nxt in zip(reversed(records[:-1]), reversed(records[1:]), strict=True):
        chain = cur.alive & nxt.alive & ~nxt.fresh
        x_new, p_new = cur.x_filt.copy(), cur.p_filt.copy()
        if chain.any():
            pf, pp = cur.p_filt[chain], nxt.p_pred[chain]
            gain = pf @ nxt.f.T @ np.linalg.inv(pp)
            x_new[chain] = cur.x_filt[chain] + np.einsum("kij,kj->ki", gain, x_s[chain] - nxt.x_pred[chain])
            p = pf + gain @ (p_s[chain] - pp) @ gain.transpose(0, 2, 1)
            p_new[chain] = 0.5 * (p + p.transpose(0, 2, 1))
        x_s, p_s = x_new, p_new
        out.append((x_s, p_s))
    return out[::-1]


@dataclass
class _Pending:
    index: int
    payload: Any
    key_points: sv.KeyPoints
    rows: dict[int, int] = field(default_factory=dict)  # row -> tracker id


class FixedLagSmoother:
    """Delays frames by ``lag`` and replaces each filtered joint by its RTS-smoothed estimate."""

    def __init__(self, lag: int | None = 15, **kalman: Any) -> None:
        if lag is not None and lag < 1:
            raise ValueError(f"lag must be at least 1 frame (or None for full RTS), got {lag}")
        self.lag = lag
        self.filter = KalmanSmoother(**kalman)
        self._pending: deque[_Pending] = deque()
        self._history: dict[int, list[tuple[int, StepRecord]]] = {}
        self._count = 0
        self.last_records: dict[int, StepRecord] = {}  # the latest push's filter steps (its innovations: keyframes)

    def push(
        self, key_points: sv.KeyPoints, timestamp: float, payload: Any = None, filled: bool = False
    ) -> list[tuple[Any, sv.KeyPoints]]:
        """Filter one frame; return the frames (payload, smoothed keypoints) that are now final, oldest first.

        ``filled``: the model skipped this frame; its rows (people seen on the keyframes) are only predicted here and
        get their positions from the RTS pass once the next keyframe has been filtered.
        """
        filtered, records = self.filter.filter(key_points, timestamp, filled)
        self.last_records = records
        ids = np.asarray(key_points.data.get("tracker_id", []), dtype=int) if key_points.data else np.zeros(0, int)
        item = _Pending(self._count, payload, filtered)
        for row, rec in records.items():
            tid = int(ids[row])
            # A reset track or joint breaks the chain itself (its record is ``fresh``), so history is kept as is.
            self._history.setdefault(tid, []).append((self._count, rec))
            item.rows[row] = tid
        self._pending.append(item)
        self._count += 1
        if self.lag is not None and len(self._pending) > self.lag:
            return self._release(1)
        return []

    def flush(self) -> list[tuple[Any, sv.KeyPoints]]:
        """Release every frame still held (end of the clip)."""
        return self._release(len(self._pending))

    def _release(self, count: int) -> list[tuple[Any, sv.KeyPoints]]:
        batch = [self._pending.popleft() for _ in range(count)]
        first = batch[0].index
        smoothed: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for tid in {t for item in batch for t in item.rows.values()}:
            hist = [(i, r) for i, r in self._history.get(tid, []) if i >= first]
            if hist:
                smoothed[tid] = dict(zip([i for i, _ in hist], rts_backward([r for _, r in hist]), strict=True))
        out = [(item.payload, self._apply(item, smoothed)) for item in batch]
        last = batch[-1].index
        for tid in list(self._history):
            kept = [(i, r) for i, r in self._history[tid] if i > last]
            if kept:
                self._history[tid] = kept
            else:
                del self._history[tid]
        return out

    def _apply(self, item: _Pending, smoothed: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]) -> sv.KeyPoints:
        kp = item.key_points
        if not item.rows:
            return kp
        xy = kp.xy.copy()
        data = dict(kp.data)
        cov = np.asarray(data["covariance"]).copy()
        for row, tid in item.rows.items():
            est = smoothed.get(tid, {}).get(item.index)
            if est is None:
                continue
            alive = kp.visible[row]
            xy[row, alive] = est[0][alive, :2]
            cov[row, alive] = est[1][alive, :2, :2]
        data["covariance"] = cov
        return with_arrays(kp, xy=xy, data=data)
