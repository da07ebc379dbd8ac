"""The worst images of a set, drawn: ground truth in a neutral colour under the prediction in the app's colours.

Ground truth is drawn first, thin and light grey with hollow joints, so the prediction's blue/orange/green skeleton
stays readable on top and every gap between the two is visible at a glance.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import supervision as sv

from rfdetr_demo.evaluate.pipeline import Evaluation
from rfdetr_demo.evaluate.predictions import COVARIANCE_KEY
from rfdetr_demo.evaluate.scoring import SetScore, worst_images
from rfdetr_demo.evaluate.sources import ImageSource
from rfdetr_demo.image.decode import load_image
from rfdetr_demo.results.prediction import normalize
from rfdetr_demo.results.render import VIEW_SKELETON, Style, render
from rfdetr_demo.results.schema import KeypointSchema

GT_COLOR = (220, 220, 220)  # RGB, neutral light grey
GALLERY_SIDE = 960  # long side of a gallery image: enough to judge joints, small to send


def _gt_points(evaluation: Evaluation, image_id: int) -> list[np.ndarray]:
    coco = evaluation.dataset.coco
    k = evaluation.dataset.num_keypoints
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], catIds=evaluation.dataset.category_ids, iscrowd=False))
    return [np.asarray(a["keypoints"], float).reshape(k, 3) for a in anns if a["num_keypoints"] > 0]


def draw_ground_truth(rgb: np.ndarray, people: list[np.ndarray], schema: KeypointSchema, scale: float) -> np.ndarray:
    """Light-grey skeleton and hollow joints of the labelled keypoints (COCO v > 0)."""
    out = rgb.copy()
    style = Style.for_size(rgb.shape[1], rgb.shape[0])
    for pts in people:
        xy = np.round(pts[:, :2] * scale).astype(int)
        labelled = pts[:, 2] > 0
        for a, b in schema.edges:
            if labelled[a] and labelled[b]:
                cv2.line(out, tuple(xy[a]), tuple(xy[b]), GT_COLOR, max(1, style.thickness), cv2.LINE_AA)
        for j in np.flatnonzero(labelled):
            cv2.circle(out, tuple(xy[j]), style.radius + 1, GT_COLOR, max(1, style.thickness), cv2.LINE_AA)
    return out


def _visible(v: np.ndarray) -> np.ndarray:
    """Joints flagged v > 0 (the app's export hides joints that way); a person with no flag set shows all joints."""
    shown = v > 0
    shown[~shown.any(axis=1)] = True
    return shown


def predictions_as_keypoints(results: list[dict[str, Any]], k: int, threshold: float, scale: float) -> sv.KeyPoints:
    """The set's detections of one image scoring at least ``threshold``, as ``sv.KeyPoints`` for the renderer."""
    kept = [r for r in results if r["score"] >= threshold]
    xy = np.asarray([r["keypoints"] for r in kept], dtype=np.float32).reshape(len(kept), k, 3)
    data: dict[str, Any] = {"class_name": np.array(["person"] * len(kept), dtype=object)}
    if kept and all(COVARIANCE_KEY in r for r in kept):
        data["covariance"] = np.asarray([r[COVARIANCE_KEY] for r in kept], dtype=np.float32) * scale**2
    return sv.KeyPoints(
        xy=xy[:, :, :2] * scale,
        class_id=np.zeros(len(kept), dtype=int),
        detection_confidence=np.asarray([r["score"] for r in kept], dtype=np.float32),
        visible=_visible(xy[:, :, 2]),
        data=data,
    )


def _caption(row: dict[str, Any]) -> str:
    oks = "–" if row["mean_oks"] is None else f"{row['mean_oks']:.2f}"
    return f"{row['file_name']} · OKS {oks} · {row['found']}/{row['people']} found · {row['detections']} detections"


def render_image(
    evaluation: Evaluation, score: SetScore, row: dict[str, Any], source: ImageSource
) -> tuple[np.ndarray, str]:
    loaded = load_image(source.read(), max_side=GALLERY_SIDE)
    scale = loaded.scale
    schema = evaluation.dataset.schema
    scene = draw_ground_truth(loaded.rgb, _gt_points(evaluation, row["image_id"]), schema, scale)
    results = [r for r in score.prediction_set.results if r["image_id"] == row["image_id"]]
    kp = predictions_as_keypoints(results, schema.num_keypoints, score.detection["threshold"], scale)
    return render(scene, normalize(kp, schema.num_keypoints), schema, [VIEW_SKELETON])[0], _caption(row)


def worst_gallery(
    evaluation: Evaluation, score: SetScore | None = None, count: int = 8
) -> list[tuple[np.ndarray, str]]:
    """(image, caption) for the ``count`` lowest-OKS images whose files are at hand (a model run's, or given)."""
    score = score or evaluation.first
    rows = [r for r in worst_images(score, count=len(score.per_image)) if r["image_id"] in evaluation.images]
    return [render_image(evaluation, score, row, evaluation.images[row["image_id"]][1]) for row in rows[:count]]
