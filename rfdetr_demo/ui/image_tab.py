"""Image tab: upload/paste/example → views side by side, tables, downloads; API endpoint ``/predict_image``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.image_task import MODEL_THRESHOLD_FLOOR, ImageOutput, ImageRun, render_run, run_image
from rfdetr_demo.render import DEFAULT_VIEWS
from rfdetr_demo.service import ModelService
from rfdetr_demo.tables import KEYPOINT_COLUMNS, PERSON_COLUMNS
from rfdetr_demo.ui.common import (
    DEFAULT_KEYPOINT_THRESHOLD,
    DEFAULT_THRESHOLD,
    MODEL_WAIT_S,
    make_controls,
    parse_resolution,
    refreshed_resolution_choices,
    user_errors,
)
from rfdetr_demo.ui.guarded_image import GuardedImage

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def _outputs(out: ImageOutput, run: ImageRun | None) -> tuple[Any, ...]:
    return (
        out.views,
        out.persons,
        out.keypoints,
        out.result,
        [str(p) for p in out.files],
        out.summary,
        run,
    )


def _rendered(
    run: ImageRun, keypoint_threshold: float, views: list[str] | None, threshold: float | None = None
) -> tuple[Any, ...]:
    """Outputs for a kept run; with no view ticked, the default views are drawn and the summary says so."""
    out = render_run(run, float(keypoint_threshold), views or list(DEFAULT_VIEWS), threshold=threshold)
    if not views:
        out.summary += "\n\nℹ️ No view selected: showing the default views."
    return _outputs(out, run)


def _empty() -> tuple[Any, ...]:
    return ([], None, None, None, None, "", None)


def example_images() -> list[str]:
    return sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))


def build_image_tab(
    service: ModelService, default_resolution: int, max_image_side: int, cache_examples: bool = False
) -> None:
    """Create the tab's components and events inside the current ``gr.Blocks``.

    ``cache_examples``: keep each example's result after its first use (lazily, so start-up never waits for the
    model); on a shared Space that turns repeated example clicks into instant answers that use no GPU time.
    """

    @user_errors
    def predict_image(
        image: str | None,
        threshold: float = DEFAULT_THRESHOLD,
        keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
        resolution: int = default_resolution,
        views: list[str] | None = None,
    ) -> tuple[Any, ...]:
        """Detect people and keypoints in one image.

        Args:
            image: the image (file upload or URL handled by the client).
            threshold: minimum detection score, 0-1.
            keypoint_threshold: joints below this confidence are hidden, 0-1.
            resolution: inference side length, a multiple of 24.
            views: annotator views to render side by side.
        Returns:
            The rendered views, the persons table, the keypoints table, the JSON result, the download files,
            a summary, and (UI only) the kept run.
        """
        if not image:
            raise gr.Error("Please upload, paste or pick an image first.", title="No image")
        service.wait(MODEL_WAIT_S)
        run = run_image(service, image, float(threshold), parse_resolution(resolution), max_image_side)
        return _rendered(run, keypoint_threshold, views)

    @user_errors
    def predict_or_clear(
        image: str | None,
        threshold: float,
        keypoint_threshold: float,
        resolution: int,
        views: list[str],
        run: ImageRun | None,
    ) -> tuple[Any, ...]:
        """A new image (upload, paste, example) runs at once; clearing clears the results.

        Gradio fires ``change`` twice when an uploaded image replaces another: the second, same request is
        answered from the kept run instead of running the model again.
        """
        if not image:
            return _empty()
        if run is not None and run.same_request(image, threshold, parse_resolution(resolution)):
            return _rendered(run, keypoint_threshold, views, threshold)
        return predict_image(image, threshold, keypoint_threshold, resolution, views)

    @user_errors
    def rerender(
        run: ImageRun | None,
        keypoint_threshold: float,
        views: list[str],
        image: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        resolution: int = default_resolution,
    ) -> tuple[Any, ...]:
        """Display-only change (thresholds, views): redraw from the kept result without running the model.

        The model runs only when nothing is kept but an image is shown (a cached example restores outputs, not
        the run), or when the detection threshold drops below what the kept run holds.
        """
        if run is None or not run.covers(threshold):
            return predict_image(image, threshold, keypoint_threshold, resolution, views) if image else _empty()
        return _rendered(run, keypoint_threshold, views, threshold)

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320) as input_column:
            image = GuardedImage(
                type="filepath", label="Image", sources=["upload", "clipboard"], height=360, elem_id="input-image"
            )
            controls = make_controls(
                default_resolution,
                threshold_info=(
                    f"Minimum person score (redraws at once; below {MODEL_THRESHOLD_FLOOR} it re-runs the model)."
                ),
            )
            run_btn = gr.Button("Detect keypoints", variant="primary", elem_id="run-image")
        with gr.Column(scale=2, min_width=480):
            summary = gr.Markdown(elem_id="image-summary")
            gallery = gr.Gallery(
                label="Views", show_label=False, columns=2, height="max-content", format="jpeg", object_fit="contain",
                preview=False, elem_id="views-gallery", interactive=False,
            )  # fmt: skip
            with gr.Tab("Persons"):
                persons = gr.Dataframe(
                    headers=PERSON_COLUMNS, label="Persons", interactive=False, elem_id="persons-table", wrap=True
                )
            with gr.Tab("Keypoints"):
                keypoints = gr.Dataframe(
                    headers=KEYPOINT_COLUMNS, label="Keypoints", interactive=False, elem_id="keypoints-table"
                )
            with gr.Tab("JSON"):
                result_json = gr.JSON(label="Result")
            files = gr.File(label="Downloads (CSV · JSON · COCO results)", file_count="multiple", interactive=False)
    # The kept run holds the decoded image (up to --max-image-side); expire it so idle sessions free memory.
    state = gr.State(None, time_to_live=1800)

    outputs = [gallery, persons, keypoints, result_json, files, summary, state]
    examples = example_images()
    if examples:
        with input_column:  # created here, below the button, because cached examples need the output components
            # The kept run (gr.State) cannot be cached: with caching, cache the visible outputs and reset the state,
            # so a later display change re-runs once instead of redrawing the previous image.
            caching: dict[str, Any] = (
                {"fn": lambda path: predict_image(path)[:-1], "outputs": outputs[:-1], "cache_mode": "lazy"}
                if cache_examples
                else {}
            )
            shown = gr.Examples(
                examples=examples, inputs=[image], label="Examples (COCO val2017)", elem_id="image-examples",
                cache_examples=cache_examples, **caching,
            )  # fmt: skip
            if cache_examples and shown.cache_event is not None:
                shown.cache_event.then(lambda: None, None, state, api_visibility="private", queue=False)
    inputs = [image, controls.threshold, controls.keypoint_threshold, controls.resolution, controls.views]

    def run_then_relabel(event: Any, fn: Any, extra_inputs: tuple[Any, ...] = (), **kwargs: Any) -> None:
        """Run the model on ``event``, then refresh the resolution labels with the latency just measured.

        On failure (a file that is not an image, a model error) the previous image's results are cleared, so they
        are never shown next to an input they do not belong to.
        """
        dependency = event(fn, [*inputs, *extra_inputs], outputs, concurrency_id="model", **kwargs)
        dependency.success(
            lambda: refreshed_resolution_choices(default_resolution, service.latency, 1),
            None,
            controls.resolution,
            api_visibility="private",
            queue=False,
        )
        dependency.failure(_empty, None, outputs, api_visibility="private", queue=False)

    run_then_relabel(run_btn.click, predict_image, api_name="predict_image")
    if cache_examples:
        # Example clicks are answered from the cache; only uploads and pastes run the model.
        run_then_relabel(image.upload, predict_image, api_visibility="private")
        image.clear(_empty, None, outputs, api_visibility="private")
    else:
        # Upload, paste and example clicks all change the value and run at once; clearing clears the results.
        run_then_relabel(image.change, predict_or_clear, (state,), api_visibility="private")
    gr.on(
        [controls.threshold.release, controls.keypoint_threshold.release, controls.views.input],
        rerender,
        [state, controls.keypoint_threshold, controls.views, image, controls.threshold, controls.resolution],
        outputs,
        api_visibility="private",
        concurrency_limit=None,
    )
