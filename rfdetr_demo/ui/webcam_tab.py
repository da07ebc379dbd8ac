"""Webcam tab and ``/predict_frame``: live skeletons from the browser camera or an optional server-side stream.

Only the newest frame waits, so a slow model shows fewer frames, not a growing delay; streams have their own
concurrency group and time limit. ``gradio_client`` cannot drive ``.stream()``, hence ``/predict_frame``
(docs/webcam.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import numpy as np

from rfdetr_demo.config import Settings
from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD, MODEL_WAIT_S
from rfdetr_demo.live.browser_engine import browser_engine_enabled
from rfdetr_demo.live.frame_handler import FrameHandler, FrameOptions
from rfdetr_demo.live.source_session import DEFAULT_MAX_SECONDS, SourceRegistry, SourceSession
from rfdetr_demo.live.stream_source import StreamSourceError, parse_allow_hosts, validate_stream_url
from rfdetr_demo.models import zerogpu
from rfdetr_demo.results.exports import result_dict
from rfdetr_demo.results.render import VIEW_COMBINED, VIEW_HALO
from rfdetr_demo.temporal.stages import DEFAULT_SMOOTHER, OFF, SMOOTHING_CHOICES
from rfdetr_demo.ui.browser_panel import build_browser_panel
from rfdetr_demo.ui.components import LiveImage
from rfdetr_demo.ui.controls import Controls, make_controls
from rfdetr_demo.ui.handlers import UiContext, bind, page_error, session_id, user_errors
from rfdetr_demo.ui.models_panel import model_dropdown

LIVE_DEFAULT_VIEWS: tuple[str, ...] = (VIEW_COMBINED, VIEW_HALO)
STREAM_EVERY_S = 0.1  # at most ~10 frames/s leave the browser; fewer while the server is busy
WEBCAM_TIME_LIMIT_S = 180  # a stream frees its slot after this; pressing the camera button again restarts it
# On ZeroGPU every frame is a separate GPU allocation (queueing + quota), so ask for fewer, and stream for less long.
ZERO_GPU_STREAM_EVERY_S = 0.5
ZERO_GPU_TIME_LIMIT_S = 60
WEBCAM_CONCURRENCY = 4  # simultaneous webcam viewers (they share one model, frame by frame)
SOURCE_CONCURRENCY = 2  # simultaneous server-side stream viewers
HANDLER_TTL_S = 600
WEBCAM_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}

_sources = SourceRegistry()


def _options(
    threshold: float,
    keypoint_threshold: float,
    resolution: Any,
    views: Any,
    mirrored: bool = False,
    mirror_display: bool = False,
    smoothing: str = OFF,
) -> FrameOptions:
    return FrameOptions(
        threshold=float(threshold),
        keypoint_threshold=float(keypoint_threshold),
        resolution=int(resolution) if resolution not in (None, "") else None,
        views=tuple(views or LIVE_DEFAULT_VIEWS) if not isinstance(views, str) else (views,),
        mirrored_input=bool(mirrored),
        mirror_display=bool(mirror_display),
        smoothing=str(smoothing or OFF),
    )


def _readout(handler: FrameHandler) -> str:
    text = handler.stats.snapshot().markdown()
    info = handler.service.status().info
    if info is not None and info.random_weights:
        text += "\n\n⚠️ Random weights: these detections are noise."
    return text


def _source_note(settings: Settings) -> str:
    if not settings.enable_stream_source:
        return (
            "Server-side stream sources are **disabled** on this server (they make the server open network "
            "connections). Start it with `--enable-stream-source` to use them."
        )
    hosts = parse_allow_hosts(settings.stream_allow_hosts)
    allowed = f"Allowed hosts: `{', '.join(hosts)}`." if hosts else "Public addresses only (no allow-list set)."
    return f"The server reads the stream (RTSP, RTSPS, HTTP or HTTPS, e.g. an MJPEG camera). {allowed}"


def on_frame(
    ctx: UiContext,
    frame: np.ndarray | None,
    threshold: float,
    keypoint_threshold: float,
    resolution: Any,
    views: list[str],
    mirror_display: bool,
    smoothing: str,
    model: str | None,
    handler: FrameHandler | None,
) -> tuple[Any, Any, FrameHandler | None]:
    """One streamed webcam frame. Never raises: an exception would end the stream for this viewer."""
    if frame is None:
        return gr.skip(), gr.skip(), handler
    try:
        service = ctx.model(model)
        if handler is None or handler.service is not service:  # a new stream, or another model picked
            handler = FrameHandler(service)
        options = _options(threshold, keypoint_threshold, resolution, views, True, mirror_display, smoothing)
        handler.submit(frame)
        result = handler.process_latest(options)
    except Exception as exc:  # noqa: BLE001 - page_error logs it; the stream stays alive, the next frame may work
        return gr.skip(), f"⚠️ {page_error(exc, 'webcam frame').message}", handler
    if result is None:
        return gr.skip(), gr.skip(), handler
    return result.image, result.message or _readout(handler), handler


@user_errors
def predict_frame(
    ctx: UiContext,
    image: np.ndarray | None,
    threshold: float = DEFAULT_THRESHOLD,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    resolution: int | None = None,
    views: list[str] | None = None,
    mirrored: bool = False,
    model: str | None = None,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Detect people and keypoints in one video frame (the API twin of the live webcam stream).

    Args:
        image: the frame.
        threshold: minimum detection score, 0-1.
        keypoint_threshold: joints below this confidence are hidden, 0-1.
        resolution: inference side length, a multiple of 24.
        views: views to tile side by side into the returned image.
        mirrored: True if the frame is a mirror (selfie) image; it is flipped back before inference.
        model: which of the server's models (see /models; empty: the first).
    Returns:
        The annotated tiled views, the JSON result (coordinates in the un-mirrored frame), and a timing line.
    """
    if image is None:
        raise gr.Error("Please send a frame.", title="No image")
    service = ctx.model(model)
    service.wait(MODEL_WAIT_S)
    handler = FrameHandler(service)
    options = _options(threshold, keypoint_threshold, resolution or ctx.default_resolution, views, mirrored)
    result = handler.process(image, options)
    if result.prediction is None:
        raise gr.Error(result.message, title="Model not ready")
    p = result.prediction
    data = result_dict(p, p.displayed(options.keypoint_threshold), options.keypoint_threshold, "frame")
    data["mirrored_input"] = bool(mirrored)
    timing = f"model {result.model_ms:.0f} ms · drawing {result.render_ms:.0f} ms · total {result.e2e_ms:.0f} ms"
    return result.image, data, timing


