"""The temporal stage protocol: smoothers chosen by name (``off`` / ``one-euro`` / ``kalman``) and how they run.

The video pipeline (offline: frames may come out later), the live frame handler (causal) and the in-browser engine's
parameters all go through this module, so a filter is one module (:mod:`~rfdetr_demo.temporal.kalman`,
:mod:`~rfdetr_demo.temporal.one_euro`) plus its entry in :data:`SMOOTHERS`. Kalman, the default, uses the model's
covariance: fixed-lag RTS on a clip, causal on a live stream. Every smoother sees tracked key points after the display
threshold (a hidden joint is missing, not noisy).
"""

from __future__ import annotations

from typing import Any, Protocol

import supervision as sv

from rfdetr_demo.errors import UserError
from rfdetr_demo.results.prediction import apply_keypoint_threshold
from rfdetr_demo.temporal.kalman import FixedLagSmoother, KalmanSmoother
from rfdetr_demo.temporal.one_euro import KeypointSmoother
from rfdetr_demo.temporal.tracking import PersonTracker


class Smoother(Protocol):
    """A causal smoother: tracked, thresholded, normalised key points of one frame in, the same rows out."""

    fills_gaps: bool  # can predict the joints of a frame the model skipped (keyframes need it)

    def update(self, key_points: sv.KeyPoints, timestamp: float) -> sv.KeyPoints: ...

    def surprise(self) -> float | None:
        """How much the last measured frame surprised the filter (χ²₂ units; None: nothing measured or no model)."""
        ...


class SmoothingStage(Protocol):
    """A smoother as a pipeline stage: frames go in with a payload and come out (maybe later) in order."""

    def push(
        self, key_points: sv.KeyPoints, timestamp: float, payload: Any, filled: bool = False
    ) -> list[tuple[Any, sv.KeyPoints]]: ...

    def flush(self) -> list[tuple[Any, sv.KeyPoints]]: ...

    def surprise(self) -> float | None: ...


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

    def surprise(self) -> float | None:
        return self.smoother.surprise()


OFF, ONE_EURO, KALMAN = "off", "one-euro", "kalman"
SMOOTHING_CHOICES = (OFF, ONE_EURO, KALMAN)
# The Kalman filter wins the benchmark (bench/bench_smoothing.py, docs/benchmarks.md): the default everywhere.
DEFAULT_SMOOTHER = KALMAN
# Offline video releases each frame this many frames late, RTS-smoothed with the frames after it (~0.3 s at 30 fps:
# within 3 % of full RTS in the benchmark, and only this many decoded frames held in memory).
OFFLINE_LAG = 10
# Causal smoothers by name; each call builds a fresh one (smoothers keep per-track state: one per request/stream).
SMOOTHERS: dict[str, type[Smoother]] = {ONE_EURO: KeypointSmoother, KALMAN: KalmanSmoother}


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


def fills_gaps(name: bool | str | None) -> bool:
    """Whether the smoother ``name`` can fill the frames the model skipped (keyframes)."""
    key = _key(name)
    return key is not None and SMOOTHERS[key].fills_gaps  # a class attribute: no smoother is built to ask


# Live video (webcam): the tracker's frame rate assumption and the smoother the in-browser engine mirrors.
LIVE_TRACKER_FPS = 10.0


class LiveChain:
    """The live temporal chain for one viewer: tracker ids → display threshold → causal smoother.

    One per viewer and smoother name (trackers and smoothers keep per-person state); the webcam frame handler uses it,
    and the in-browser engine's filter is checked against it (same parameters, same outputs).
    """

    def __init__(self, name: bool | str | None, threshold: float) -> None:
        self.smoother = make_smoother(name)  # an unknown name is a UserError, as for any bad option
        self.tracker = PersonTracker(LIVE_TRACKER_FPS, threshold) if self.smoother is not None else None

    def update(
        self, key_points: sv.KeyPoints, timestamp: float, keypoint_threshold: float, threshold: float | None = None
    ) -> sv.KeyPoints | None:
        """Tracked, thresholded, smoothed key points; None when smoothing is off. ``threshold``: the person
        threshold now (the tracker follows it, as the page's port does, instead of the one it was built with)."""
        if self.smoother is None or self.tracker is None:
            return None
        if threshold is not None:
            self.tracker.set_threshold(threshold)
        kp = self.tracker.update(key_points, timestamp)
        return self.smoother.update(apply_keypoint_threshold(kp, float(keypoint_threshold)), timestamp)


def live_params() -> dict[str, Any]:
    """The live chain's settings for the in-browser engine's port (``web/src/temporal.js``), via its manifest.

    Read off the objects :class:`LiveChain` builds (the Kalman smoother, the tracker at :data:`LIVE_TRACKER_FPS`), so
    the page and server mode cannot drift apart; the page only offers the Kalman filter (on or off).
    """
    return {
        "smoother": KALMAN,
        "tracker": PersonTracker(LIVE_TRACKER_FPS).params(),
        "kalman": KalmanSmoother().params(),
    }
