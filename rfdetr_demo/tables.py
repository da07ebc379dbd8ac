"""Per-instance and per-keypoint tables (pandas), the same numbers the exports carry.

Both tables are built from the threshold-applied ``sv.KeyPoints`` so what the table calls visible is exactly what
the views draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import supervision as sv

from rfdetr_demo.result import boxes_of, class_names_of, instance_ids

PERSON_COLUMNS = ["id", "class", "score", "x1", "y1", "x2", "y2", "visible_keypoints", "mean_keypoint_conf"]
KEYPOINT_COLUMNS = ["person_id", "keypoint", "x", "y", "confidence", "visible"]


def _scores(kp: sv.KeyPoints) -> np.ndarray:
    return np.asarray(kp.detection_confidence if kp.detection_confidence is not None else np.ones(len(kp)), float)


def _kp_conf(kp: sv.KeyPoints) -> np.ndarray:
    n, k = kp.xy.shape[:2]
    return np.asarray(kp.keypoint_confidence if kp.keypoint_confidence is not None else np.ones((n, k)), float)


def _visible(kp: sv.KeyPoints) -> np.ndarray:
    return np.asarray(kp.visible if kp.visible is not None else np.ones(kp.xy.shape[:2], bool), bool)


def persons_table(kp: sv.KeyPoints, decimals: int = 1) -> pd.DataFrame:
    """One row per detected instance: id, class, detection score, box, visible joint count, mean joint confidence."""
    if len(kp) == 0:
        return pd.DataFrame(columns=PERSON_COLUMNS)
    boxes = boxes_of(kp).astype(float).round(decimals)
    conf = _kp_conf(kp)
    return pd.DataFrame(
        {
            "id": instance_ids(kp),
            "class": class_names_of(kp).astype(str),
            "score": _scores(kp).round(3),
            "x1": boxes[:, 0],
            "y1": boxes[:, 1],
            "x2": boxes[:, 2],
            "y2": boxes[:, 3],
            "visible_keypoints": _visible(kp).sum(axis=1).astype(int),
            "mean_keypoint_conf": conf.mean(axis=1).round(3),
        },
        columns=PERSON_COLUMNS,
    )


def keypoints_table(kp: sv.KeyPoints, names: Sequence[str], decimals: int = 1) -> pd.DataFrame:
    """One row per (instance, keypoint), hidden joints included with ``visible = False``."""
    n, k = kp.xy.shape[:2] if len(kp) else (0, len(names))
    if n == 0:
        return pd.DataFrame(columns=KEYPOINT_COLUMNS)
    if k != len(names):
        raise ValueError(f"{k} keypoints but {len(names)} names")
    ids = instance_ids(kp)
    xy = kp.xy.astype(float).round(decimals)
    return pd.DataFrame(
        {
            "person_id": np.repeat(ids, k),
            "keypoint": np.tile(np.asarray(names, dtype=object), n).astype(str),
            "x": xy[:, :, 0].reshape(-1),
            "y": xy[:, :, 1].reshape(-1),
            "confidence": _kp_conf(kp).reshape(-1).round(3),
            "visible": _visible(kp).reshape(-1),
        },
        columns=KEYPOINT_COLUMNS,
    )
