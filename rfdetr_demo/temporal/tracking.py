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

from rfdetr_demo.results.prediction import BOXES, IDS, with_arrays

UNCONFIRMED = -1


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

    def __init__(self, frame_rate: float, detection_threshold: float = 0.5, lost_seconds: float = 1.0) -> None:
        # Activation and the high/low split follow the user's detection threshold: the model only returns boxes
        # above it, so every shown person is a "high" detection that can start a track. ByteTrack's defaults
        # (0.7/0.6) would refuse to start tracks the page shows, and a floor above the threshold would leave
        # low-score people without an id.
        thr = float(np.clip(detection_threshold, 0.0, 0.95))
        self._tracker = _IdFromFirstFrame(
            lost_track_buffer=max(1, round(lost_seconds * 30)),
            frame_rate=max(float(frame_rate), 1e-3),
            track_activation_threshold=thr,
            high_conf_det_threshold=thr,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=0.1,
        )

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
