"""Stable person ids across frames: ByteTrack (``trackers`` package) on the model's boxes.

The ids replace the rank ids in ``kp.data["tracker_id"]`` (:data:`rfdetr_demo.results.prediction.IDS`), which
renderers, tables and exports read, so they show them without knowing about tracking. ByteTrack may reorder its output;
we carry each row's original index through ``data`` and map the ids back, so keypoint rows never get shuffled.
Every person gets a real id (0, 1, …) from the first frame they appear in; -1 (:data:`UNCONFIRMED`) is left only
for a frame the tracker refuses to process (a timestamp that goes backwards).
"""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.core.bytetrack.tracklet import ByteTrackTracklet
from trackers.utils import motion_models

from rfdetr_demo.results.prediction import BOXES, IDS, with_arrays

UNCONFIRMED = -1
LOST_SECONDS = 1.0  # a person unseen this long loses their id
MIN_IOU = 0.1  # box overlap (predicted track vs detection) needed to keep an id
MAX_ACTIVATION = 0.95  # the activation threshold follows the user's threshold, capped here


class _IdFromFirstFrame(ByteTrackTracker):
    """ByteTrack that numbers a track on the frame it starts, not on the frame that confirms it.

    ``trackers`` (2.6) reports a new track as -1 on its first frame even with ``minimum_consecutive_frames=1``: it
    only allocates the id when a later frame matches the track. Users read -1 as a bug, and with confirmation after
    one frame there is nothing to wait for. ``_spawn_new_tracks`` (a private hook) appends one tracklet per
    detection that clears the activation threshold, in output order; we number those. If a future ``trackers``
    changes that contract, the counts disagree and we keep its -1 rather than guess (a test checks frame 0 ids).
    """

    def _spawn_new_tracks(
        self,
        detection_boxes: np.ndarray,
        confidences: np.ndarray,
        unmatched_high_local: list[int],
        high_indices: np.ndarray,
        out_det_indices: list[int],
        out_tracker_ids: list[int],
    ) -> None:
        first_track, first_out = len(self.tracks), len(out_tracker_ids)
        super()._spawn_new_tracks(
            detection_boxes, confidences, unmatched_high_local, high_indices, out_det_indices, out_tracker_ids
        )
        if self.minimum_consecutive_frames > 1:
            return
        new_tracks = self.tracks[first_track:]
        spawned = [
            k
            for k in range(first_out, len(out_tracker_ids))
            if float(confidences[out_det_indices[k]]) >= self.track_activation_threshold
        ]
        if len(spawned) != len(new_tracks):
            return
        for k, track in zip(spawned, new_tracks, strict=True):
            track.tracker_id = self._allocate_tracker_id()
            out_tracker_ids[k] = track.tracker_id


class PersonTracker:
    """One tracker per video request (trackers keep state; never share one between requests)."""

    def __init__(self, frame_rate: float, detection_threshold: float = 0.5, lost_seconds: float = LOST_SECONDS) -> None:
        # Activation and the high/low split follow the user's detection threshold: the model only returns boxes
        # above it, so every shown person is a "high" detection that can start a track. ByteTrack's defaults
        # (0.7/0.6) would refuse to start tracks the page shows, and a floor above the threshold would leave
        # low-score people without an id.
        thr = float(np.clip(detection_threshold, 0.0, MAX_ACTIVATION))
        self._tracker = _IdFromFirstFrame(
            lost_track_buffer=max(1, round(lost_seconds * 30)),
            frame_rate=max(float(frame_rate), 1e-3),
            track_activation_threshold=thr,
            high_conf_det_threshold=thr,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=MIN_IOU,
        )

    def set_threshold(self, detection_threshold: float) -> None:
        """Follow a changed person threshold without losing the tracks (the live page's slider moves mid-stream)."""
        thr = float(np.clip(detection_threshold, 0.0, MAX_ACTIVATION))
        self._tracker.track_activation_threshold = thr
        self._tracker.high_conf_det_threshold = thr

    def params(self) -> dict[str, float]:
        """What ``web/src/temporal.js`` needs to run this tracker step for step, read off the live objects.

        The activation threshold is left out (the page applies its own person threshold, capped at
        ``max_activation``); the box filter's noise comes from a real ``ByteTrackTracklet`` and the nominal-step band
        from ``trackers``' motion model, so an upgrade of ``trackers`` that changes them changes the page too (and
        the parity test, tests/test_temporal_js.py, says whether the port still matches).
        """
        t = self._tracker
        kf = ByteTrackTracklet(np.zeros(4)).state_estimator.kf
        scaled = {"measurement_noise": kf.measurement_noise, "process_noise": kf.process_noise,
                  "initial_covariance": kf.state_covariance}  # fmt: skip
        for name, m in scaled.items():  # the port assumes scaled identities (trackers 2.6: 0.1, 0.01, 1)
            if not np.allclose(m, np.eye(len(m)) * m[0, 0]):
                raise RuntimeError(f"trackers' ByteTrack {name} is no longer a scaled identity; update temporal.js")
        return {
            "frame_rate": float(t._frame_rate),
            "max_seconds_lost": float(t.maximum_time_without_update),
            "minimum_iou_threshold": float(t.minimum_iou_threshold),
            "minimum_consecutive_frames": int(t.minimum_consecutive_frames),
            "max_activation": MAX_ACTIVATION,
            **{name: float(m[0, 0]) for name, m in scaled.items()},
            "nominal_step_tolerance_s": float(motion_models._NOMINAL_FRAME_STEP_TOLERANCE_SECONDS),
        }

    def update(self, key_points: sv.KeyPoints, timestamp: float | None = None) -> sv.KeyPoints:
        """Return the same rows (same order) with ``data["tracker_id"]`` set."""
        n = len(key_points)
        detections = sv.Detections(
            xyxy=np.asarray(key_points.data[BOXES], np.float32).reshape(n, 4),
            confidence=np.asarray(key_points.detection_confidence, dtype=np.float32),
            class_id=np.zeros(n, dtype=int),
            data={"row": np.arange(n)},
        )
        tracked = self._tracker.update(detections, timestamp=timestamp)
        ids = np.full(n, UNCONFIRMED, dtype=int)
        if len(tracked) and tracked.tracker_id is not None:
            ids[np.asarray(tracked.data["row"], dtype=int)] = tracked.tracker_id
        data = dict(key_points.data)
        data[IDS] = ids
        return with_arrays(key_points, data=data)
