"""Video tab and ``/predict_video``: a clip → annotated, browser-playable MP4 + per-frame JSONL/CSV.

The pipeline is :mod:`rfdetr_demo.video` (no Gradio); here controls become :class:`VideoOptions`, progress a
``gr.Progress`` bar, and Cancel (or a closed page) a per-session token the run polls between frames.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD, MODEL_WAIT_S, example_files
from rfdetr_demo.disk import BUDGET
from rfdetr_demo.models import malloc_trim
from rfdetr_demo.temporal.keyframes import AUTO, KEYFRAME_CHOICES, default_keyframes
from rfdetr_demo.temporal.stages import DEFAULT_SMOOTHER, OFF, SMOOTHING_CHOICES
from rfdetr_demo.ui.cancel import CancelRegistry
from rfdetr_demo.ui.controls import make_controls, parse_resolution
from rfdetr_demo.ui.handlers import CLEAR, UiContext, bind, in_place, keep_fresh, user_errors
from rfdetr_demo.ui.models_panel import model_dropdown
from rfdetr_demo.ui.motion_panel import build_motion_panel, wire_motion_panel
from rfdetr_demo.video.pipeline import (
    LAYOUT_COMBINED,
    LAYOUT_GRID,
    VIDEO_DEFAULT_VIEWS,
    ProgressInfo,
    VideoCancelled,
    VideoResult,
    run_video,
)
from rfdetr_demo.video.pipeline import VideoOptions as VideoOptions
from rfdetr_demo.video.reader import PREVIEW_HELP, preview_note

FRAME_COLUMNS = ["frame", "time_s", "source", "persons", "ids", "best_score", "inference_ms"]
# "Model every n-th frame" choices; the rest are filled by the Kalman smoother at the source frame rate.
KEYFRAME_LABELS = [("auto (1-4, by motion)", AUTO), ("1 (every frame)", "1")] + [
    (str(n), str(n)) for n in KEYFRAME_CHOICES if isinstance(n, int) and n > 1
]


def example_videos(ctx: UiContext) -> list[str]:
    return example_files(ctx.examples, ".mp4")


def speed_text(result: VideoResult) -> str:
    """Processing speed without letting start-up pass for it.

    On a 5-frame clip the whole-run rate mostly measures start-up (threads, codecs, the first inference), so the
    headline rate is the steady one after the first batch; a clip too short to have one says so instead.
    """
    head = f"**{result.frames_done} frames** processed in {result.elapsed_s:.1f} s"
    steady = result.steady_fps
    if steady is None:
        return f"{head} ({result.fps:.1f} frames/s including start-up; too few frames to measure a steady rate)"
    first = "first frame" if result.warmup_frames == 1 else f"first batch of {result.warmup_frames} frames"
    return (
        f"{head}: **{steady:.1f} frames/s** after the {first}, which took {result.warmup_s:.1f} s including "
        f"start-up ({result.fps:.1f} frames/s over the whole run)"
    )


def summarize(result: VideoResult) -> str:
    info = result.info
    lines = [
        f"**{result.model_runs} model runs** for **{result.frames_done} frames written** ({result.keyframes}"
        + ("; the others filled by the Kalman smoother)" if result.model_runs < result.frames_done else ")"),
        f"{speed_text(result)} · inference {result.inference_ms:.0f} ms per model run · "
        f"source {info.width}×{info.height} at "
        f"{float(info.fps):.2f} fps → output {result.output_size[0]}×{result.output_size[1]} at "
        f"{float(result.output_fps):.2f} fps, H.264" + (" with the source audio" if info.has_audio else ""),
    ]
    lines += [f"ℹ️ {n}" for n in result.notes]
    return "\n\n".join(lines)


_cancels = CancelRegistry()


def expected_device(ctx: UiContext) -> str:
    """The device the model will run on, known before it has loaded (for the keyframes control's default)."""
    device = str(ctx.settings.device or "auto")
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def max_video_seconds(ctx: UiContext) -> float | None:
    return float(ctx.settings.max_video_seconds) if ctx.settings.max_video_seconds else None


@user_errors
def predict_video(
    ctx: UiContext,
    video: str | None,
    threshold: float = DEFAULT_THRESHOLD,
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD,
    resolution: int | None = None,
    views: list[str] | None = None,
    layout: str = LAYOUT_COMBINED,
    keyframes: str | int | None = None,
    start: float = 0.0,
    end: float = 0.0,
    tracking: bool = True,
    smoothing: str | bool = DEFAULT_SMOOTHER,
    model: str | None = None,
    request: gr.Request | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's documented way to receive a progress tracker
) -> tuple[Any, ...]:
    """Detect people and keypoints in every frame of a video and return an annotated H.264 MP4.

    Args:
        video: the video file (MP4, MOV, WebM, ...).
        threshold: minimum detection score, 0-1.
        keypoint_threshold: joints below this confidence are hidden, 0-1.
        resolution: inference side length, a multiple of 24.
        views: annotator views to draw (default: Combined only; more views on one frame get crowded).
        layout: "combined" (all views on one video) or "grid" (one tile per view).
        keyframes: run the model on every n-th frame ("1" = every frame) or "auto" (1-4 frames, by motion); the
            Kalman smoother fills the frames in between, so the output keeps every frame. Empty: auto on a CPU,
            every frame on a GPU.
        start: start of the segment in seconds.
        end: end of the segment in seconds (0 = the end of the clip).
        tracking: give people stable ids across frames (ByteTrack).
        smoothing: "kalman" (default: the model's covariance, fixed-lag RTS), "one-euro" or "off"; turns tracking on.
        model: which of the server's models (see /models; empty: the first); one model per run.
    Returns:
        The annotated video, a summary, the per-frame table and the downloads (MP4, JSONL, keypoints CSV, angles CSV).
    """
    if not video:
        raise gr.Error("Please upload or pick a video first.", title="No video")
    service = ctx.model(model)
    service.wait(MODEL_WAIT_S)
    options = VideoOptions(
        threshold=float(threshold),
        keypoint_threshold=float(keypoint_threshold),
        resolution=parse_resolution(resolution, ctx.default_resolution),
        views=views or list(VIDEO_DEFAULT_VIEWS),
        layout=str(layout),
        keyframes=keyframes,
        start=float(start or 0.0),
        end=float(end) if end else None,
        tracking=bool(tracking),
        smoothing=smoothing if isinstance(smoothing, bool) else str(smoothing or OFF),
        max_seconds=max_video_seconds(ctx),
    )

    try:
        # The upload and the output folder are never pruned while this runs.
        with _cancels.running(request) as cancel, BUDGET.in_use(video):
            progress(0.0, desc="Starting: reading the clip…")
            report = functools.partial(report_frames, progress)  # pickles into a ZeroGPU lease, unlike a closure
            result = run_video(service, video, options, progress=report, cancel=cancel, source_name=Path(video).name)
    except VideoCancelled as exc:
        raise gr.Error(str(exc), title="Cancelled") from exc
    finally:
        malloc_trim.after_request()  # the frames' buffers go back to the OS
    return str(result.video_path), summarize(result), result.frames, [str(p) for p in result.files]


def process_video(ctx: UiContext, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """The page's run: :func:`predict_video`'s outputs and an empty message under *Process video* (the last one is
    gone once a run succeeds; a failure puts its message there instead, see :func:`build_video_tab`)."""
    return (*predict_video(ctx, *args, **kwargs), "")


# Gradio reads the inputs, gr.Request and gr.Progress from the signature and type hints: predict_video's.
process_video.__signature__ = inspect.signature(predict_video)  # type: ignore[attr-defined]
process_video.__annotations__ = dict(predict_video.__annotations__)


def report_frames(progress: gr.Progress, p: ProgressInfo) -> None:
    """Frames through the model and time left, on the page's progress bar (``spaces`` forwards it from a lease)."""
    progress((p.done, p.total or p.done), desc=p.text(), unit="frames")


def cancel_runs(request: gr.Request) -> str:
    return "⏹️ Cancelling…" if _cancels.cancel(request) else "Nothing to cancel."


def video_queue_group(ctx: UiContext) -> str:
    """``--video-queue separate`` (default): videos wait and run in their own group, so an image request never
    waits behind a whole video (the two take turns on the model, batch by batch); ``shared``: one line for both."""
    return "model" if ctx.settings.video_queue == "shared" else "video"


def _page_run(
    ctx: UiContext, run_btn: gr.Button, inputs: list[Any], outputs: list[Any], message: gr.Markdown,
    summary: gr.Markdown,
) -> Any:  # fmt: skip
    """The button's run. A failure's message goes under "Process video" (``message``), where the visitor just
    clicked (the summary sits a screen above on a laptop), once; the next click clears it before anything else."""
    page_run = in_place(process_video, lambda: (None, "", None, None, ""), "video", message_at=4, state_at=None)
    run_btn.click(None, None, message, js=CLEAR, api_visibility="private", queue=False, show_progress="hidden")
    return run_btn.click(
        bind(page_run, ctx, resolution=ctx.default_resolution, model=ctx.registry.default), inputs,
        [*outputs, message],
        api_visibility="private",
        concurrency_id=video_queue_group(ctx),
        show_progress_on=[message, summary],
    )  # fmt: skip


def build_video_tab(ctx: UiContext) -> None:
    """Create the tab's components and events inside the current ``gr.Blocks``."""
    max_seconds = max_video_seconds(ctx)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            video = gr.Video(label="Video", sources=["upload"], height=320, elem_id="input-video")
            preview_help = gr.Markdown(PREVIEW_HELP, elem_id="video-preview-note")
            # Same picker as the Image tab; on video the views are overlaid or tiled (see Layout below), so the
            # default is Combined alone: overlaid Skeleton/Ellipses/Labels would bury people under joint tags.
            model = model_dropdown(ctx, "video-model")
            controls = make_controls(
                ctx, VIDEO_DEFAULT_VIEWS, views_label="Views", elem_prefix="video",
                views_info="Drawn together on one video, or one tile each with the grid layout.",
                keypoint_info="Hides joints below this confidence; the video is drawn while it is processed, so "
                "a change applies to the next run.",
            )  # fmt: skip
            with gr.Accordion("Video options", open=True):
                layout = gr.Radio(
                    [("All views on one video", LAYOUT_COMBINED), ("Grid: one tile per view", LAYOUT_GRID)],
                    value=LAYOUT_COMBINED, label="Layout",
                )  # fmt: skip
                keyframes = gr.Dropdown(
                    KEYFRAME_LABELS, value=str(default_keyframes(expected_device(ctx))), elem_id="keyframes",
                    label="Model every n-th frame",
                    info="The smoother fills the frames in between (with growing uncertainty), so the video keeps "
                    "every frame. Auto runs the model more often when people move fast.",
                )  # fmt: skip
                with gr.Row():
                    start = gr.Number(0.0, label="Start (s)", minimum=0)
                    end = gr.Number(0.0, label="End (s, 0 = end of clip)", minimum=0)
                gr.Markdown(
                    f"This server processes at most **{max_seconds:g} s** of video per request." if max_seconds else ""
                )
                tracking = gr.Checkbox(True, label="Track people (stable ids, ByteTrack)")
                smoothing = gr.Radio(
                    list(SMOOTHING_CHOICES), value=DEFAULT_SMOOTHER, label="Smoothing over time", elem_id="smoothing",
                    info="Kalman uses the model's own per-joint covariance (and the frames after each one); "
                    "One-Euro only its confidence. Both follow people by id.",
                )  # fmt: skip
            with gr.Row():
                run_btn = gr.Button("Process video", variant="primary", elem_id="run-video")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-video")
            # Progress shows here, next to the button just clicked, as well as over the result.
            progress_box = gr.Markdown(elem_id="video-progress", min_height=0)
            examples = example_videos(ctx)
            if examples:
                gr.Examples(examples=examples, inputs=[video], label="Examples")
        with gr.Column(scale=2, min_width=480):
            summary = gr.Markdown(elem_id="video-summary")
            output = gr.Video(label="Annotated video", interactive=False, elem_id="output-video")
            files = gr.File(label="Downloads (MP4 · JSONL per frame · CSV per keypoint · CSV of joint angles)",
                            file_count="multiple", interactive=False)  # fmt: skip
            frames = gr.Dataframe(
                headers=FRAME_COLUMNS, label="Per-frame summary", interactive=False, elem_id="frames-table",
                max_height=320,
            )  # fmt: skip
            motion = build_motion_panel()

    inputs = [video, *controls, layout, keyframes, start, end, tracking, smoothing, model]
    outputs = [output, summary, frames, files]
    # The API endpoint raises for its clients (a hidden button's event); the page's button shows failures in place.
    api = gr.Button("predict_video", visible=False).click(
        bind(predict_video, ctx, resolution=ctx.default_resolution, model=ctx.registry.default), inputs, outputs,
        api_name="predict_video",
        concurrency_id=video_queue_group(ctx),
    )  # fmt: skip
    run = _page_run(ctx, run_btn, inputs, outputs, progress_box, summary)
    wire_motion_panel(motion, files, run)
    for event in (api, run):
        event.success(keep_fresh, [output, files], None, api_visibility="private", queue=False)
    cancel_btn.click(cancel_runs, None, [progress_box], api_visibility="private", queue=False)
    # Explains Gradio's "Video not playable" toast for codecs the browser cannot preview (header read only).
    video.change(preview_note, video, preview_help, api_visibility="private", queue=False, show_progress="hidden")
    video.change(None, None, progress_box, js=CLEAR, api_visibility="private", queue=False, show_progress="hidden")
    ctx.on_unload.append(_cancels.cancel_on_unload)
