"""Temporal smoothing of keypoints chosen by name (``off`` / ``one-euro`` / ``kalman``), and the One-Euro filter.

Kalman (:mod:`rfdetr_demo.video.kalman`, the default) uses the model's covariance: fixed-lag RTS on a clip, causal on
a live stream. One-Euro follows fast moves and calms still joints; here its cutoff also scales with the keypoint
confidence. Both see key points after the display threshold (a hidden joint is missing, not noisy) and are keyed by
tracker id, so untracked rows pass through.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import supervision as sv

from rfdetr_demo.errors import UserError
from rfdetr_demo.result import IDS, with_arrays
from rfdetr_demo.video.kalman import KalmanSmoother
from rfdetr_demo.video.rts import FixedLagSmoother
from rfdetr_demo.video.tracking import UNCONFIRMED


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


class Smoother(Protocol):
    """A causal smoother: tracked, thresholded, normalised key points of one frame in, the same rows out."""

    def update(self, key_points: sv.KeyPoints, timestamp: float) -> sv.KeyPoints: ...


class SmoothingStage(Protocol):
    """A smoother as a pipeline stage: frames go in with a payload and come out (maybe later) in order."""

    def push(
        self, key_points: sv.KeyPoints, timestamp: float, payload: Any, filled: bool = False
    ) -> list[tuple[Any, sv.KeyPoints]]: ...

    def flush(self) -> list[tuple[Any, sv.KeyPoints]]: ...


class Causal:
    """A causal smoother as a stage: every frame comes out as it goes in (the webcam's only option)."""

    def __init__(self, smoother: Smoother) -> None:
        self.smoother = smoother

    def push(
        self, key_points: sv.KeyPoints, timestamp: float, payload: Any, filled: bool = False
    ) -> list[tuple[Any, sv.KeyPoints]]:
        return [(payload, self.smoother.update(key_points, timestamp))]

    def flush(self) -> list[tuple[Any, sv.KeyPoints]]:
        return []


OFF, ONE_EURO, KALMAN = "off", "one-euro", "kalman"
SMOOTHING_CHOICES = (OFF, ONE_EURO, KALMAN)
# The Kalman filter wins the benchmark (bench/bench_smoothing.py, docs/benchmarks.md): the default everywhere.
DEFAULT_SMOOTHER = KALMAN
# Offline video releases each frame this many frames late, RTS-smoothed with the frames after it (~0.3 s at 30 fps:
# within 3 % of full RTS in the benchmark, and only this many decoded frames held in memory).
OFFLINE_LAG = 10
# Causal smoothers by name; each call builds a fresh one (smoothers keep per-track state: one per request/stream).
SMOOTHERS: dict[str, Callable[[], Smoother]] = {ONE_EURO: KeypointSmoother, KALMAN: KalmanSmoother}


def _key(name: bool | str | None) -> str | None:
    if name is None or name is False or name == "" or name == OFF:
        return None
    key = DEFAULT_SMOOTHER if name is True else str(name)
    if key not in SMOOTHERS:
        raise UserError(f"unknown smoothing {name!r}; choose from {list(SMOOTHING_CHOICES)}")
    return key


def make_smoother(name: bool | str | None) -> Smoother | None:
    """A new causal smoother for ``name`` (True: the default; False, None, "" or "off": none); unknown: ValueError."""
    key = _key(name)
    return None if key is None else SMOOTHERS[key]()


def make_stage(name: bool | str | None, offline: bool) -> SmoothingStage | None:
    """The smoothing stage for a clip (``offline``: Kalman becomes fixed-lag RTS) or a live stream (causal)."""
    key = _key(name)
    if key is None:
        return None
    if key == KALMAN and offline:
        return FixedLagSmoother(lag=OFFLINE_LAG)
    return Causal(SMOOTHERS[key]())
