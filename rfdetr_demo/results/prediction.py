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

from rfdetr_demo.results.schema import KeypointSchema


@dataclass
class ModelInfo:
    """What the page, the summaries and the exports say about the model that served a request.

    The service copies it per request with the ``engine`` that served that resolution and ``preparing`` set while a
    faster engine is still being built for it (so nothing parses the engine label).
    """

    name: str
    source: str
    device: str
    precision: str
    default_resolution: int
    num_keypoints: int
    class_names: list[str] = field(default_factory=list)
    random_weights: bool = False
    engine: str = "torch"
    preparing: bool = False  # a faster engine for this resolution is being built in the background

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "device": self.device,
            "precision": self.precision,
            "engine": self.engine,
            "default_resolution": self.default_resolution,
            "num_keypoints": self.num_keypoints,
            "random_weights": self.random_weights,
            "class_names": list(self.class_names),
            "preparing": self.preparing,
        }


BACKGROUND_CLASS = "__background__"


# Keys of ``KeyPoints.data`` that every normalised prediction carries (see :func:`normalize`).
CLASS_NAME = "class_name"  # (N,) str: the checkpoint's class name per row
BOXES = "xyxy"  # (N, 4) float32: the model's boxes, or the extent of the visible joints when it gave none
IDS = "tracker_id"  # (N,) int: rank 0..N-1 by score, replaced by ByteTrack ids when a video is tracked
COVARIANCE = "covariance"  # (N, K, 2, 2) float32 when the model predicts it (optional: older checkpoints do not)


def drop_background(key_points: sv.KeyPoints) -> sv.KeyPoints:
    """Remove rows whose class is the background/no-object slot.

    Filtering by ``data["class_name"]`` (never by a fixed class id) works for the background-first preview layout
    and for 0-based fine-tunes alike. Rows with an empty or missing name (ids the checkpoint has no name for) are
    dropped too: they are not objects the checkpoint was trained to find.
    """
    if len(key_points) == 0:
        return key_points
    names = key_points.data.get(CLASS_NAME) if key_points.data else None
    if names is None:
        return key_points[np.zeros(len(key_points), dtype=bool)]
    names = np.asarray(names, dtype=object)
    keep = (names != BACKGROUND_CLASS) & (names != "")
    return key_points if keep.all() else key_points[keep]


def _extent_of_joints(xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(xy), 4), dtype=np.float32)
    for i, pts in enumerate(xy):
        p = pts[visible[i] & np.isfinite(pts).all(axis=1)]
        if len(p):
            boxes[i] = [p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()]
    return boxes


def normalize(key_points: sv.KeyPoints, num_keypoints: int) -> sv.KeyPoints:
    """The model's raw output as the one shape every table, export and renderer reads, made once per image.

    Background rows are dropped and rows ordered best score first (so rank id 0 is the most confident person);
    then every optional field of ``sv.KeyPoints`` is filled: detection and keypoint confidence (1.0 where the
    model gave none), ``visible`` (all True), ``class_id``, and ``data`` carries :data:`CLASS_NAME`,
    :data:`BOXES` and :data:`IDS`. Downstream code reads these fields directly, with no fallbacks of its own.
    """
    kp = sort_by_score(drop_background(key_points))
    n = len(kp)
    xy = np.asarray(kp.xy, dtype=np.float32).reshape(n, -1, 2) if n else np.zeros((0, num_keypoints, 2), np.float32)
    k = xy.shape[1]
    visible = np.ones((n, k), bool) if kp.visible is None or not n else np.asarray(kp.visible, bool)
    data = dict(kp.data) if n else {}
    names = data.get(CLASS_NAME)
    data[CLASS_NAME] = np.asarray(names if names is not None else [""] * n, dtype=str).reshape(n)
    boxes = data.get(BOXES)
    ok_boxes = boxes is not None and np.shape(boxes) == (n, 4)
    data[BOXES] = np.asarray(boxes, np.float32) if ok_boxes else _extent_of_joints(xy, visible)
    ids = data.get(IDS)
    data[IDS] = np.asarray(ids, int) if ids is not None and len(ids) == n else np.arange(n, dtype=int)
    if data.get(COVARIANCE) is not None:
        data[COVARIANCE] = np.asarray(data[COVARIANCE], dtype=np.float32)
    return sv.KeyPoints(
        xy=xy,
        class_id=np.zeros(n, int) if kp.class_id is None or not n else np.asarray(kp.class_id, int),
        detection_confidence=_filled(kp.detection_confidence if n else None, (n,)),
        keypoint_confidence=_filled(kp.keypoint_confidence if n else None, (n, k)),
        visible=visible,
        data=data,
    )


def _filled(values: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, np.float32) if values is None else np.asarray(values, np.float32).reshape(shape)


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
    visible = key_points.visible & np.isfinite(key_points.xy).all(axis=-1)
    return with_arrays(key_points, visible=visible & (key_points.keypoint_confidence >= keypoint_threshold))


@dataclass
class Prediction:
    """One image's result plus the context needed to render, tabulate and export it honestly.

    ``key_points`` is normalised (:func:`normalize`): every field is filled, so consumers never patch gaps.
    """

    key_points: sv.KeyPoints
    image_size: tuple[int, int]  # (width, height) of the image the coordinates refer to
    schema: KeypointSchema
    threshold: float
    resolution: int
    inference_ms: float
    model_info: ModelInfo

    def __post_init__(self) -> None:
        kp = self.key_points
        k = kp.xy.shape[1] if len(kp) else self.schema.num_keypoints
        if len(kp) and k != self.schema.num_keypoints:
            raise ValueError(f"model returned {k} keypoints but the schema names {self.schema.num_keypoints}")
        missing = [f for f in ("detection_confidence", "keypoint_confidence", "visible") if getattr(kp, f) is None]
        missing += [key for key in (CLASS_NAME, BOXES, IDS) if key not in kp.data]
        if missing:
            raise ValueError(f"key_points are not normalised (missing {missing}); pass them through normalize()")

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.schema.names

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