def run_source(
    ctx: UiContext,
    url: str,
    threshold: float,
    keypoint_threshold: float,
    resolution: Any,
    views: list[str],
    request: gr.Request,
    model: str | None = None,
) -> Iterator[tuple[Any, str]]:
    """Read a server-side stream with the picked model; yield annotated frames until Stop, a failure or the limit.

    A refusal or failure is shown in the readout, where the frames' figures were (no toast, no error badges).
    """
    settings = ctx.settings
    try:
        target = validate_stream_url(url, settings.enable_stream_source, settings.stream_allow_hosts)
    except StreamSourceError as exc:
        yield gr.skip(), f"⚠️ **Stream source refused.** {page_error(exc, 'run_source').message}"
        return
    key = session_id(request)
    options = _options(threshold, keypoint_threshold, resolution, views)
    try:
        service = ctx.model(model)
    except Exception as exc:  # noqa: BLE001 - an unknown model: one line in the readout
        yield gr.skip(), f"⚠️ {page_error(exc, 'run_source').message}"
        return
    session = _sources.start(key, SourceSession(service, target, options))
    started = time.monotonic()
    try:
        for update in session.updates(DEFAULT_MAX_SECONDS):
            if update.result is None:
                yield gr.skip(), f"⏳ {update.status.message}"
                continue
            readout = update.result.message or _readout(session.handler)
            if update.status.state == "reconnecting":
                readout += f"\n\n⏳ {update.status.message}"
            yield update.result.image, readout
        if time.monotonic() - started >= DEFAULT_MAX_SECONDS:
            yield gr.skip(), f"⏹ Stopped after {DEFAULT_MAX_SECONDS / 60:.0f} minutes; press Start to continue."
    except StreamSourceError as exc:
        yield gr.skip(), f"⚠️ **Stream source failed.** {page_error(exc, 'run_source').message}"
    finally:
        _sources.discard(key, session)


def stop_source(request: gr.Request) -> str:
    return "Stopped." if _sources.stop(session_id(request)) else "Nothing is running."


def update_source_options(
    threshold: float, keypoint_threshold: float, resolution: Any, views: list[str], request: gr.Request
) -> None:
    """A running stream source picks up changed controls with its next frame."""
    session = _sources.get(session_id(request))
    if session is not None:
        session.options = _options(threshold, keypoint_threshold, resolution, views)


