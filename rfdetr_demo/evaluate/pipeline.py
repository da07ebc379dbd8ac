"""One evaluation from start to end: annotations, then a model run and/or prediction files, then scores.

The CLI and the Evaluate tab both call :func:`evaluate`; they differ only in how they show progress and results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_demo.evaluate.dataset import EvalDataset, EvaluationError, ImageEntry, load_annotations
from rfdetr_demo.evaluate.predictions import PredictionSet, load_prediction_file, unique_names
from rfdetr_demo.evaluate.runner import Progress, RunOptions, predict_dataset
from rfdetr_demo.evaluate.scoring import SetScore, score_set
from rfdetr_demo.evaluate.sources import DEFAULT_MAX_EVAL_IMAGES, ImageSource, collect_sources, match_images
from rfdetr_demo.results.schema import KeypointSchema


@dataclass
class EvaluationRequest:
    annotations: str | Path
    images: Sequence[str | Path] = ()  # folders, image files, zip archives
    results: Sequence[str | Path] = ()  # prediction files, one row each
    options: RunOptions = field(default_factory=RunOptions)
    max_images: int = DEFAULT_MAX_EVAL_IMAGES
    schema: KeypointSchema | None = None  # names/sigmas for file-only runs; a model run uses the model's schema


@dataclass
class Evaluation:
    dataset: EvalDataset
    scores: list[SetScore]
    images: dict[int, tuple[ImageEntry, ImageSource]] = field(default_factory=dict)
    model_info: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def first(self) -> SetScore:
        return self.scores[0]


def _model_name(info: Any) -> str:
    name = getattr(info, "name", None) or "model"
    return f"{name} (random weights)" if getattr(info, "random_weights", False) else str(name)


def evaluate(
    request: EvaluationRequest,
    service: Any | None = None,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Evaluation:
    """Validate everything first (cheap), then run the model(s) (slow), then score every set.

    ``service`` may be a list: each model runs on the same images, one table row each, in the order given.
    """
    if not request.images and not request.results:
        raise EvaluationError("give the images to run the model on, or one or more prediction files (or both)")
    services = list(service) if isinstance(service, (list, tuple)) else [service] if service is not None else []
    schema = services[0].schema if (request.images and services) else request.schema
    dataset = load_annotations(request.annotations, schema)
    pairs: list[tuple[ImageEntry, ImageSource]] = []
    if request.images:
        if not services:
            raise EvaluationError("no model is loaded to run on the images")
        pairs = match_images(dataset, collect_sources(request.images), request.max_images)
    names = unique_names([Path(str(p)).stem for p in request.results])
    sets: list[PredictionSet] = [
        load_prediction_file(p, dataset, n) for p, n in zip(request.results, names, strict=True)
    ]
    model_info = None
    for index, svc in enumerate(services if pairs else []):
        info = svc.info
        if info.num_keypoints != dataset.num_keypoints:
            raise EvaluationError(
                f"model {info.name} predicts {info.num_keypoints} keypoints but the annotations have "
                f"{dataset.num_keypoints}: evaluate it on labels of its own schema"
            )
        model_info = model_info or (info.as_dict() if hasattr(info, "as_dict") else dict(info))
        run = predict_dataset(svc, dataset, pairs, request.options, on_progress, should_stop, _model_name(info))
        sets.insert(index, run)
    threshold = request.options.threshold
    scores = [score_set(dataset, s, threshold) for s in sets]
    settings = {
        "threshold": threshold,
        "resolution": request.options.resolution,
        "batch_size": request.options.batch_size,
    }
    if pairs and request.options.resolution is None:
        settings["resolution"] = getattr(services[0].info, "default_resolution", None)
    return Evaluation(dataset, scores, {e.id: (e, s) for e, s in pairs}, model_info, settings)
