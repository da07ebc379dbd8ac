"""Image tab and ``/predict_image``: upload, paste or example → views side by side, tables, downloads.

``build_image_tab`` is the layout, ``_wire`` the events; handlers are functions of a :class:`UiContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD, MODEL_WAIT_S, example_files
from rfdetr_demo.disk import BUDGET
from rfdetr_demo.image.task import MODEL_THRESHOLD_FLOOR, ImageRun, KeptRun, render_run, run_image
from rfdetr_demo.models import malloc_trim
from rfdetr_demo.results.render import DEFAULT_VIEWS
from rfdetr_demo.results.tables import KEYPOINT_COLUMNS, PERSON_COLUMNS
from rfdetr_demo.ui.compare_panel import build_compare_panel
from rfdetr_demo.ui.components import GuardedImage
from rfdetr_demo.ui.controls import Controls, make_controls, parse_resolution, refreshed_resolution_choices
from rfdetr_demo.ui.handlers import CLEAR, UiContext, bind, in_place, keep_fresh, keyed, user_errors
from rfdetr_demo.ui.models_panel import download_stem, model_dropdown
from rfdetr_demo.ui.share_panel import build_share_panel, wire_share_links

# Redraws of full-size photos cost a few hundred MB each while they run; a flood of slider moves from many visitors
# must not multiply that without bound.
REDRAW_CONCURRENCY = 2


def _run(ctx: UiContext, image: str, threshold: float, resolution: Any, model: str | None = None) -> ImageRun:
    """Decode and run the model once; the upload (and nothing else of this request) is held on disk meanwhile."""
    if not image:
        raise gr.Error("Please upload, paste or pick an image first.", title="No image")
    res = parse_resolution(resolution, ctx.default_resolution)
    with BUDGET.in_use(image):
        service = ctx.model(model)
        return run_image(service, image, float(threshold), res, ctx.settings.max_image_side, timeout=MODEL_WAIT_S)


def _rendered(
    run: ImageRun,
    kept: KeptRun | None,
    keypoint_threshold: float,
    views: list[str] | None,
    threshold: float | None = None,
    stem: str | None = None,
) -> dict[str, Any]:
    """Outputs by name for a run (and what the page keeps of it); with no view ticked, the default views are drawn."""
    with BUDGET.in_use():  # the request folder with the downloads is held while it is written
        out = render_run(run, float(keypoint_threshold), views or list(DEFAULT_VIEWS), threshold=threshold, stem=stem)
    malloc_trim.after_request(run.rgb.shape[0] * run.rgb.shape[1])  # the decode and drawing buffers go back to the OS
    if not views:
        out.summary += "\n\nℹ️ No view selected: showing the default views."
    shown = {
        "gallery": out.views, "persons": out.persons, "keypoints": out.keypoints, "result_json": out.result,
        "files": [str(p) for p in out.files], "summary": out.summary,
    }  # fmt: skip
    return shown if kept is None else {**shown, "state": kept}


def _redraw(
    ctx: UiContext, kept: KeptRun, keypoint_threshold: float, views: list[str] | None, threshold: float
) -> dict[str, Any]:
    """Outputs for a kept run without the model: the held upload is decoded again (and marked as just used)."""
    with BUDGET.in_use(kept.source_path):
        BUDGET.refresh(kept.source_path)
        run = kept.restore(ctx.settings.max_image_side)
    return _rendered(run, kept, keypoint_threshold, views, threshold, download_stem(ctx, run))


def empty_outputs() -> dict[str, Any]:
    """Cleared outputs (no image, or a failed request: old results never stay next to another input)."""
    return {"gallery": [], "persons": None, "keypoints": None, "result_json": None, "files": None, "summary": "",
            "state": None}  # fmt: skip


def example_images(ctx: UiContext) -> list[str]:
    return example_files(ctx.examples, ".jpg")


@user_errors
def predict_image(
    ctx: UiContext,
    image: str | None,
    threshold: float = DEFAULT_THRESHOLD,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    resolution: int | None = None,
    views: list[str] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Detect people and keypoints in one image.

    Args:
        image: the image (file upload or URL handled by the client).
        threshold: minimum detection score, 0-1.
        keypoint_threshold: joints below this confidence are hidden, 0-1.
        resolution: inference side length, a multiple of 24.
        views: annotator views to render side by side.
        model: which of the server's models (see /models; empty: the first).
    Returns:
        The rendered views, the persons table, the keypoints table, the JSON result, the download files and
        a summary. An API call cannot redraw, so nothing of it is kept in memory afterwards.
    """
    run = _run(ctx, image, threshold, resolution, model)
    return _rendered(run, None, keypoint_threshold, views, stem=download_stem(ctx, run))


