"""Score prediction sets against one dataset: COCOeval plus the figures read off its matching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rfdetr_demo.evaluate.calibration import calibration
from rfdetr_demo.evaluate.dataset import EvalDataset
from rfdetr_demo.evaluate.metrics import (
    Match,
    detection_at,
    joint_errors,
    matches,
    per_image,
    per_keypoint,
    run_cocoeval,
    summary_stats,
)
from rfdetr_demo.evaluate.predictions import PredictionSet

DEFAULT_THRESHOLD = 0.5


@dataclass
class SetScore:
    """Everything the table, plots, gallery and files show for one prediction set."""

    prediction_set: PredictionSet
    stats: dict[str, float | None]
    detection: dict[str, Any]
    per_keypoint: list[dict[str, Any]]
    calibration: dict[str, Any] | None
    per_image: list[dict[str, Any]]
    matches: list[Match] = field(repr=False, default_factory=list)

    @property
    def name(self) -> str:
        return self.prediction_set.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.prediction_set.source,
            "predictions": len(self.prediction_set.results),
            "stats": self.stats,
            "detection": self.detection,
            "per_keypoint": self.per_keypoint,
            "calibration": self.calibration,
            "notes": self.prediction_set.notes,
        }


def score_set(dataset: EvalDataset, prediction_set: PredictionSet, threshold: float | None = None) -> SetScore:
    """COCOeval once, then per-keypoint, calibration, per-image and detection figures from its matching."""
    thr = prediction_set.threshold if threshold is None else threshold
    thr = DEFAULT_THRESHOLD if thr is None else float(thr)
    ev = run_cocoeval(dataset, prediction_set.results)
    pairs = matches(ev)
    joints = joint_errors(ev, pairs, dataset.num_keypoints)
    names = dataset.schema.names
    return SetScore(
        prediction_set=prediction_set,
        stats=summary_stats(ev),
        detection=detection_at(ev, thr),
        per_keypoint=per_keypoint(joints, names),
        calibration=calibration(joints, names),
        per_image=per_image(ev, dataset, pairs, thr),
        matches=pairs,
    )


def worst_images(score: SetScore, count: int = 8) -> list[dict[str, Any]]:
    """Images with people, lowest mean OKS first (ties: more people first)."""
    rows = [r for r in score.per_image if r["people"] > 0]
    rows.sort(key=lambda r: (r["mean_oks"], -r["people"], r["image_id"]))
    return rows[:count]