def build_webcam_tab(ctx: UiContext) -> None:
    """Create the tab's components and events inside the current ``gr.Blocks``."""
    gr.Markdown(
        "Click the camera button, allow access, then start streaming. Frames are processed as fast as the server "
        "can; when it is slower than your camera, older frames are skipped so the picture never lags behind.",
        elem_id="webcam-intro",
    )
    # One picker for the tab's three modes: the camera stream, the stream source (at Start), the in-browser engine.
    model = model_dropdown(ctx, "webcam-model")
    if browser_engine_enabled(ctx.settings):
        build_browser_panel(ctx)
    # On a phone the camera, the live result and the readout come first, the controls below (ui/styles.py).
    with gr.Row(equal_height=False, elem_id="webcam-row"):
        with gr.Column(scale=1, min_width=320, elem_id="webcam-inputs"):
            webcam = gr.Image(
                sources=["webcam"], streaming=True, type="numpy", label="Webcam (mirror view)",
                webcam_options=gr.WebcamOptions(mirror=True, constraints=WEBCAM_CONSTRAINTS),
                elem_id="webcam-input", height=320,
            )  # fmt: skip
            # On a live stream a changed threshold simply applies to the frames that follow. Views are tiles here
            # (FrameHandler.render), not the Image tab's side-by-side gallery.
            controls = make_controls(
                ctx, LIVE_DEFAULT_VIEWS, elem_prefix="webcam",
                threshold_info="Minimum person score; applies to the next frames (no restart needed).",
                views_label="Views (one tile each, two per row)",
                views_info="All tiles come from the same single inference per frame; fewer views draw faster.",
                keypoint_info="Hides joints below this confidence; applies to the next frames.",
            )  # fmt: skip
            mirror_display = gr.Checkbox(
                value=True, label="Mirror the annotated view",
                info="Display only: inference always sees the un-mirrored frame, so left joints stay left.",
                elem_id="webcam-mirror",
            )  # fmt: skip
            smoothing = gr.Radio(
                list(SMOOTHING_CHOICES), value=DEFAULT_SMOOTHER, label="Smoothing over time",
                elem_id="webcam-smoothing",
                info="Causal on a live stream: it adds only its own arithmetic, never a frame of delay.",
            )  # fmt: skip
        with gr.Column(scale=2, min_width=480, elem_id="webcam-results"):
            readout = gr.Markdown("Waiting for frames…", elem_id="webcam-readout")
            live = LiveImage(label="Live keypoints", interactive=False, format="jpeg", elem_id="webcam-output")
            with gr.Accordion("Camera stream URL (RTSP / HTTP, read by the server)", open=False):
                build_source_panel(ctx, controls, model)
    build_frame_endpoint(ctx, controls)
    # One small FrameHandler per viewer (no frame stays in it after processing), freed 10 minutes after its last frame.
    handler_state = gr.State(None, time_to_live=HANDLER_TTL_S)
    zero_gpu = zerogpu.on_zero_gpu()  # per-frame GPU calls are expensive there
    webcam.stream(
        bind(on_frame, ctx),
        [webcam, *controls, mirror_display, smoothing, model, handler_state],
        [live, readout, handler_state],
        stream_every=ZERO_GPU_STREAM_EVERY_S if zero_gpu else STREAM_EVERY_S,
        time_limit=ZERO_GPU_TIME_LIMIT_S if zero_gpu else WEBCAM_TIME_LIMIT_S,
        concurrency_limit=WEBCAM_CONCURRENCY,
        concurrency_id="webcam",
        api_visibility="private",
        show_progress="hidden",
    )


def build_source_panel(ctx: UiContext, controls: Controls, model: gr.Dropdown) -> None:
    """A server-side camera URL with Start/Stop; the tab's controls apply to it while it runs (the model: at Start)."""
    gr.Markdown(_source_note(ctx.settings), elem_id="source-note")
    with gr.Row():
        source_url = gr.Textbox(
            label="Stream URL", placeholder="rtsp://camera.local:554/stream or http://…/video.mjpg",
            scale=4, elem_id="source-url", interactive=ctx.settings.enable_stream_source,
        )  # fmt: skip
        start = gr.Button("Start", variant="primary", scale=1, elem_id="source-start")
        stop = gr.Button("Stop", scale=1, elem_id="source-stop")
    source_readout = gr.Markdown(elem_id="source-readout")
    source_view = LiveImage(label="Stream keypoints", interactive=False, format="jpeg", elem_id="source-output")

    source_event = start.click(
        bind(run_source, ctx),
        [source_url, *controls, model],
        [source_view, source_readout],
        api_visibility="private",
        concurrency_limit=SOURCE_CONCURRENCY,
        concurrency_id="stream_source",
        show_progress="hidden",
    )
    stop.click(stop_source, None, source_readout, cancels=[source_event], api_visibility="private", queue=False)
    changes = [c.change for c in controls]
    gr.on(changes, update_source_options, list(controls), None, api_visibility="private", queue=False)


def build_frame_endpoint(ctx: UiContext, controls: Controls) -> None:
    """Hidden components for ``/predict_frame`` (one frame per call, usable from ``gradio_client``)."""
    with gr.Row(visible=False):
        api_frame = gr.Image(type="numpy", label="frame")
        api_mirrored = gr.Checkbox(value=False, label="mirrored")
        api_model = gr.Textbox(value=ctx.registry.default if ctx.registry else "", label="model")
        api_image = gr.Image(label="annotated", format="jpeg")
        api_json = gr.JSON(label="result")
        api_timing = gr.Textbox(label="timing")
        api_button = gr.Button("predict_frame")
    api_button.click(
        bind(predict_frame, ctx, resolution=ctx.default_resolution, model=ctx.registry.default),
        [api_frame, *controls, api_mirrored, api_model],
        [api_image, api_json, api_timing],
        api_name="predict_frame",
        concurrency_id="model",
    )
