"""Evaluate a checkpoint, or any prediction file, on the user's own COCO keypoint annotations (Gradio-free).

Shared by the Evaluate tab, the ``/evaluate`` API endpoint and ``python -m rfdetr_demo evaluate``. Metrics come
from pycocotools' COCOeval; per-keypoint, per-image and calibration figures are read off its own OKS matching.
"""

from rfdetr_demo.evaluate.dataset import EvalDataset, EvaluationError, load_annotations
from rfdetr_demo.evaluate.predictions import PredictionSet, load_prediction_file
from rfdetr_demo.evaluate.scoring import SetScore, score_set

__all__ = [
    "EvalDataset",
    "EvaluationError",
    "PredictionSet",
    "SetScore",
    "load_annotations",
    "load_prediction_file",
    "score_set",
]
