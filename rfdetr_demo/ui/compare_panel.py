"""The Image tab's "Compare with…": the same photo through two models, views side by side, a diff line.

Each model is drawn and tabulated with its own keypoint schema (a 5-keypoint hand model next to the 17-keypoint
body model works); the views are interleaved A, B, A, B… in a two-column gallery, so the left column is model A
and the right one model B, each captioned with its model. Downloads carry the model's name. The endpoint
``/compare_image`` is the same for API clients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD, MODEL_WAIT_S
from rfdetr_demo.disk import BUDGET
from rfdetr_demo.image.compare import diff
from rfdetr_demo.image.decode import load_image
from rfdetr_demo.image.task import ImageOutput, ImageRun, render_run, run_image
from rfdetr_demo.models import malloc_trim
from rfdetr_demo.results.render import DEFAULT_VIEWS
from rfdetr_demo.results.tables import PERSON_COLUMNS
from rfdetr_demo.ui.controls import Controls, parse_resolution
from rfdetr_demo.ui.handlers import UiContext, bind, user_errors
from rfdetr_demo.ui.models_panel import download_stem


def _render(ctx: UiContext, run: ImageRun, keypoint_threshold: float, views: list[str]) -> ImageOutput:
    return render_run(run, float(keypoint_threshold), views, stem=download_stem(ctx, run, always=True))


@user_errors
def compare_image(
    ctx: UiContext,
    image: str | None,
    threshold: float = DEFAULT_THRESHOLD,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    resolution: int | None = None,
    views: list[str] | None = None,
    model: str | None = None,
    other_model: str | None = None,
) -> tuple[Any, ...]:
    """Run one image through two models and compare them.

    Args:
        image: the image.
        threshold: minimum detection score, 0-1.
        keypoint_threshold: joints below this confidence are hidden, 0-1.
        resolution: inference side length, a multiple of 24.
        views: annotator views to render for each model.
        model: model A (see /models; empty: the first).
        other_model: model B (empty: the second, or the first when there is only one).
    Returns:
        The views of A and B interleaved (captioned with the model), A's persons table, B's persons table, the
        diff line, the diff as JSON and the downloads of both (file names carry the model's name).
    """
    if not image:
        raise gr.Error("Please upload, paste or pick an image first.", title="No image")
    assert ctx.registry is not None
    names = ctx.registry.names
    name_a = ctx.registry.resolve(model)
    name_b = ctx.registry.resolve(other_model or (names[1] if len(names) > 1 else names[0]))
    res = parse_resolution(resolution, ctx.default_resolution)
    chosen = views or list(DEFAULT_VIEWS)
    with BUDGET.in_use(image):
        loaded = load_image(image, max_side=ctx.settings.max_image_side)
        source = Path(image).name
        runs = [
            run_image(ctx.model(n), loaded, float(threshold), res, source_name=source, timeout=MODEL_WAIT_S)
            for n in (name_a, name_b)
        ]
    with BUDGET.in_use():
        out_a, out_b = (_render(ctx, r, keypoint_threshold, chosen) for r in runs)
    malloc_trim.after_request(loaded.rgb.shape[0] * loaded.rgb.shape[1])
    shown = [r.shown().displayed(float(keypoint_threshold)) for r in runs]
    d = diff(name_a, shown[0], runs[0].prediction.schema, name_b, shown[1], runs[1].prediction.schema)
    gallery = []
    for (img_a, view_a), (img_b, view_b) in zip(out_a.views, out_b.views, strict=True):
        gallery += [(img_a, f"A · {name_a} · {view_a}"), (img_b, f"B · {name_b} · {view_b}")]
    files = [str(p) for p in (*out_a.files, *out_b.files)]
    return gallery, out_a.persons, out_b.persons, d.line(), d.as_dict(), files


def build_compare_panel(ctx: UiContext, image: Any, controls: Controls, model: gr.Dropdown) -> None:
    """An accordion under the Image tab's results (only when the server offers more than one model)."""
    assert ctx.registry is not None
    names = ctx.registry.names
    if len(names) < 2:
        return
    with gr.Accordion("Compare with…", open=False, elem_id="compare-panel"):
        other = gr.Dropdown(names, value=names[1], label="Compare with model", elem_id="compare-model")
        run = gr.Button("Compare the two models", elem_id="run-compare")
        line = gr.Markdown(elem_id="compare-diff")
        gallery = gr.Gallery(
            label="A | B", columns=2, height="max-content", format="jpeg", object_fit="contain", preview=False,
            elem_id="compare-gallery", interactive=False,
        )  # fmt: skip
        with gr.Row():
            persons_a = gr.Dataframe(headers=PERSON_COLUMNS, label="Persons · model A", elem_id="compare-persons-a")
            persons_b = gr.Dataframe(headers=PERSON_COLUMNS, label="Persons · model B", elem_id="compare-persons-b")
        result = gr.JSON(label="Diff", visible=False)
        files = gr.File(label="Downloads of A and B", file_count="multiple", interactive=False)
    run.click(
        bind(compare_image, ctx, resolution=ctx.default_resolution, model=names[0], other_model=names[1]),
        [image, *controls, model, other],
        [gallery, persons_a, persons_b, line, result, files],
        api_name="compare_image",
        concurrency_id="model",
    )
