"""The inference result every tab, table, export and renderer shares.

A :class:`Prediction` holds the model's ``sv.KeyPoints`` after class filtering (background rows dropped) but before
the display-only keypoint threshold. Display options are applied by :func:`apply_keypoint_threshold`, which hides
joints through ``visible`` instead of slicing columns, so ``data["covariance"]`` and every other per-keypoint array
stay aligned with ``xy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import supervision as sv

BACKGROUND_CLASS = "__background__"


def class_names_of(key_points: sv.KeyPoints) -> np.ndarray:
    """Per-row class names (``""`` where the model gave none)."""
    names = key_points.data.get("class_name") if key_points.data else None
    if names is None:
        return np.full(len(key_points), "", dtype=object)
    return np.asarray(names, dtype=object)


def drop_background(key_points: sv.KeyPoints) -> sv.KeyPoints:
    """Remove rows whose class is the background/no-object slot.

    Filtering by ``data["class_name"]`` (never by a fixed class id) works for the background-first preview layout
    and for 0-based fine-tunes alike. Rows with an empty name (ids the checkpoint has no name for) are dropped too:
    they are not objects the checkpoint was trained to find.
    """
    if len(key_points) == 0:
        return key_points
    names = class_names_of(key_points)
    keep = (names != BACKGROUND_CLASS) & (names != "")
    return key_points if keep.all() else key_points[keep]


def with_arrays(
    key_points: sv.KeyPoints,
    *,
    xy: np.ndarray | None = None,
    visible: np.ndarray | None = None,
    data: dict | None = None,
) -> sv.KeyPoints:
    """A copy with some arrays replaced and every other field shared, rows and columns kept aligned.

    The one place that rebuilds ``sv.KeyPoints`` field by field, so a new field (or a rename in supervision) is
    handled once for thresholding, mirroring, scaling, tracking and smoothing alike.
    """
    return sv.KeyPoints(
        xy=key_points.xy if xy is None else xy,
        class_id=key_points.class_id,
        keypoint_confidence=key_points.keypoint_confidence,
        detection_confidence=key_points.detection_confidence,
        visible=key_points.visible if visible is None else visible,
        data=dict(key_points.data) if data is None else data,
    )


def scale_keypoints(key_points: sv.KeyPoints, sx: float, sy: float) -> sv.KeyPoints:
    """Scale coordinates, boxes and covariance to a resized image (keeps every array aligned)."""
    data = dict(key_points.data)
    if data.get("xyxy") is not None:
        data["xyxy"] = np.asarray(data["xyxy"], dtype=np.float32) * np.array([sx, sy, sx, sy], dtype=np.float32)
    if data.get("covariance") is not None:
        s = np.diag([sx, sy]).astype(np.float32)
        data["covariance"] = (s @ np.asarray(data["covariance"], dtype=np.float32) @ s).astype(np.float32)
    return with_arrays(
        key_points, xy=(key_points.xy * np.array([sx, sy], dtype=np.float32)).astype(np.float32), data=data
    )


def apply_keypoint_threshold(key_points: sv.KeyPoints, keypoint_threshold: float) -> sv.KeyPoints:
    """Return a copy whose ``visible`` hides joints below ``keypoint_threshold`` or with non-finite coordinates.

    The arrays themselves are shared, not sliced, so covariance, confidence and xy stay in sync.
    """
    n, k = key_points.xy.shape[:2]
    base = key_points.visible if key_points.visible is not None else np.ones((n, k), dtype=bool)
    conf = key_points.keypoint_confidence
    visible = base & np.isfinite(key_points.xy).all(axis=-1)
    if conf is not None:
        visible &= conf >= keypoint_threshold
    return with_arrays(key_points, visible=visible)


def boxes_of(key_points: sv.KeyPoints) -> np.ndarray:
    """Detection boxes (N, 4) xyxy: the model's own boxes when present, else the extent of the visible joints."""
    xyxy = key_points.data.get("xyxy") if key_points.data else None
    if xyxy is not None and len(xyxy) == len(key_points):
        return np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
    boxes = np.zeros((len(key_points), 4), dtype=np.float32)
    for i, pts in enumerate(key_points.xy):
        vis = key_points.visible[i] if key_points.visible is not None else np.ones(len(pts), bool)
        p = pts[vis & np.isfinite(pts).all(axis=1)]
        if len(p):
            boxes[i] = [p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()]
    return boxes


def instance_ids(key_points: sv.KeyPoints) -> np.ndarray:
    """Stable ids for display: tracker ids when a tracker assigned them, else 0..N-1 in score order."""
    tracker = key_points.data.get("tracker_id") if key_points.data else None
    if tracker is not None and len(tracker) == len(key_points):
        return np.asarray(tracker, dtype=int)
    return np.arange(len(key_points), dtype=int)


@dataclass
class Prediction:
    """One image's result plus the context needed to render, tabulate and export it honestly."""

    key_points: sv.KeyPoints
    image_size: tuple[int, int]  # (width, height) of the image the coordinates refer to
    keypoint_names: tuple[str, ...]
    threshold: float
    resolution: int
    inference_ms: float
    model_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = self.key_points.xy.shape[1] if len(self.key_points) else len(self.keypoint_names)
        if len(self.key_points) and k != len(self.keypoint_names):
            raise ValueError(f"model returned {k} keypoints but the schema names {len(self.keypoint_names)}")

    def __len__(self) -> int:
        return len(self.key_points)

    def above(self, threshold: float) -> Prediction:
        """The result rfdetr would have returned at a higher detection ``threshold``, without running it again.

        rfdetr keeps the top-k queries and then the rows scoring strictly above the threshold (no NMS after it), so
        filtering a low-threshold result with the same ``>`` gives exactly the rows of a run at ``threshold``.
        """
        threshold = float(threshold)
        if threshold < self.threshold:
            raise ValueError(f"this result only holds people scoring above {self.threshold}, not {threshold}")
        if threshold == self.threshold or not len(self.key_points):
            return replace(self, threshold=threshold)
        keep = np.asarray(self.key_points.detection_confidence) > threshold
        return replace(self, key_points=self.key_points[keep], threshold=threshold)

    def displayed(self, keypoint_threshold: float) -> sv.KeyPoints:
        """The keypoints as shown for a given display threshold."""
        return apply_keypoint_threshold(self.key_points, keypoint_threshold)


def sort_by_score(key_points: sv.KeyPoints) -> sv.KeyPoints:
    """Order rows by detection score, best first, so person 0 is the most confident one."""
    score = key_points.detection_confidence
    if score is None or len(key_points) < 2:
        return key_points
    order = np.argsort(-np.asarray(score), kind="stable")
    return key_points[order]
