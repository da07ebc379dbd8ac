"""Evaluate tab and ``/evaluate``: score the model, or prediction files, on the visitor's COCO keypoint annotations.

The work is :mod:`rfdetr_demo.evaluate` (no Gradio); here uploads become a request, progress a ``gr.Progress`` bar,
Cancel a per-session token, and the result tables, plots, a gallery and downloads.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.defaults import DEFAULT_THRESHOLD, MODEL_WAIT_S
from rfdetr_demo.disk import BUDGET, new_request_dir
from rfdetr_demo.evaluate.dataset import EvaluationError
from rfdetr_demo.evaluate.gallery import worst_gallery
from rfdetr_demo.evaluate.pipeline import Evaluation, EvaluationRequest, evaluate
from rfdetr_demo.evaluate.report import (
    PER_KEYPOINT_COLUMNS,
    TABLE_COLUMNS,
    per_keypoint_rows,
    summary_markdown,
    table_rows,
    write_outputs,
)
from rfdetr_demo.evaluate.runner import DEFAULT_BATCH_SIZE, EvaluationCancelled, RunOptions
from rfdetr_demo.evaluate.sources import find_sample
from rfdetr_demo.ui.cancel import CancelRegistry
from rfdetr_demo.ui.controls import parse_resolution, resolution_dropdown
from rfdetr_demo.ui.handlers import UiContext, bind, in_place, user_errors
from rfdetr_demo.ui.models_panel import model_dropdown

GALLERY_COUNT = 8
_cancels = CancelRegistry()


def _paths(files: Any) -> list[str]:
    """Gradio gives one path, a list of paths, or None."""
    if not files:
        return []
    return [str(f) for f in (files if isinstance(files, list) else [files])]


def _outputs(evaluation: Evaluation, out_dir: Path) -> tuple[Any, ...]:
    files = write_outputs(evaluation, out_dir)
    by_name = {p.name: str(p) for p in files}
    gallery = [(img, caption) for img, caption in worst_gallery(evaluation, count=GALLERY_COUNT)]
    return (
        summary_markdown(evaluation),
        table_rows(evaluation),
        per_keypoint_rows(evaluation.first),
        by_name.get("per_keypoint.png"),
        by_name.get("calibration.png"),
        gallery,
        [str(p) for p in files],
    )


@user_errors
def evaluate_predictions(
    ctx: UiContext,
    annotations: str | None,
    images: list[str] | None = None,
    predictions: list[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    resolution: int | None = None,
    model: list[str] | str | None = None,
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to receive a progress tracker
) -> tuple[Any, ...]:
    """Score the model (on uploaded images) and/or prediction files on COCO keypoint annotations.

    Args:
        annotations: a COCO keypoint annotation file (JSON).
        images: the annotated images (several files, or a zip); the loaded model runs on them.
        predictions: prediction files (COCO keypoint results, or this app's JSON export), one table row each.
        threshold: person score at which recall, precision and the gallery are reported, 0-1.
        resolution: inference side length for the model run, a multiple of 24.
        model: the model(s) to run (see /models; empty: the first); several give one row each, same labels.
    Returns:
        A summary, the metrics table (one row per set), the per-keypoint table, the per-keypoint and calibration
        plots, the worst images (ground truth grey, prediction in colour, OKS in the caption) and the downloads.
    """
    if not annotations:
        raise gr.Error("Please upload a COCO keypoint annotation file (JSON).", title="No annotations")
    image_paths, result_paths = _paths(images), _paths(predictions)
    if not image_paths and not result_paths:
        raise gr.Error("Upload the annotated images (files or a zip) or prediction files.", title="Nothing to score")
    names = [model] if isinstance(model, str) else list(model or [])
    services = [ctx.model(n) for n in dict.fromkeys(names or [None])] if image_paths else []
    for service in services:
        service.wait(MODEL_WAIT_S)
    options = RunOptions(
        threshold=float(threshold),
        resolution=parse_resolution(resolution, ctx.default_resolution),
        max_image_side=ctx.settings.max_image_side,
        # On a CPU a batch is no faster than its images one by one, and single images make the bar move per image.
        batch_size=1 if services and services[0].info.device.startswith("cpu") else DEFAULT_BATCH_SIZE,
    )
    req = EvaluationRequest(annotations, image_paths, result_paths, options, ctx.settings.max_eval_images)
    # The uploads and the report folder are never pruned while this runs.
    with BUDGET.in_use(annotations, *image_paths, *result_paths), _cancels.running(request) as cancel:
        try:
            progress(0.0, desc="Checking the files…")
            evaluation = evaluate(
                req,
                services or None,
                on_progress=functools.partial(report_images, progress),  # pickles into a ZeroGPU lease
                should_stop=cancel.is_set,
            )
        except EvaluationCancelled as exc:
            raise gr.Error(str(exc), title="Cancelled") from exc
        except EvaluationError as exc:
            raise gr.Error(str(exc), title="Cannot evaluate these files") from exc
        progress(1.0, desc="Writing the report…")
        return _outputs(evaluation, new_request_dir(prefix="eval_"))


def load_sample(ctx: UiContext) -> tuple[str, list[str], None]:
    """The bundled sample into the inputs (copied to a request folder, which Gradio may serve); no prediction files."""
    sample = find_sample(ctx.examples)
    if sample is None:
        raise gr.Error("This server has no sample set.", title="No sample")
    copy = sample.copy_to(new_request_dir(prefix="sample_"))
    return str(copy.annotations), [str(p) for p in copy.images], None


def report_images(progress: gr.Progress, done: int, total: int) -> None:
    progress((done, total), desc="Running the model", unit="images")


def cancel_evaluation(request: gr.Request) -> str:
    return "⏹️ Cancelling after the current batch…" if _cancels.cancel(request) else "Nothing to cancel."


INTRO = (
    "Score the loaded model — or any model's prediction files — on **your own COCO keypoint annotations**: "
    "OKS AP/AR from pycocotools, per-keypoint PCK, and whether the predicted **uncertainty is honest** "
    "(a calibrated covariance puts 39.3 % of true joints inside its 1σ ellipse and 86.5 % inside 2σ)."
)


def build_evaluate_tab(ctx: UiContext) -> None:
    """Create the tab's components and events inside the current ``gr.Blocks``."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            sample_btn = gr.Button(
                "Try the sample set (4 COCO photos)", elem_id="eval-sample",
                visible=find_sample(ctx.examples) is not None,
            )  # fmt: skip
            annotations = gr.File(label="COCO keypoint annotations (JSON)", file_types=[".json"],
                                  elem_id="eval-annotations")  # fmt: skip
            images = gr.File(
                label=f"Images to run the model on (files or a zip; at most {ctx.settings.max_eval_images})",
                file_count="multiple", file_types=["image", ".zip"], elem_id="eval-images",
            )  # fmt: skip
            predictions = gr.File(
                label="…and/or prediction files (COCO results or this app's JSON export; one row each)",
                file_count="multiple", file_types=[".json"], elem_id="eval-predictions",
            )  # fmt: skip
            threshold = gr.Slider(
                0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, label="Detection threshold",
                info="Where recall, precision and the gallery are reported; AP uses every detection (COCO).",
            )  # fmt: skip
            resolution = resolution_dropdown(ctx, "For the model run (multiple of 24).")
            models = model_dropdown(ctx, "eval-models", label="Models (each one row, same labels)", multiselect=True)
            with gr.Row():
                run_btn = gr.Button("Evaluate", variant="primary", elem_id="run-evaluate")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-evaluate")
        with gr.Column(scale=2, min_width=480):
            summary = gr.Markdown(elem_id="eval-summary")
            metrics = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Metrics (one row per prediction set)",
                                   interactive=False, elem_id="eval-metrics", wrap=True)  # fmt: skip
            with gr.Tab("Per keypoint"):
                keypoints = gr.Dataframe(headers=list(PER_KEYPOINT_COLUMNS), label="Per keypoint (first set)",
                                         interactive=False, elem_id="eval-keypoints")  # fmt: skip
                keypoint_plot = gr.Image(label="PCK per keypoint", type="filepath", interactive=False,
                                         elem_id="eval-keypoint-plot")  # fmt: skip
            with gr.Tab("Calibration"):
                calibration_plot = gr.Image(label="Uncertainty calibration", type="filepath", interactive=False,
                                            elem_id="eval-calibration-plot")  # fmt: skip
            gallery = gr.Gallery(label="Worst images (ground truth grey, prediction in colour)", columns=2,
                                 height="max-content", object_fit="contain", preview=False, format="jpeg",
                                 elem_id="eval-gallery", interactive=False)  # fmt: skip
            files = gr.File(label="Downloads (metrics.json · per-image CSV · COCO results · plots)",
                            file_count="multiple", interactive=False, elem_id="eval-files")  # fmt: skip
    run: dict[str, Any] = {
        "fn": bind(evaluate_predictions, ctx, resolution=ctx.default_resolution, model=[ctx.registry.default]),
        "inputs": [annotations, images, predictions, threshold, resolution, models],
        "outputs": [summary, metrics, keypoints, keypoint_plot, calibration_plot, gallery, files],
        # Its own line, one run at a time: the service's lock lets Image/Video requests run between two batches
        # instead of waiting for a whole evaluation.
        "concurrency_id": "evaluate",
        "concurrency_limit": 1,
    }
    # The API endpoint raises for its clients (a hidden button's event); the page's buttons show failures in place.
    gr.Button("evaluate", visible=False).click(**run, api_name="evaluate")
    cleared = lambda: ("",) + (None,) * 6  # noqa: E731 - the outputs, emptied
    # One progress bar, at the top of the result (Gradio would draw one over each of the seven outputs).
    page = {
        **run,
        "fn": bind(in_place(evaluate_predictions, cleared, "annotations", 0, None), ctx),
        "show_progress_on": [summary],
    }
    run_btn.click(**page, api_visibility="private")
    # The sample fills the inputs (the visitor sees what was scored), then runs exactly as the Evaluate button does.
    sample_inputs = [annotations, images, predictions]
    sample_btn.click(bind(load_sample, ctx), None, sample_inputs, api_visibility="private", queue=False).success(
        **page, api_visibility="private"
    )
    cancel_btn.click(cancel_evaluation, None, [summary], api_visibility="private", queue=False)
    ctx.on_unload.append(_cancels.cancel_on_unload)
