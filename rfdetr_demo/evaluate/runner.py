"""A model run over the annotated images, in batches through the shared model service, with progress and cancel.

The model runs at a low score floor, not at the chosen threshold: COCO's AP is an area under the whole
precision-recall curve and needs the low-scoring detections too (COCOeval keeps the 20 best per image). The chosen
threshold is where recall and precision, the per-image table and the gallery are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rfdetr_demo.defaults import DEFAULT_THRESHOLD
from rfdetr_demo.evaluate.dataset import EvalDataset, EvaluationError, ImageEntry
from rfdetr_demo.evaluate.predictions import COVARIANCE_KEY, MAX_DETECTIONS, PredictionSet
from rfdetr_demo.evaluate.sources import ImageSource
from rfdetr_demo.image.decode import DEFAULT_MAX_SIDE, ImageLoadError, load_image
from rfdetr_demo.models.zerogpu import estimate_seconds, gpu
from rfdetr_demo.results.exports import coco_results
from rfdetr_demo.results.prediction import CLASS_NAME, Prediction, scale_keypoints

SCORE_FLOOR = 0.01
DEFAULT_BATCH_SIZE = 4

Progress = Callable[[int, int], None]


class EvaluationCancelled(RuntimeError):
    """The person pressed Cancel (or the process was asked to stop) between two batches."""


@dataclass(frozen=True)
class RunOptions:
    threshold: float = DEFAULT_THRESHOLD
    resolution: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_image_side: int = DEFAULT_MAX_SIDE


def decode(entry: ImageEntry, source: ImageSource, max_side: int) -> tuple[np.ndarray, float]:
    """RGB array and its scale to the annotation's pixels; a size that disagrees with the annotations is an error."""
    try:
        loaded = load_image(source.read(), max_side=max_side)
    except (ImageLoadError, OSError) as exc:
        raise EvaluationError(f"image {source.name}: {exc}") from exc
    w, h = loaded.original_size
    if entry.width and entry.height and (w, h) != (entry.width, entry.height):
        raise EvaluationError(
            f"image {source.name} is {w}×{h} but the annotations say {entry.width}×{entry.height}: "
            "the keypoints would not line up (was it resized or rotated?)"
        )
    return loaded.rgb, loaded.scale


def _category_map(dataset: EvalDataset) -> Callable[[str], int]:
    by_name = {name: cid for cid, name in dataset.category_names.items()}
    fallback = dataset.category_ids[0]
    return lambda class_name: by_name.get(class_name, fallback)


def prediction_results(
    prediction: Prediction, image_id: int, scale: float, category_of: Callable[[str], int]
) -> list[dict[str, Any]]:
    """COCO results (the app's COCO export, in annotation pixels) plus each person's covariance."""
    kp = prediction.key_points[:MAX_DETECTIONS]
    if scale != 1.0:
        kp = scale_keypoints(kp, 1.0 / scale, 1.0 / scale)
    results = coco_results(kp, image_id)
    cov = kp.data.get("covariance") if kp.data else None
    for i, (result, name) in enumerate(zip(results, kp.data[CLASS_NAME], strict=True)):
        result["category_id"] = category_of(str(name))
        if cov is not None:
            result[COVARIANCE_KEY] = np.round(np.asarray(cov[i], dtype=float), 4).tolist()
    return results


def _lease_seconds(service: Any, dataset: EvalDataset, pairs: Sequence[Any], options: RunOptions, *_: Any) -> float:
    return estimate_seconds(len(pairs), options.resolution or service.info.default_resolution)


@gpu(_lease_seconds)
def predict_dataset(
    service: Any,
    dataset: EvalDataset,
    pairs: Sequence[tuple[ImageEntry, ImageSource]],
    options: RunOptions,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    name: str = "model",
) -> PredictionSet:
    """Run the model on every paired image, ``batch_size`` at a time; returns the run as a prediction set.

    The whole run is one GPU lease on ZeroGPU (its duration from the image count and resolution).
    """
    if options.batch_size < 1:
        raise EvaluationError(f"batch size must be at least 1, got {options.batch_size}")
    category_of = _category_map(dataset)
    results: list[dict[str, Any]] = []
    total = len(pairs)
    if on_progress:
        on_progress(0, total)
    for start in range(0, total, options.batch_size):
        if should_stop is not None and should_stop():
            raise EvaluationCancelled(f"cancelled after {start} of {total} images")
        batch = pairs[start : start + options.batch_size]
        decoded = [decode(entry, source, options.max_image_side) for entry, source in batch]
        predictions = service.predict_batch(
            [rgb for rgb, _ in decoded], threshold=min(options.threshold, SCORE_FLOOR), resolution=options.resolution
        )
        for (entry, _), (_, scale), prediction in zip(batch, decoded, predictions, strict=True):
            results += prediction_results(prediction, entry.id, scale, category_of)
        if on_progress:
            on_progress(min(start + len(batch), total), total)
    return PredictionSet(name, results, source="model", threshold=options.threshold)
