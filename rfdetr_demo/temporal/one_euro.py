"""The One-Euro filter (Casiez et al. 2012) on every joint of every tracked person.

It follows fast moves and calms still joints; here its cutoff also scales with the keypoint confidence. It sees key
points after the display threshold (a hidden joint is missing, not noisy) and is keyed by tracker id, so untracked
rows pass through. It needs no covariance, so it cannot fill frames the model skipped (``fills_gaps``).
"""

from __future__ import annotations

import math

import numpy as np
import supervision as sv

from rfdetr_demo.results.prediction import IDS, with_arrays
from rfdetr_demo.temporal.tracking import UNCONFIRMED


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class _TrackFilter:
    def __init__(self, xy: np.ndarray, t: float) -> None:
        self.x = xy.astype(np.float64).copy()
        self.dx = np.zeros_like(self.x)
        self.t = t


class KeypointSmoother:
    """One-Euro filter (Casiez et al. 2012) on every joint of every tracked person."""

    fills_gaps = False  # no motion model with a covariance: it cannot predict a frame the model skipped

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0, max_age_s: float = 2.0):
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.max_age_s = max_age_s
        self._tracks: dict[int, _TrackFilter] = {}

    def update(self, key_points: sv.KeyPoints, timestamp: float) -> sv.KeyPoints:
        """Smoothed copy (same rows, same arrays otherwise) of tracked, normalised key points (ids from the tracker)."""
        if len(key_points) == 0:
            return key_points
        xy = key_points.xy.astype(np.float32).copy()
        k = xy.shape[1]
        conf = np.nan_to_num(np.asarray(key_points.keypoint_confidence, dtype=np.float64))
        vis = key_points.visible
        for row, tid in enumerate(np.asarray(key_points.data[IDS], dtype=int)):
            if tid == UNCONFIRMED:
                continue
            raw = xy[row].astype(np.float64)
            ok = np.isfinite(raw).all(axis=1) & vis[row]
            state = self._tracks.get(tid)
            if state is None or timestamp - state.t > self.max_age_s or timestamp <= state.t:
                self._tracks[tid] = _TrackFilter(np.where(ok[:, None], raw, np.nan), timestamp)
                continue
            dt = timestamp - state.t
            fresh = ok & ~np.isfinite(state.x).all(axis=1)
            state.x[fresh] = raw[fresh]  # a joint seen for the first time starts where it is
            upd = ok & ~fresh
            dx = np.zeros((k, 2))
            dx[upd] = (raw[upd] - state.x[upd]) / dt
            a_d = _alpha(self.d_cutoff, dt)
            state.dx[upd] = a_d * dx[upd] + (1 - a_d) * state.dx[upd]
            speed = np.linalg.norm(state.dx, axis=1)
            # Low confidence → lower cutoff → the filter trusts the new measurement less.
            cutoff = (self.min_cutoff + self.beta * speed) * np.clip(conf[row], 0.05, 1.0)
            a = _alpha(cutoff, dt)[:, None]
            state.x[upd] = (a * raw + (1 - a) * state.x)[upd]
            state.t = timestamp
            xy[row, upd] = state.x[upd].astype(np.float32)
        for tid in [t for t, s in self._tracks.items() if timestamp - s.t > self.max_age_s]:
            del self._tracks[tid]
        return with_arrays(key_points, xy=xy)

    def surprise(self) -> float | None:
        """No innovation to report (the keyframe schedule then looks more often)."""
        return None
