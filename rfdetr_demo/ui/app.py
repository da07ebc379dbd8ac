"""The page: a model status line, then the Image, Video, Webcam and Evaluate tabs."""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

import gradio as gr

from rfdetr_demo.config import Settings
from rfdetr_demo.disk import BUDGET, DEFAULT_MAX_AGE_S
from rfdetr_demo.models.registry import ModelRegistry
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.ui.components import QUIET_UPLOAD_STREAM_WARNING
from rfdetr_demo.ui.controls import number_box_script, page_scripts, refreshed_resolution_choices
from rfdetr_demo.ui.evaluate_tab import build_evaluate_tab
from rfdetr_demo.ui.handlers import UiContext, bind
from rfdetr_demo.ui.image_tab import build_image_tab
from rfdetr_demo.ui.models_panel import build_models_panel, status_markdown
from rfdetr_demo.ui.motion_panel import QUIET_VEGA_SCHEMA_WARNING
from rfdetr_demo.ui.video_tab import build_video_tab
from rfdetr_demo.ui.webcam_tab import build_webcam_tab

TITLE = "RF-DETR Keypoint demo"

INTRO = (
    "# RF-DETR Keypoint\n"
    "A real-time DETR that finds people and their 17 COCO keypoints, with a confidence and an uncertainty "
    "(covariance) for every joint. Left joints are **blue**, right joints **orange**, the centre line **green**. "
    "Uncertainty ellipses: **green** = 1σ, **red** = 2σ of each joint's predicted covariance (the halo is 2σ)."
)


# The page's tabs in order: (label, id, builder). A new tab is one line here and one ``build_*(ctx)`` function.
TABS: tuple[tuple[str, str, Callable[[UiContext], None]], ...] = (
    ("Image", "image", build_image_tab),
    ("Video", "video", build_video_tab),
    ("Webcam", "webcam", build_webcam_tab),
    ("Evaluate", "evaluate", build_evaluate_tab),
)


def poll_status(ctx: UiContext) -> tuple[str, gr.Timer]:
    """The status line, polled every second until the model is ready or failed."""
    st = ctx.service.status()
    return status_markdown(st), gr.Timer(active=st.state in {"idle", "loading"})


def refresh_resolutions(ctx: UiContext) -> Any:
    """Resolution presets carry the latency measured on this machine so far ("384² · fast · ~0.45 s")."""
    return refreshed_resolution_choices(ctx.default_resolution, ctx.service.latency, len(ctx.resolution_dropdowns))


def watch_temp_files(demo: gr.Blocks) -> None:
    """The size pruner spares Gradio's ``keep_in_cache`` files (examples) and drops what it deleted from the sets
    Gradio keeps of its files (they would grow with every request otherwise)."""
    ref = weakref.ref(demo)

    def kept() -> list[str] | None:
        blocks = ref()
        if blocks is None:
            return None
        return [f for block in list(blocks.blocks.values()) for f in getattr(block, "keep_in_cache", ())]

    def forget_deleted() -> bool:
        blocks = ref()
        if blocks is None:
            return False
        for files in blocks.temp_file_sets:
            with contextlib.suppress(RuntimeError):  # a request added a file meanwhile: next prune
                files.difference_update([f for f in list(files) if not os.path.exists(f)])
        return True

    BUDGET.protect(kept, forget_deleted)


def build_demo(settings: Settings, service: ModelService, registry: ModelRegistry | None = None) -> gr.Blocks:
    """Build the Blocks app (does not launch it). The default model loads in the background."""
    service.start()
    ctx = UiContext(service, settings, registry=registry)
    # Gradio ages its own files (sparing the examples); ours are sized by disk_budget (watch_temp_files).
    with gr.Blocks(title=TITLE, delete_cache=(int(DEFAULT_MAX_AGE_S) // 2, int(DEFAULT_MAX_AGE_S))) as demo:
        gr.Markdown(INTRO, elem_id="page-intro")
        status = gr.Markdown(status_markdown(service.status()), elem_id="model-status")
        build_models_panel(ctx)
        timer = gr.Timer(1.0)
        # "wrap": on a phone every tab stays in sight (a second row) instead of behind Gradio's "⋯" menu.
        with gr.Tabs(overflow_behavior="wrap", elem_id="main-tabs"):
            for label, tab_id, build_tab in TABS:
                with gr.Tab(label, id=tab_id):
                    build_tab(ctx)
        page_scripts(number_box_script(), QUIET_VEGA_SCHEMA_WARNING, QUIET_UPLOAD_STREAM_WARNING)
        poll = bind(poll_status, ctx)
        timer.tick(poll, None, [status, timer], api_visibility="private", queue=False)
        demo.load(poll, None, [status, timer], api_visibility="private", queue=False)
        demo.load(bind(refresh_resolutions, ctx), None, ctx.resolution_dropdowns, api_visibility="private", queue=False)
        for on_unload in ctx.on_unload:
            demo.unload(on_unload)
        for on_load in ctx.on_load:
            on_load(demo)
    watch_temp_files(demo)
    return demo
