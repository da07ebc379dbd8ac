"""The video pipeline: decode → (batched) inference → track/smooth → render → encode + exports, overlapped.

Three stages run at once: a decoder thread (PyAV), an inference thread (batches frames into
``service.predict_batch``, several per call on a GPU) and the calling thread (tracking, smoothing, drawing, H.264
encoding and per-frame exports; on a GPU the drawing is spread over a small ordered thread pool). They talk
through small bounded queues, so memory stays flat however long the clip is (no list of frames is ever built), and
the slowest stage sets the pace instead of the sum of all three.

Cancellation is a ``threading.Event`` checked between frames by every stage: the model is only held for the batch in
flight, so another request gets it within one batch. A cancelled or failed run deletes its partial files.
Progress is reported from the calling thread (Gradio's progress object is safe to call there).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import supervision as sv

from rfdetr_demo.exports import safe_stem
from rfdetr_demo.render import (
    LAYOUT_COMBINED,
    LAYOUT_GRID,
    VIEW_COMBINED,
    normalize_views,
    render,
)
from rfdetr_demo.result import IDS, Prediction, apply_keypoint_threshold
from rfdetr_demo.schema import KeypointSchema
from rfdetr_demo.service import ModelService
from rfdetr_demo.video.exports import FrameExporter
from rfdetr_demo.video.reader import Frame, VideoInfo, expected_frames, iter_frames, plan_segment, probe
from rfdetr_demo.video.smoothing import KeypointSmoother
from rfdetr_demo.video.tracking import PersonTracker
from rfdetr_demo.video.writer import VideoWriter
from rfdetr_demo.workdirs import new_request_dir

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


@dataclass(frozen=True)
class VideoOptions:
    threshold: float = 0.5
    keypoint_threshold: float = 0.3
    resolution: int | None = None
    views: Sequence[str] | str | None = None  # None or empty: VIDEO_DEFAULT_VIEWS
    layout: str = LAYOUT_COMBINED
    stride: int = 1
    start: float = 0.0
    end: float | None = None
    tracking: bool = True
    smoothing: bool = False
    batch_size: int | None = None  # None: 1 on CPU (batching does not help there), GPU_BATCH on a GPU
    render_workers: int | None = None  # None: draw inline on CPU (cores are busy with inference), 3 threads on GPU
    # None: overlap decode/inference/drawing in threads unless inference already uses every CPU core (see
    # ``overlap_pays_off``); True/False force it.
    overlap: bool | None = None
    max_seconds: float | None = 60.0

    def validated(self) -> VideoOptions:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {self.layout!r}")
        if not 0.0 <= float(self.keypoint_threshold) <= 1.0:
            raise ValueError(f"keypoint_threshold must be within [0, 1], got {self.keypoint_threshold}")
        video_views(self.views)
        return self


def video_views(views: Sequence[str] | str | None) -> list[str]:
    """The chosen views in drawing order, or :data:`VIDEO_DEFAULT_VIEWS` when none are chosen."""
    if views is None or len(views) == 0:
        return list(VIDEO_DEFAULT_VIEWS)
    return normalize_views(views)


@dataclass(frozen=True)
class ProgressInfo:
    done: int
    total: int | None
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.total is None or self.done == 0:
            return None
        return max(0.0, (self.total - self.done) / max(self.fps, 1e-9))

    def text(self) -> str:
        eta = f"{self.eta_s:.0f} s left" if self.eta_s is not None else "time left unknown"
        total = self.total if self.total is not None else "?"
        return f"{self.done}/{total} frames · {self.fps:.1f} frames/s · {eta}"


@dataclass
class VideoResult:
    video_path: Path
    files: list[Path]
    frames: pd.DataFrame  # per-frame summary
    info: VideoInfo
    output_fps: Fraction
    output_size: tuple[int, int]
    frames_done: int
    elapsed_s: float
    inference_ms: float  # mean per frame
    notes: list[str] = field(default_factory=list)
    # Start-up (thread and codec start, the first inference batch, the first encode) is a fixed cost that dominates
    # short clips, so the steady rate is measured after it: from the last frame of the first batch to the last frame.
    warmup_frames: int = 0  # frames in the first inference batch
    warmup_s: float = 0.0  # from the start until the first batch's last frame was written
    last_frame_s: float = 0.0  # from the start until the last frame was written (exports/remux come after)

    @property
    def fps(self) -> float:
        """Frames per second over the whole run, start-up and finishing included."""
        return self.frames_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def steady_fps(self) -> float | None:
        """Frames per second after the first batch; None when no frame came after it (too short to say)."""
        frames = self.frames_done - self.warmup_frames
        span = self.last_frame_s - self.warmup_s
        return frames / span if frames > 0 and self.warmup_frames > 0 and span > 0 else None


ProgressCallback = Callable[[ProgressInfo], None]


class _End:
    pass


@dataclass
class _Failed:
    exc: BaseException


_END = _End()


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Bounded put that gives up when the run stops (a full queue must never hang a cancelled run)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _decode_worker(path: Path, seg: Any, max_seconds: float | None, out: queue.Queue, stop: threading.Event) -> None:
    try:
        for frame in iter_frames(path, seg, max_seconds):
            if not _put(out, frame, stop):
                return
        _put(out, _END, stop)
    except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which re-raises it
        _put(out, _Failed(exc), stop)


def _infer_worker(
    service: ModelService,
    options: VideoOptions,
    batch_size: int,
    inp: queue.Queue,
    out: queue.Queue,
    stop: threading.Event,
) -> None:
    try:
        finished = False
        while not finished and not stop.is_set():
            batch: list[Frame] = []
            while len(batch) < batch_size:
                try:
                    item = inp.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    if batch:  # don't hold frames back waiting for a full batch
                        break
                    continue
                if isinstance(item, _Failed):
                    _put(out, item, stop)
                    return
                if isinstance(item, _End):
                    finished = True
                    break
                batch.append(item)
            if batch and not stop.is_set():
                preds = service.predict_batch([f.rgb for f in batch], options.threshold, options.resolution)
                for f, p in zip(batch, preds, strict=True):
                    if not _put(out, (f, p), stop):
                        return
        _put(out, _END, stop)
    except BaseException as exc:  # noqa: BLE001
        _put(out, _Failed(exc), stop)


def overlap_pays_off(device: str) -> bool:
    """Whether running decode, inference and encode in parallel threads speeds a clip up on this host.

    On a GPU, inference leaves the CPU idle, so decoding and encoding alongside it are free. On a CPU, torch's
    OpenMP threads already occupy every core during inference; work in other threads then only preempts them, and
    OpenMP stalls at each barrier waiting for a descheduled thread. Measured on 2 cores (``bench/bench_video.py``):
    the threaded pipeline ran at 0.83x a plain sequential loop, while the same stages in one thread ran at 0.94x.
    """
    import os

    import torch

    if not device.startswith("cpu"):
        return True
    return torch.get_num_threads() < (os.cpu_count() or 1)


def _sequential_results(
    service: ModelService, path: Path, seg: Any, options: VideoOptions, batch_size: int, cancel: threading.Event
) -> Iterator[tuple[Frame, Prediction]]:
    """Decode and infer in the calling thread (see :func:`overlap_pays_off`); still one frame batch in memory."""
    batch: list[Frame] = []
    for frame in iter_frames(path, seg, options.max_seconds):
        if cancel.is_set():
            raise VideoCancelled("Cancelled: no output was produced.")
        batch.append(frame)
        if len(batch) == batch_size:
            yield from _predicted(service, batch, options)
            batch = []
    if batch:
        yield from _predicted(service, batch, options)


def _predicted(service: ModelService, batch: list[Frame], options: VideoOptions) -> Iterator[tuple[Frame, Prediction]]:
    preds = service.predict_batch([f.rgb for f in batch], options.threshold, options.resolution)
    return zip(batch, preds, strict=True)


def render_frame(
    rgb: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, views: Sequence[str], layout: str
) -> np.ndarray:
    """One output frame: all chosen views drawn on one image (combined) or one tile per view (grid)."""
    return render(rgb, kp, schema, views, layout, max_size=GRID_MAX_SIZE)[0]


def _stop_threads(stop: threading.Event, threads: list[threading.Thread], queues: list[queue.Queue]) -> None:
    stop.set()
    for q in queues:  # unblock producers quickly and drop frame references
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
    for t in threads:
        if t.ident is not None:  # never started when the run was sequential
            t.join(timeout=30)


def run_video(
    service: ModelService,
    path: str | Path,
    options: VideoOptions | None = None,
    out_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    source_name: str | None = None,
) -> VideoResult:
    """Process a clip end to end; return the published video and exports, or raise (nothing published)."""
    options = (options or VideoOptions()).validated()
    path = Path(path)
    views = video_views(options.views)
    info = probe(path)
    seg = plan_segment(info, options.start, options.end, options.stride, options.max_seconds)
    total = expected_frames(info, seg)
    _, schema, model_info = service.wait()
    batch_size = options.batch_size or (1 if model_info.device.startswith("cpu") else GPU_BATCH)
    cancel = cancel or threading.Event()
    out_dir = out_dir or new_request_dir("video_")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = safe_stem(source_name or path.name, default="video")
    output_fps = info.fps / seg.stride
    writer = VideoWriter(out_dir / f"{stem}_keypoints.mp4", output_fps)
    exporter = FrameExporter(out_dir, stem, schema.names)
    tracker = PersonTracker(float(output_fps), options.threshold) if (options.tracking or options.smoothing) else None
    smoother = KeypointSmoother() if options.smoothing else None

    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size + 2)
    results_q: queue.Queue = queue.Queue(maxsize=2 * batch_size + 2)
    threads = [
        threading.Thread(
            target=_decode_worker, args=(path, seg, options.max_seconds, frames_q, stop), name="video-decode",
            daemon=True,
        ),
        threading.Thread(
            target=_infer_worker, args=(service, options, batch_size, frames_q, results_q, stop), name="video-infer",
            daemon=True,
        ),
    ]  # fmt: skip
    rows: list[dict[str, Any]] = []
    infer_ms = 0.0
    warmup_s = last_frame_s = 0.0
    t0 = time.perf_counter()
    last_report = 0.0
    published = False
    # Drawing is the slowest stage once inference is fast (GPU): a small pool draws a few frames at once while
    # encoding and exports stay in frame order. The window bounds how many frames wait in memory.
    workers = options.render_workers if options.render_workers is not None else (0 if batch_size == 1 else 3)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="video-render") if workers > 0 else None
    window = 2 * workers
    pending: deque[tuple[Future[np.ndarray] | None, Frame, sv.KeyPoints, Prediction]] = deque()

    def emit(job: Future[np.ndarray] | None, frame: Frame, shown: sv.KeyPoints, pred: Prediction) -> None:
        nonlocal infer_ms, last_report, warmup_s, last_frame_s
        if cancel.is_set():
            raise VideoCancelled("Cancelled: no output was produced.")
        image = job.result() if job is not None else render_frame(frame.rgb, shown, schema, views, options.layout)
        writer.write(image)
        exporter.add(frame.index, frame.timestamp, shown)
        infer_ms += pred.inference_ms
        scores = shown.detection_confidence
        rows.append(
            {
                "frame": frame.index,
                "time_s": round(frame.timestamp, 3),
                "persons": len(shown),
                "ids": " ".join(str(i) for i in shown.data[IDS]),
                "best_score": round(float(np.max(scores)), 3) if len(shown) else None,
                "inference_ms": round(pred.inference_ms, 1),
            }
        )
        now = time.perf_counter()
        last_frame_s = now - t0
        if len(rows) == batch_size:
            warmup_s = last_frame_s
        if progress is not None and (now - last_report > 0.2 or len(rows) == total):
            last_report = now
            progress(ProgressInfo(len(rows), total, now - t0))

    def threaded_results() -> Iterator[tuple[Frame, Prediction]]:
        for t in threads:
            t.start()
        while True:
            if cancel.is_set():
                raise VideoCancelled("Cancelled: no output was produced.")
            try:
                item = results_q.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    overlap = options.overlap if options.overlap is not None else overlap_pays_off(model_info.device)
    try:
        results = (
            threaded_results() if overlap else _sequential_results(service, path, seg, options, batch_size, cancel)
        )
        for frame, pred in results:
            kp = pred.key_points
            if tracker is not None:
                kp = tracker.update(kp, frame.timestamp)
            if smoother is not None:
                kp = smoother.update(kp, frame.timestamp)
            shown = apply_keypoint_threshold(kp, float(options.keypoint_threshold))
            job = pool.submit(render_frame, frame.rgb, shown, schema, views, options.layout) if pool else None
            pending.append((job, frame, shown, pred))
            while len(pending) > window:
                emit(*pending.popleft())
        while pending:
            emit(*pending.popleft())
        if not rows:
            raise ValueError("The selected range contains no frames.")
        if cancel.is_set():
            raise VideoCancelled("Cancelled: no output was produced.")
        _stop_threads(stop, threads, [frames_q, results_q])
        video_path = writer.finish(path if info.has_audio else None, seg.start, seg.end)
        files = [video_path, *exporter.finish()]
        published = True
    finally:
        _stop_threads(stop, threads, [frames_q, results_q])
        pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if not published:
            writer.abort()
            exporter.abort()
    elapsed = time.perf_counter() - t0
    notes = []
    if info.rotation:
        notes.append(f"Rotated {info.rotation}° as the clip's metadata asks.")
    if writer.size and (writer.size[0] != info.width or writer.size[1] != info.height) and options.layout == "combined":
        notes.append(f"Padded to even size {writer.size[0]}×{writer.size[1]} (H.264 needs even dimensions).")
    return VideoResult(
        video_path=video_path,
        files=files,
        frames=pd.DataFrame(rows),
        info=info,
        output_fps=output_fps,
        output_size=writer.size or (0, 0),
        frames_done=len(rows),
        elapsed_s=elapsed,
        inference_ms=infer_ms / len(rows),
        notes=notes,
        warmup_frames=min(batch_size, len(rows)),
        warmup_s=warmup_s if len(rows) >= batch_size else last_frame_s,
        last_frame_s=last_frame_s,
    )
