"""The Image tab's logic, free of Gradio: load → predict once → render views, tables and exports.

Kept separate from the UI so the API, the CLI batch mode and tests share one code path, and so display changes
(views, keypoint threshold) redraw from a :class:`KeptRun` without the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.disk import new_request_dir
from rfdetr_demo.errors import UserError
from rfdetr_demo.image.decode import DEFAULT_MAX_SIDE, LoadedImage, load_image
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.results.exports import prediction_coco_results, result_dict, write_exports
from rfdetr_demo.results.prediction import Prediction
from rfdetr_demo.results.render import normalize_views, render
from rfdetr_demo.results.tables import keypoints_table, persons_table

# The model runs at this detection threshold (or the user's, if lower) and the chosen threshold is applied when
# drawing, so moving the detection slider anywhere above it redraws at once instead of running the model again.
MODEL_THRESHOLD_FLOOR = 0.1


@dataclass
class ImageRun:
    """What a session keeps between the model run and later display-only changes.

    ``prediction`` holds every person above the run's (floor) threshold; ``threshold`` is the one shown.
    """

    rgb: np.ndarray
    prediction: Prediction
    source_name: str | None
    notes: list[str] = field(default_factory=list)
    source_path: str | None = None  # the uploaded file the run came from (to recognise the same input again)
    threshold: float | None = None  # detection threshold to show; None = the prediction's own

    def shown(self, threshold: float | None = None) -> Prediction:
        """The prediction at the detection threshold to show (default: the run's own)."""
        chosen = self.threshold if threshold is None else threshold
        return self.prediction if chosen is None else self.prediction.above(chosen)


@dataclass(frozen=True)
class KeptRun:
    """What a page session keeps for redraws (in ``gr.State``): the prediction and the upload's path, no pixels.

    A redraw decodes the held upload again instead of keeping the decoded photo (36 MB for 12 MP) per session, so
    an idle session costs its prediction only and a redraw never needs the model.
    """

    prediction: Prediction
    source_path: str
    source_name: str | None
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, run: ImageRun) -> KeptRun | None:
        """The part of ``run`` worth keeping; None when it did not come from a file (nothing to decode again)."""
        if run.source_path is None:
            return None
        return cls(run.prediction, run.source_path, run.source_name, tuple(run.notes))

    def covers(self, threshold: float) -> bool:
        """Whether a redraw can show ``threshold`` (the model ran at the floor, or lower)."""
        return float(threshold) >= self.prediction.threshold

    def same_request(self, source: object, threshold: float, resolution: int) -> bool:
        """Whether running ``source`` with these settings would only repeat this run (the model is deterministic)."""
        return (
            str(source) == self.source_path and self.covers(threshold) and int(resolution) == self.prediction.resolution
        )

    def restore(self, max_side: int = DEFAULT_MAX_SIDE) -> ImageRun:
        """The run again, its image decoded from the held upload (the same decode the model saw)."""
        if not Path(self.source_path).is_file():
            raise UserError("This image is no longer on the server (temporary files expire): please upload it again.")
        loaded = load_image(self.source_path, max_side=max_side)
        return ImageRun(loaded.rgb, self.prediction, self.source_name, list(self.notes), self.source_path)


@dataclass
class ImageOutput:
    views: list[tuple[np.ndarray, str]]  # (RGB image, caption)
    persons: pd.DataFrame
    keypoints: pd.DataFrame
    result: dict[str, Any]
    files: list[Path]
    summary: str
    render_ms: float


def run_image(
    service: ModelService,
    source: str | Path | bytes | LoadedImage,
    threshold: float = DEFAULT_THRESHOLD,
    resolution: int | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
    source_name: str | None = None,
    timeout: float | None = None,
) -> ImageRun:
    """Decode the image (unless it already is) and run the model once; waits at most ``timeout`` s for the model.

    One decode and one wait on the service per request: the prediction carries the schema and model info.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise UserError(f"threshold must be within [0, 1], got {threshold}")
    loaded = source if isinstance(source, LoadedImage) else load_image(source, max_side=max_side)
    model_threshold = min(float(threshold), MODEL_THRESHOLD_FLOOR)
    prediction = service.predict_batch([loaded.rgb], model_threshold, resolution, timeout=timeout)[0]
    path = str(source) if isinstance(source, (str, Path)) else None
    name = source_name or (Path(path).name if path else None)
    return ImageRun(loaded.rgb, prediction, name, loaded.notes, path, float(threshold))


def summarize(run: ImageRun, keypoint_threshold: float, render_ms: float, prediction: Prediction | None = None) -> str:
    p = prediction if prediction is not None else run.shown()  # an empty prediction is falsy (len 0)
    info = p.model_info
    found = f"{len(p)} instance" if len(p) == 1 else f"{len(p)} instances"
    lines = [
        f"**{found}** · inference **{p.inference_ms:.0f} ms** at {p.resolution}² · "
        f"rendering {render_ms:.0f} ms · {info.device} / {info.engine} / {info.precision} · "
        f"image {p.image_size[0]}×{p.image_size[1]} · detection ≥ {p.threshold:.2f}, keypoints ≥ "
        f"{keypoint_threshold:.2f}"
    ]
    if info.random_weights:
        lines.append("⚠️ Random weights: these detections are noise.")
    if info.preparing:
        lines.append(
            f"ℹ️ OpenVINO is preparing {p.resolution}² in the background (about a minute on a small CPU); "
            "this run used torch, later runs at this resolution will be faster."
        )
    lines += [f"ℹ️ {n}" for n in run.notes]
    return "\n\n".join(lines)


def render_run(
    run: ImageRun,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    views: Sequence[str] | str | None = None,
    out_dir: Path | None = None,
    threshold: float | None = None,
    stem: str | None = None,
) -> ImageOutput:
    """Views, tables and downloads for a kept run at a detection ``threshold`` it covers; never runs the model.

    ``stem`` names the downloads (default: the photo's name), e.g. with the model's name when comparing models.
    """
    if not 0.0 <= float(keypoint_threshold) <= 1.0:
        raise UserError(f"keypoint_threshold must be within [0, 1], got {keypoint_threshold}")
    chosen = normalize_views(views)
    t0 = time.perf_counter()
    prediction = run.shown(threshold)
    displayed = prediction.displayed(float(keypoint_threshold))
    rendered = render(run.rgb, displayed, prediction.schema, chosen)
    render_ms = (time.perf_counter() - t0) * 1000.0
    # Built once: the page shows these and the downloads are written from them.
    keypoints = keypoints_table(displayed, prediction.keypoint_names, decimals=2)
    result = result_dict(prediction, displayed, keypoint_threshold, run.source_name)
    coco = prediction_coco_results(prediction, displayed, run.source_name)
    files = write_exports(
        out_dir or new_request_dir("image_"), stem or run.source_name or "keypoints", keypoints, result, coco
    )
    return ImageOutput(
        views=list(zip(rendered, chosen, strict=True)),
        persons=persons_table(displayed),
        keypoints=keypoints.round({"x": 1, "y": 1}),
        result=result,
        files=files,
        summary=summarize(run, keypoint_threshold, render_ms, prediction),
        render_ms=render_ms,
    )
