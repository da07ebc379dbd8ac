"""The video pipeline: probe once → decode → inference on keyframes → ids/filling/smoothing → render → encode + exports.

:func:`run_video` is one chain of iterators (:mod:`rfdetr_demo.video.threads`): decode and inference in threads
where that pays off, else in the calling thread; bounded queues keep memory flat for any clip length. The per-frame
chain after inference is :mod:`rfdetr_demo.video.pipeline`. Cancel is checked between frames, so the model is held
for one batch at most; a cancelled or failed run deletes its partial files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import supervision as sv

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD, MAX_VIDEO_SECONDS
from rfdetr_demo.disk import new_request_dir
from rfdetr_demo.errors import UserError
from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.results.exports import safe_stem
from rfdetr_demo.results.prediction import IDS, Prediction, apply_keypoint_threshold
from rfdetr_demo.results.render import (
    LAYOUT_COMBINED,
    LAYOUT_GRID,
    VIEW_COMBINED,
    normalize_views,
    render,
)
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.temporal.keyframes import (
    FILLED,
    MODEL,
    KeyframeFiller,
    KeyframeSchedule,
    describe,
    parse_keyframes,
    plan_keyframes,
    run_on_keyframes,
)
from rfdetr_demo.temporal.stages import make_smoother, make_stage
from rfdetr_demo.temporal.tracking import PersonTracker
from rfdetr_demo.video.exports import FrameExporter
from rfdetr_demo.video.progress import ProgressCallback, ProgressInfo, VideoResult
from rfdetr_demo.video.reader import Frame, Segment, VideoInfo, expected_frames, iter_frames, plan_segment, probe
from rfdetr_demo.video.threads import in_background, ordered_map, overlap_pays_off
from rfdetr_demo.video.writer import VideoWriter

__all__ = ["ProgressInfo", "VideoCancelled", "VideoOptions", "VideoResult", "overlap_pays_off", "run_video"]

log = logging.getLogger(__name__)

LAYOUTS = (LAYOUT_COMBINED, LAYOUT_GRID)  # a video is one image per frame: no "separate" layout
# Grid videos are scaled so the whole grid fits this box: four full-HD tiles would be a 4K encode per frame.
GRID_MAX_SIZE = (1920, 1080)
GPU_BATCH = 8
# Views drawn when the request names none. Video overlays every view on one frame (unlike the Image tab's tiles), and
# Skeleton + Ellipses + Labels on top of Combined bury small people under joint tags, so the default is Combined alone.
VIDEO_DEFAULT_VIEWS: tuple[str, ...] = (VIEW_COMBINED,)


class VideoCancelled(RuntimeError):
    """The user cancelled; nothing was published."""


class Cancel(Protocol):
    """Polled between frames: a ``threading.Event``, or the Video tab's token that also works across processes."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class VideoOptions:
    threshold: float = DEFAULT_THRESHOLD
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD
    resolution: int | None = None
    views: Sequence[str] | str | None = None  # None or empty: VIDEO_DEFAULT_VIEWS
    layout: str = LAYOUT_COMBINED
    # Model every n-th frame (1: every frame) or "auto" (1-4 by motion); None: auto on a CPU, every frame on a GPU
    # (what the page, API and CLI pass by default). Frames between keyframes are filled by the Kalman/RTS smoother,
    # so the output keeps every source frame.
    keyframes: int | str | None = 1
    start: float = 0.0
    end: float | None = None
    tracking: bool = True
    # A smoother's name (video/smoothing.SMOOTHING_CHOICES); True means the default (kalman), False/None/""/"off" none.
    smoothing: bool | str | None = False
    batch_size: int | None = None  # None: 1 on CPU (batching does not help there), GPU_BATCH on a GPU
    render_workers: int | None = None  # None: draw inline on CPU (cores are busy with inference), 3 threads on GPU
    # None: overlap decode/inference/drawing in threads unless inference already uses every CPU core (see
    # ``overlap_pays_off``); True/False force it.
    overlap: bool | None = None
    max_seconds: float | None = MAX_VIDEO_SECONDS

    def validated(self) -> VideoOptions:
        if self.layout not in LAYOUTS:
            raise UserError(f"layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if not 0.0 <= float(self.keypoint_threshold) <= 1.0:
            raise UserError(f"keypoint_threshold must be within [0, 1], got {self.keypoint_threshold}")
        video_views(self.views)
        make_smoother(self.smoothing)  # an unknown name fails before any work
        parse_keyframes(self.keyframes)
        return self


def video_views(views: Sequence[str] | str | None) -> list[str]:
    """The chosen views in drawing order, or :data:`VIDEO_DEFAULT_VIEWS` when none are chosen."""
    if views is None or len(views) == 0:
        return list(VIDEO_DEFAULT_VIEWS)
    return normalize_views(views)


def render_frame(
    rgb: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, views: Sequence[str], layout: str
) -> np.ndarray:
    """One output frame: all chosen views drawn on one image (combined) or one tile per view (grid)."""
    return render(rgb, kp, schema, views, layout, max_size=GRID_MAX_SIZE)[0]


@dataclass(frozen=True)
class VideoPlan:
    """The facts of one request, settled once before the first frame: the probed clip and how to process it."""

    path: Path
    info: VideoInfo
    segment: Segment
    total: int | None  # expected output frames (for progress), None when the clip does not say
    views: list[str]
    schema: KeypointSchema
    output_fps: Fraction
    keyframes: int | str  # the interval (or "auto") this run uses
    smoothing: bool | str | None  # kalman whenever frames are filled (the smoother fills them)
    notes: list[str]
    batch_size: int
    overlap: bool
    render_workers: int


def plan_video(
    service: ModelService, path: Path, options: VideoOptions, model_wait_s: float | None = None
) -> VideoPlan:
    """Probe the clip once, check the requested range, and choose batching and threading for this host.

    Waits at most ``model_wait_s`` for the model (``ModelUnavailable`` after that): the request's one wait.
    """
    info = probe(path)
    seg = plan_segment(info, options.start, options.end, options.max_seconds)
    _, schema, model_info = service.wait(model_wait_s)
    keyframes, smoothing, notes = plan_keyframes(options.keyframes, options.smoothing, model_info.device)
    batch_size = options.batch_size or (1 if model_info.device.startswith("cpu") else GPU_BATCH)
    overlap = options.overlap if options.overlap is not None else overlap_pays_off(model_info.device)
    # Drawing is the slowest stage once inference is fast (GPU): a small pool draws a few frames at once while
    # encoding and exports stay in frame order.
    workers = options.render_workers if options.render_workers is not None else (0 if batch_size == 1 else 3)
    return VideoPlan(
        path, info, seg, expected_frames(info, seg), video_views(options.views), schema, info.fps, keyframes,
        smoothing, notes, batch_size, overlap, workers,
    )  # fmt: skip


@dataclass
class _Drawn:
    frame: Frame
    prediction: Prediction | None  # None: a filled frame (the model skipped it)
    shown: sv.KeyPoints
    image: np.ndarray


def _predictions(
    service: ModelService, plan: VideoPlan, options: VideoOptions, schedule: KeyframeSchedule, check: Callable[[], None]
) -> Iterator[tuple[Frame, Prediction | None]]:
    """Decode → batched inference on keyframes, each in its own thread when ``plan.overlap`` (same chain either way).

    With ``overlap`` the inference thread runs a few frames ahead, so an auto schedule hears about motion that late.
    """
    frames: Iterator[Frame] = iter_frames(plan.path, plan.segment, options.max_seconds, plan.info)
    depth = 2 * plan.batch_size + 2
    if plan.overlap:
        frames = in_background(frames, depth, "video-decode", check)

    def predict(batch: list[Frame]) -> list[Prediction]:
        check()
        return service.predict_batch([f.rgb for f in batch], options.threshold, options.resolution)

    def infer() -> Iterator[tuple[Frame, Prediction | None]]:
        try:
            yield from run_on_keyframes(frames, schedule, plan.batch_size, predict)
        finally:
            frames.close()  # type: ignore[attr-defined]

    return in_background(infer(), depth, "video-infer", check) if plan.overlap else infer()


class _Summary:
    """Per-frame rows, timing and progress reports, collected in the calling thread."""

    def __init__(self, plan: VideoPlan, progress: ProgressCallback | None) -> None:
        self.plan, self.progress = plan, progress
        self.rows: list[dict[str, Any]] = []
        self.infer_ms = self.first_s = self.warmup_s = self.last_frame_s = self.last_report = 0.0
        self.model_runs = self.through = 0
        self.t0 = time.perf_counter()

    def counted(self, results: Iterator[tuple[Frame, Prediction | None]]) -> Iterator[tuple[Frame, Prediction | None]]:
        """``results``, timing and reporting each frame as it leaves the model stage (inferred, or to be filled).

        Progress counts these, not frames written: a fixed-lag smoother holds the last few back until the end.
        """
        for item in results:
            self.through += 1
            now = time.perf_counter()
            self.last_frame_s = now - self.t0
            if self.through == 1:
                self.first_s = self.last_frame_s
            if self.through == self.plan.batch_size:
                self.warmup_s = self.last_frame_s
            if self.progress is not None and (now - self.last_report > 0.2 or self.through == self.plan.total):
                self.last_report = now
                self.progress(ProgressInfo(self.through, self.plan.total, self.last_frame_s, self.first_s))
            yield item

    def add(self, drawn: _Drawn) -> None:
        frame, pred, shown = drawn.frame, drawn.prediction, drawn.shown
        if pred is not None:
            self.infer_ms += pred.inference_ms
            self.model_runs += 1
        self.rows.append(
            {
                "frame": frame.index,
                "time_s": round(frame.timestamp, 3),
                "source": MODEL if pred is not None else FILLED,
                "persons": len(shown),
                "ids": " ".join(str(i) for i in shown.data[IDS]),
                "best_score": round(float(np.max(shown.detection_confidence)), 3) if len(shown) else None,
                "inference_ms": round(pred.inference_ms, 1) if pred is not None else None,
            }
        )

    def result(self, video_path: Path, files: list[Path], writer: VideoWriter, layout: str) -> VideoResult:
        info, n = self.plan.info, len(self.rows)
        notes = [f"Rotated {info.rotation}° as the clip's metadata asks."] if info.rotation else []
        notes += self.plan.notes
        if writer.size and writer.size != (info.width, info.height) and layout == LAYOUT_COMBINED:
            notes.append(f"Padded to even size {writer.size[0]}×{writer.size[1]} (H.264 needs even dimensions).")
        batch = self.plan.batch_size
        return VideoResult(
            video_path=video_path, files=files, frames=pd.DataFrame(self.rows), info=info,
            output_fps=self.plan.output_fps, output_size=writer.size or (0, 0), frames_done=n,
            elapsed_s=time.perf_counter() - self.t0, inference_ms=self.infer_ms / max(self.model_runs, 1), notes=notes,
            model_runs=self.model_runs, keyframes=describe(self.plan.keyframes),
            warmup_frames=min(batch, n), warmup_s=self.warmup_s if n >= batch else self.last_frame_s,
            last_frame_s=self.last_frame_s,
        )  # fmt: skip


def run_video(
    service: ModelService,
    path: str | Path,
    options: VideoOptions | None = None,
    out_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: Cancel | None = None,
    source_name: str | None = None,
    model_wait_s: float | None = None,
) -> VideoResult:
    """Process a clip end to end; return the published video and exports, or raise (nothing published).

    The clip is probed and planned here; decoding, inference, drawing and encoding run in one GPU lease on ZeroGPU.
    """
    options = (options or VideoOptions()).validated()
    plan = plan_video(service, Path(path), options, model_wait_s)
    out_dir = out_dir or new_request_dir("video_")
    return _run_planned(service, plan, options, out_dir, progress, cancel, source_name)


def _lease_seconds(service: ModelService, plan: VideoPlan, options: VideoOptions, *_: Any) -> float:
    frames = plan.total if plan.total is not None else int(float(plan.output_fps) * (options.max_seconds or 60.0))
    return zerogpu.estimate_seconds(frames, options.resolution or service.info.default_resolution)


@zerogpu.gpu(_lease_seconds)
def _run_planned(
    service: ModelService,
    plan: VideoPlan,
    options: VideoOptions,
    out_dir: Path,
    progress: ProgressCallback | None,
    cancel: Cancel | None,
    source_name: str | None,
) -> VideoResult:
    cancel = cancel or threading.Event()

    def check() -> None:
        if cancel.is_set():
            raise VideoCancelled("Stopped before any output was produced.")

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(source_name or plan.path.name, default="video")
    writer = VideoWriter(out_dir / f"{stem}_keypoints.mp4", plan.output_fps)
    exporter = FrameExporter(out_dir, stem, plan.schema.names, plan.schema.joint_angles())
    summary = _Summary(plan, progress)
    schedule = KeyframeSchedule(plan.keyframes)

    def draw(item: tuple[Frame, Prediction | None, sv.KeyPoints]) -> _Drawn:
        frame, pred, shown = item
        return _Drawn(frame, pred, shown, render_frame(frame.rgb, shown, plan.schema, plan.views, options.layout))

    results = _predictions(service, plan, options, schedule, check)
    shown = shown_frames(
        summary.counted(results), float(plan.output_fps), schedule, plan.smoothing, options.tracking, options.threshold,
        float(options.keypoint_threshold),
    )  # fmt: skip
    chain = ordered_map(draw, shown, plan.render_workers)
    published = False
    try:
        for drawn in chain:
            check()
            writer.write(drawn.image)
            source = MODEL if drawn.prediction is not None else FILLED
            exporter.add(drawn.frame.index, drawn.frame.timestamp, drawn.shown, source)
            summary.add(drawn)
        if not summary.rows:
            raise UserError("The selected range contains no frames.")
        check()
        chain.close()  # type: ignore[attr-defined] # stop the threads before the remux needs the cores
        results.close()  # type: ignore[attr-defined]
        video_path = writer.finish(plan.path if plan.info.has_audio else None, plan.segment.start, plan.segment.end)
        files = [video_path, *exporter.finish()]
        published = True
    finally:
        chain.close()  # type: ignore[attr-defined]
        results.close()  # type: ignore[attr-defined]
        if not published:
            writer.abort()
            exporter.abort()
    return summary.result(video_path, files, writer, options.layout)


# The per-frame chain after inference, in frame order: ids → display threshold → keyframe filling → smoothing.
def shown_frames(
    results: Iterator[tuple[Frame, Prediction | None]],
    fps: float,
    schedule: KeyframeSchedule,
    smoothing: bool | str | None,
    tracking: bool,
    threshold: float,
    keypoint_threshold: float,
) -> Iterator[tuple[Frame, Prediction | None, sv.KeyPoints]]:
    """``(frame, prediction or None for a filled frame, key points to draw and export)`` for every frame, in order."""
    stage = make_stage(smoothing, offline=True)
    tracking = tracking or stage is not None  # smoothers follow people by id
    rate = fps / (2 if schedule.auto else schedule.interval)  # tracker updates per second
    tracker = PersonTracker(rate, threshold) if tracking else None
    filler = KeyframeFiller()
    for frame, pred in results:
        if pred is None:
            items = filler.skip((frame, pred), frame.timestamp)
        else:
            kp = pred.key_points if tracker is None else tracker.update(pred.key_points, frame.timestamp)
            items = filler.key((frame, pred), frame.timestamp, apply_keypoint_threshold(kp, keypoint_threshold))
        for payload, t, kp, filled in items:
            if stage is None:
                yield (*payload, kp)
                continue
            for (f, p), smoothed in stage.push(kp, t, payload, filled=filled):
                yield f, p, smoothed
            if not filled:
                schedule.observe(stage.surprise())
    if stage is not None:  # without a smoother every frame is a keyframe: nothing waits in the filler
        tail = [out for payload, t, kp, filled in filler.flush() for out in stage.push(kp, t, payload, filled=filled)]
        yield from ((f, p, smoothed) for (f, p), smoothed in [*tail, *stage.flush()])
