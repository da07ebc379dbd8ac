"""A replay predictor: returns COCO ground truth as real ``sv.KeyPoints``.

It is the test and benchmark oracle for everything downstream of the network (rendering, tables, exports, video,
streams). The offline environment cannot download the real checkpoint, and random weights produce noise, so
checking pixels and numbers against known ground truth is the only way to test those layers on real data.

Ground truth is mapped to predictions as follows (documented because tests rely on it):
- detection score: 1.0 for the first annotated person of an image, minus 0.01 per following person;
- keypoint confidence: 0.9 for COCO visibility 2, 0.6 for visibility 1 (labelled but occluded), 0.0 for 0;
- ``visible``: COCO visibility > 0;
- covariance: isotropic, std = 2·σ_k·sqrt(area) with the COCO OKS sigmas, i.e. the spread OKS tolerates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv

from rfdetr_demo.results.prediction import IDS, scale_keypoints
from rfdetr_demo.results.schema import COCO_OKS_SIGMAS

__all__ = ["ReplayPredictor", "load_coco_truth", "scale_keypoints"]

VISIBILITY_TO_CONFIDENCE = {0: 0.0, 1: 0.6, 2: 0.9}


@dataclass(frozen=True)
class CocoImageTruth:
    image_id: int
    file_name: str
    width: int
    height: int
    key_points: sv.KeyPoints


def _annotations_to_keypoints(anns: list[dict], class_name: str = "person") -> sv.KeyPoints:
    k = len(COCO_OKS_SIGMAS)
    n = len(anns)
    xy = np.zeros((n, k, 2), dtype=np.float32)
    vis = np.zeros((n, k), dtype=np.int64)
    boxes = np.zeros((n, 4), dtype=np.float32)
    cov = np.zeros((n, k, 2, 2), dtype=np.float32)
    sigmas = np.asarray(COCO_OKS_SIGMAS, dtype=np.float32)
    for i, ann in enumerate(anns):
        kps = np.asarray(ann["keypoints"], dtype=np.float32).reshape(k, 3)
        xy[i] = kps[:, :2]
        vis[i] = kps[:, 2].astype(np.int64)
        x, y, w, h = ann["bbox"]
        boxes[i] = [x, y, x + w, y + h]
        std = 2.0 * sigmas * np.sqrt(max(float(ann.get("area", w * h)), 1.0))
        cov[i, :, 0, 0] = std**2
        cov[i, :, 1, 1] = std**2
    conf = np.vectorize(VISIBILITY_TO_CONFIDENCE.get)(vis).astype(np.float32) if n else np.zeros((0, k), np.float32)
    return sv.KeyPoints(
        xy=xy,
        class_id=np.zeros(n, dtype=int),
        keypoint_confidence=conf,
        detection_confidence=(1.0 - 0.01 * np.arange(n)).astype(np.float32),
        visible=vis > 0,
        data={
            "xyxy": boxes,
            "class_name": np.array([class_name] * n, dtype=object),
            "covariance": cov,
            "coco_id": np.array([a.get("id", 0) for a in anns], dtype=np.int64),
            IDS: np.arange(n),  # normalised like the service's output (rank ids; scores already descend)
        },
    )


def load_coco_truth(json_path: str | Path) -> dict[int, CocoImageTruth]:
    """Ground truth per image id from a COCO person-keypoints file."""
    data = json.loads(Path(json_path).read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 1) > 0 and not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    return {
        img["id"]: CocoImageTruth(
            img["id"],
            img["file_name"],
            img["width"],
            img["height"],
            _annotations_to_keypoints(by_image.get(img["id"], [])),
        )
        for img in data["images"]
    }


class ReplayPredictor:
    """Implements :class:`rfdetr_demo.models.predictor.Predictor` by looking up ground truth for each image.

    ``lookup`` maps an RGB image to the ground truth for it (already in that image's pixel coordinates).
    ``calls`` counts batches, so tests can assert that display-only changes never re-run the model.
    """

    def __init__(self, lookup: Callable[[np.ndarray], sv.KeyPoints]) -> None:
        self.lookup = lookup
        self.calls = 0
        self.images_seen = 0

    def predict(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
        self.calls += 1
        self.images_seen += len(images)
        out = []
        for img in images:
            kp = self.lookup(img)
            score = kp.detection_confidence if kp.detection_confidence is not None else np.ones(len(kp))
            out.append(kp[score > threshold] if len(kp) else kp)  # strictly above, as rfdetr filters
        return out

    @classmethod
    def from_coco(cls, json_path: str | Path) -> ReplayPredictor:
        """Match images by size to the COCO images, scaling when the size differs only by a uniform factor."""
        truths = list(load_coco_truth(json_path).values())

        def lookup(img: np.ndarray) -> sv.KeyPoints:
            h, w = img.shape[:2]
            for t in truths:
                if (t.width, t.height) == (w, h):
                    return t.key_points
            aspect = w / h
            best = min(truths, key=lambda t: abs(t.width / t.height - aspect))
            if abs(best.width / best.height - aspect) < 0.02:
                return scale_keypoints(best.key_points, w / best.width, h / best.height)
            return best.key_points[np.zeros(len(best.key_points), dtype=bool)]

        return cls(lookup)
