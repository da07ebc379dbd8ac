"""The page: a model status line, then the Image, Video and Webcam tabs."""

from __future__ import annotations

import gradio as gr

from rfdetr_demo.config import Settings, on_spaces
from rfdetr_demo.service import ModelService
from rfdetr_demo.ui.common import begin_page, refreshed_resolution_choices
from rfdetr_demo.ui.image_tab import build_image_tab
from rfdetr_demo.ui.video_tab import build_video_tab
from rfdetr_demo.ui.webcam_tab import build_webcam_tab

TITLE = "RF-DETR Keypoint demo"
DEFAULT_RESOLUTION = 576  # the preview checkpoint's own; the status line shows the loaded model's value

INTRO = (
    "# RF-DETR Keypoint\n"
    "A real-time DETR that finds people and their 17 COCO keypoints, with a confidence and an uncertainty "
    "(covariance) for every joint. Left joints are **blue**, right joints **orange**, the centre line **green**. "
    "Uncertainty ellipses: **green** = 1σ, **red** = 2σ of each joint's predicted covariance (the halo is 2σ)."
)


def examples_cached(settings: Settings) -> bool:
    """Lazy example caching: on by default on Spaces (shared GPU time), off locally (results would go stale)."""
    if settings.cache_examples == "auto":
        return on_spaces()
    return settings.cache_examples == "lazy"


def build_demo(settings: Settings, service: ModelService) -> gr.Blocks:
    """Build the Blocks app (does not launch it). The model loads in the background."""
    service.start()
    default_res = settings.resolution or DEFAULT_RESOLUTION
    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown(service.status().markdown(), elem_id="model-status")
        timer = gr.Timer(1.0)

        def poll() -> tuple[str, gr.Timer]:
            st = service.status()
            return st.markdown(), gr.Timer(active=st.state in {"idle", "loading"})

        timer.tick(poll, None, [status, timer], api_visibility="private", queue=False)
        demo.load(poll, None, [status, timer], api_visibility="private", queue=False)
        dropdowns = begin_page()
        with gr.Tab("Image", id="image"):
            build_image_tab(service, default_res, settings.max_image_side, examples_cached(settings))
        with gr.Tab("Video", id="video"):
            build_video_tab(service, settings, default_res)
        with gr.Tab("Webcam", id="webcam"):
            build_webcam_tab(service, settings)
        # Resolution presets carry the latency measured on this machine so far ("384² · fast · ~0.45 s").
        page_dropdowns = list(dropdowns)
        demo.load(
            lambda: refreshed_resolution_choices(default_res, service.latency, len(page_dropdowns)),
            None,
            page_dropdowns,
            api_visibility="private",
            queue=False,
        )
    return demo