@user_errors
def detect(
    ctx: UiContext,
    image: str | None,
    threshold: float = DEFAULT_THRESHOLD,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    resolution: int | None = None,
    views: list[str] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The page's run: :func:`predict_image`, and the session keeps the prediction for redraws."""
    run = _run(ctx, image, threshold, resolution, model)
    return _rendered(run, KeptRun.of(run), keypoint_threshold, views, stem=download_stem(ctx, run))


REUSED_NOTE = "ℹ️ Same image, model and settings as the result shown: reused, the model did not run again."


def _reusable(
    ctx: UiContext, kept: KeptRun | None, image: str, threshold: float, resolution: Any, model: str | None
) -> bool:
    """Whether the kept run already answers this request (same upload, threshold covered, resolution and model)."""
    if not isinstance(kept, KeptRun):
        return False
    res = parse_resolution(resolution, ctx.default_resolution)
    info = ctx.model(model).status().info
    return (
        kept.same_request(image, threshold, res) and info is not None and info.name == kept.prediction.model_info.name
    )


@user_errors
def detect_or_reuse(
    ctx: UiContext,
    image: str | None,
    threshold: float,
    keypoint_threshold: float,
    resolution: int,
    views: list[str],
    model: str | None,
    kept: KeptRun | None,
) -> dict[str, Any]:
    """The "Detect keypoints" button: the image shown already ran on upload or example click, so a press with the
    same settings redraws that run (and says so) instead of running the model a second time."""
    if image and _reusable(ctx, kept, image, threshold, resolution, model):
        out = _redraw(ctx, kept, keypoint_threshold, views, threshold)
        return {**out, "summary": f"{out['summary']}\n\n{REUSED_NOTE}"}
    return detect(ctx, image, threshold, keypoint_threshold, resolution, views, model)


@user_errors
def predict_or_clear(
    ctx: UiContext,
    image: str | None,
    threshold: float,
    keypoint_threshold: float,
    resolution: int,
    views: list[str],
    model: str | None,
    kept: KeptRun | None,
) -> dict[str, Any]:
    """A new image (upload, paste, example) runs at once; clearing clears the results.

    Gradio fires ``change`` twice when an uploaded image replaces another: the second, same request is redrawn
    from the kept run instead of running the model again.
    """
    if not image:
        return empty_outputs()
    res = parse_resolution(resolution, ctx.default_resolution)
    if isinstance(kept, KeptRun) and kept.same_request(image, threshold, res):
        return _redraw(ctx, kept, keypoint_threshold, views, threshold)
    return detect(ctx, image, threshold, keypoint_threshold, resolution, views, model)


@user_errors
def switch_model(
    ctx: UiContext, image: str | None, threshold: float, keypoint_threshold: float, resolution: int, views: list[str],
    model: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Another model picked: run the shown image through it (nothing shown: nothing to do)."""
    return detect(ctx, image, threshold, keypoint_threshold, resolution, views, model) if image else empty_outputs()


@user_errors
def rerender(
    ctx: UiContext,
    kept: KeptRun | None,
    keypoint_threshold: float,
    views: list[str],
    image: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    resolution: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Display-only change (thresholds, views): redraw the kept run without the model.

    The model runs only when nothing is kept but an image is shown (a cached example restores outputs, not the
    run) or when the detection threshold drops below what the kept run holds.
    """
    if isinstance(kept, KeptRun) and kept.covers(threshold):
        return _redraw(ctx, kept, keypoint_threshold, views, threshold)
    if not image:
        return empty_outputs()
    return detect(ctx, image, threshold, keypoint_threshold, resolution, views, model)


def predict_example(ctx: UiContext, image: str) -> dict[str, Any]:
    """A cached example's outputs: the visible ones only (a kept run cannot be cached)."""
    return predict_image(ctx, image)


def no_kept_run() -> None:
    """A cached example restores the outputs but not the run: the session's kept run is reset."""
    return None


def relabel_resolution(ctx: UiContext) -> Any:
    """The resolution menu relabelled with the latency just measured (after each model run)."""
    return refreshed_resolution_choices(ctx.default_resolution, ctx.service.latency, 1)


def build_image_tab(ctx: UiContext) -> None:
    """Create the tab's components and events inside the current ``gr.Blocks``.

    With ``--cache-examples`` each example's result is kept after its first use (lazily, so start-up never waits
    for the model); on a shared Space that turns repeated example clicks into instant answers using no GPU time.
    """
    cache_examples = ctx.cache_examples
    out = ImageOutputs.create()
    with gr.Row(equal_height=False, elem_id="image-row"):
        with gr.Column(scale=1, min_width=320, elem_id="image-inputs"):
            # image_mode=None: Gradio hands over the uploaded file as is; our decoder converts it once (16-bit,
            # CMYK, EXIF rotation) instead of Gradio decoding and re-saving it first.
            image = GuardedImage(
                type="filepath", image_mode=None, label="Image", sources=["upload", "clipboard"], height=360,
                elem_id="input-image",
            )  # fmt: skip
            model = model_dropdown(ctx, "image-model")
            controls = make_controls(
                ctx,
                threshold_info=(
                    f"Minimum person score (redraws at once; below {MODEL_THRESHOLD_FLOOR} it re-runs the model)."
                ),
            )
            run_btn = gr.Button("Detect keypoints", variant="primary", elem_id="run-image")
            examples = example_images(ctx)
            if examples:
                # With caching, the visible outputs are cached and the kept run reset (it cannot be cached), so a
                # later display change re-runs once instead of redrawing the previous image.
                shown = gr.Examples(
                    examples=examples, inputs=[image], label="Examples (COCO val2017)", elem_id="image-examples",
                    cache_examples=cache_examples, cache_mode="lazy",
                    fn=keyed(bind(predict_example, ctx), out.api()) if cache_examples else None,
                    outputs=list(out.api().values()) if cache_examples else None,
                )  # fmt: skip
                if cache_examples and shown.cache_event is not None:
                    shown.cache_event.then(no_kept_run, None, out.state, api_visibility="private", queue=False)
        with gr.Column(scale=2, min_width=480, elem_id="image-results"):
            out.summary.render()
            out.gallery.render()
            with gr.Tab("Persons"):
                out.persons.render()
            with gr.Tab("Keypoints"):
                out.keypoints.render()
            with gr.Tab("JSON"):
                out.result_json.render()
            out.files.render()
            # A link that reopens this photo, its settings and model (docs/hosting.md: where it lives, how long).
            build_share_panel(ctx, image, controls, model)
            build_compare_panel(ctx, image, controls, model)
    _wire(ctx, image, controls, model, run_btn, out, cache_examples)
    ctx.on_load.append(
        lambda demo: wire_share_links(ctx, demo, image, controls, model, out.named(), run=detect, cleared=empty_outputs)
    )


def _wire(
    ctx: UiContext, image: GuardedImage, controls: Controls, model: gr.Dropdown, run_btn: gr.Button,
    out: ImageOutputs, cached: bool,
) -> None:  # fmt: skip
    """The tab's events: run on click/upload/example or another model, redraw on display changes, clear on failure."""
    inputs = [image, *controls, model]
    named = out.named()
    outputs = list(named.values())

    def run_then_relabel(
        event: Any, fn: Any, extra_inputs: tuple[Any, ...] = (), shown: dict[str, Any] = named, **kwargs: Any
    ) -> None:
        """Run the model on ``event``, then refresh the resolution labels with the latency just measured.

        On failure (a file that is not an image, a model error) the previous image's results are cleared, so they
        are never shown next to an input they do not belong to.
        """
        dependency = event(keyed(fn, shown), [*inputs, *extra_inputs], list(shown.values()), concurrency_id="model",
                           **kwargs)  # fmt: skip
        # Gradio may answer with an existing, old copy of identical content: mark what the page shows as fresh.
        dependency.success(keep_fresh, [out.gallery, out.files], None, api_visibility="private", queue=False)
        dependency.success(
            bind(relabel_resolution, ctx),
            None,
            controls.resolution,
            api_visibility="private",
            queue=False,
        )
        dependency.failure(keyed(empty_outputs, named), None, outputs, api_visibility="private", queue=False)

    # The API endpoint keeps nothing (a client cannot redraw), so it is its own event on a hidden button; the
    # page's button keeps the run for instant redraws.
    api_button = gr.Button("predict_image", visible=False)
    run_then_relabel(
        api_button.click,
        bind(predict_image, ctx, resolution=ctx.default_resolution, model=ctx.registry.default),
        shown=out.api(),
        api_name="predict_image",
    )

    def page(handler: Any) -> Any:  # a failure shown in the summary, not as a toast
        return bind(in_place(handler, empty_outputs, "image"), ctx)

    run_then_relabel(run_btn.click, page(detect_or_reuse), (out.state,), api_visibility="private")
    run_then_relabel(model.input, page(switch_model), api_visibility="private")
    # An old message ("Could not read notimage.jpg") goes as soon as another image arrives, not with its result
    # (registered before the run: Gradio drops the run's summary if this browser-side event comes after it).
    arrives = image.upload if cached else image.change  # a cached example's own summary must stay
    arrives(None, None, out.summary, js=CLEAR, api_visibility="private", queue=False, show_progress="hidden")
    if cached:
        # Example clicks are answered from the cache; only uploads and pastes run the model.
        run_then_relabel(image.upload, page(detect), api_visibility="private")
        image.clear(keyed(empty_outputs, named), None, outputs, api_visibility="private")
    else:
        # Upload, paste and example clicks all change the value and run at once; clearing clears the results.
        run_then_relabel(image.change, page(predict_or_clear), (out.state,), api_visibility="private")
    gr.on(
        [controls.threshold.release, controls.keypoint_threshold.release, controls.views.input],
        keyed(page(rerender), named),
        [out.state, controls.keypoint_threshold, controls.views, image, controls.threshold, controls.resolution, model],
        outputs,
        api_visibility="private",
        concurrency_id="redraw",  # never waits behind a model run; two at a time bounds their memory
        concurrency_limit=REDRAW_CONCURRENCY,
        # Ticks and slider moves made while a redraw is pending redraw once more with the latest values; Gradio's
        # default ("once") drops them, leaving views on screen that no longer match the ticked boxes.
        trigger_mode="always_last",
    )


# The Image tab's result components (views, tables, JSON, downloads, kept-run state), one place for their order.
# A page session's KeptRun (its prediction, a few KB) is dropped after this long unused or when the page closes.
RUN_TTL_S = 1800


@dataclass
class ImageOutputs:
    """The tab's result components, created unrendered so the examples (which need them) can sit above them."""

    summary: gr.Markdown
    gallery: gr.Gallery
    persons: gr.Dataframe
    keypoints: gr.Dataframe
    result_json: gr.JSON
    files: gr.File
    state: gr.State

    @classmethod
    def create(cls) -> ImageOutputs:
        gallery = gr.Gallery(
            label="Views", show_label=False, columns=2, height="max-content", format="jpeg", object_fit="contain",
            preview=False, elem_id="views-gallery", interactive=False, render=False,
        )  # fmt: skip
        persons = gr.Dataframe(
            headers=PERSON_COLUMNS, label="Persons", interactive=False, elem_id="persons-table", wrap=True,
            render=False,
        )  # fmt: skip
        keypoints = gr.Dataframe(
            headers=KEYPOINT_COLUMNS, label="Keypoints", interactive=False, elem_id="keypoints-table", render=False
        )
        files = gr.File(
            label="Downloads (CSV · JSON · COCO results)", file_count="multiple", interactive=False, render=False,
            elem_id="image-files",
        )  # fmt: skip
        return cls(
            summary=gr.Markdown(elem_id="image-summary", render=False),
            gallery=gallery,
            persons=persons,
            keypoints=keypoints,
            result_json=gr.JSON(label="Result", render=False),
            files=files,
            state=gr.State(None, time_to_live=RUN_TTL_S),
        )

    def named(self) -> dict[str, Any]:
        """The components by the names the handlers' results use (the order is Gradio's output order)."""
        names = ("gallery", "persons", "keypoints", "result_json", "files", "summary", "state")
        return {name: getattr(self, name) for name in names}

    def api(self) -> dict[str, Any]:
        """What an API client gets: everything but the kept run (a client cannot redraw)."""
        return {name: c for name, c in self.named().items() if name != "state"}
