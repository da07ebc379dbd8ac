"""Stable person ids across frames: ByteTrack (``trackers`` package) on the model's boxes.

The ids go into ``kp.data["tracker_id"]``, which :func:`rfdetr_demo.result.instance_ids` and the box labels already
read, so renderers, tables and exports show them without knowing about tracking. ByteTrack may reorder its output;
we carry each row's original index through ``data`` and map the ids back, so keypoint rows never get shuffled.
A track's first frame (not yet confirmed) has id -1.
"""

from __future__ import annotations

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from rfdetr_demo.result import boxes_of, with_arrays

UNCONFIRMED = -1


class PersonTracker:
    """One tracker per video request (trackers keep state; never share one between requests)."""

    def __init__(self, frame_rate: float, detection_threshold: float = 0.5, lost_seconds: float = 1.0) -> None:
        # Activation and the high/low split follow the user's detection threshold: the model only returns boxes
        # above it, so ByteTrack's defaults (0.7/0.6) would refuse to start tracks the page shows.
        thr = float(np.clip(detection_threshold, 0.05, 0.95))
        self._tracker = ByteTrackTracker(
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
        boxes = boxes_of(key_points) if n else np.zeros((0, 4), np.float32)
        conf = key_points.detection_confidence if key_points.detection_confidence is not None else np.ones(n)
        detections = sv.Detections(
            xyxy=boxes.astype(np.float32),
            confidence=np.asarray(conf, dtype=np.float32),
            class_id=np.zeros(n, dtype=int),
            data={"row": np.arange(n)},
        )
        tracked = self._tracker.update(detections, timestamp=timestamp)
        ids = np.full(n, UNCONFIRMED, dtype=int)
        if len(tracked) and tracked.tracker_id is not None:
            ids[np.asarray(tracked.data["row"], dtype=int)] = tracked.tracker_id
        data = dict(key_points.data)
        data["tracker_id"] = ids
        return with_arrays(key_points, data=data)
