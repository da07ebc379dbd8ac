"""Per-instance and per-keypoint tables (pandas), the same numbers the exports carry.

Both tables are built from the threshold-applied, normalised ``sv.KeyPoints``
(:func:`rfdetr_demo.results.prediction.normalize`), so what the table calls visible is exactly what the views draw,
and every field is there to read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import supervision as sv

from rfdetr_demo.results.prediction import BOXES, CLASS_NAME, IDS

PERSON_COLUMNS = ["id", "class", "score", "x1", "y1", "x2", "y2", "visible_keypoints", "mean_keypoint_conf"]
KEYPOINT_COLUMNS = ["person_id", "keypoint", "x", "y", "confidence", "visible"]


def persons_table(kp: sv.KeyPoints, decimals: int = 1) -> pd.DataFrame:
    """One row per detected instance: id, class, detection score, box, visible joint count, mean joint confidence."""
    if len(kp) == 0:
        return pd.DataFrame(columns=PERSON_COLUMNS)
    boxes = kp.data[BOXES].astype(float).round(decimals)
    return pd.DataFrame(
        {
            "id": np.asarray(kp.data[IDS], int),
            "class": kp.data[CLASS_NAME].astype(str),
            "score": kp.detection_confidence.astype(float).round(3),
            "x1": boxes[:, 0],
            "y1": boxes[:, 1],
            "x2": boxes[:, 2],
            "y2": boxes[:, 3],
            "visible_keypoints": kp.visible.sum(axis=1).astype(int),
            "mean_keypoint_conf": kp.keypoint_confidence.astype(float).mean(axis=1).round(3),
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
    ids = np.asarray(kp.data[IDS], int)
    xy = kp.xy.astype(float).round(decimals)
    return pd.DataFrame(
        {
            "person_id": np.repeat(ids, k),
            "keypoint": np.tile(np.asarray(names, dtype=object), n).astype(str),
            "x": xy[:, :, 0].reshape(-1),
            "y": xy[:, :, 1].reshape(-1),
            "confidence": kp.keypoint_confidence.astype(float).reshape(-1).round(3),
            "visible": kp.visible.astype(bool).reshape(-1),
        },
        columns=KEYPOINT_COLUMNS,
    )
