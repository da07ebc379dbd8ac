"""One live frame in, one annotated frame out, without a growing backlog.

Mirrored webcam frames are flipped back before inference (a mirrored person's left arm reads as ``right_*``) and the
drawing is mirrored afterwards with its coordinates; :class:`LatestFrame` keeps only the newest frame so the delay
cannot grow; :class:`LiveStats` tells the viewer whether they see "live"; each viewer has its own tracker and causal
smoother. A frame never raises: in Gradio an exception ends the ``.stream()`` event.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from PIL import Image

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.errors import UserError
from rfdetr_demo.models.service import ModelService, ModelUnavailable
from rfdetr_demo.results.prediction import Prediction, with_arrays
from rfdetr_demo.results.render import LAYOUT_GRID, normalize_views, render
from rfdetr_demo.temporal.stages import LiveChain

Clock = Callable[[], float]

# Live frames bigger than this (long side) are downscaled first: the model sees ~288-576 px anyway, and drawing and
# JPEG-encoding several 1080p views per frame would cost more than inference.
DEFAULT_LIVE_MAX_SIDE = 960


# -- geometry ------------------------------------------------------------------------------------------------------
def unmirror(frame: np.ndarray) -> np.ndarray:
    """Flip a mirrored (selfie-view) frame back to what the camera saw."""
    return np.ascontiguousarray(frame[:, ::-1])


def mirror_keypoints(key_points: sv.KeyPoints, width: int) -> sv.KeyPoints:
    """Reflect coordinates, boxes and covariance horizontally, keeping every joint's *name*.

    Used to draw on a mirrored display: ``left_wrist`` is still the person's left wrist, it just appears where the
    mirror shows it. Columns are never swapped.
    """
    data = dict(key_points.data)
    if "xyxy" in data and data["xyxy"] is not None:
        b = np.asarray(data["xyxy"], dtype=np.float32).reshape(-1, 4)
        data["xyxy"] = np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1).astype(np.float32)
    if "covariance" in data and data["covariance"] is not None:
        cov = np.array(data["covariance"], dtype=np.float32, copy=True)
        if cov.ndim >= 2 and cov.shape[-2:] == (2, 2):
            cov[..., 0, 1] *= -1.0
            cov[..., 1, 0] *= -1.0
        data["covariance"] = cov
    xy = np.array(key_points.xy, dtype=np.float32, copy=True)
    xy[..., 0] = width - xy[..., 0]
    return with_arrays(key_points, xy=xy, data=data)


def fit_max_side(frame: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so the long side is at most ``max_side``."""
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def as_rgb_uint8(frame: np.ndarray) -> np.ndarray:
    """Accept what browsers and decoders send (gray, RGBA, RGB) and return RGB uint8 (H, W, 3)."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"expected an RGB image, got an array of shape {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


# -- latest-frame-wins slot ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfferedFrame:
    frame: np.ndarray
    offered_at: float  # clock time when the frame entered the slot (start of its end-to-end latency)
    seq: int  # 0-based number of the frame among all offered


class LatestFrame:
    """A one-frame mailbox: producers overwrite, the consumer takes the newest; overwritten frames are dropped.

    Thread-safe. This is the whole anti-backlog policy: whatever the camera rate, at most one frame waits.
    """

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._item: OfferedFrame | None = None
        self._closed = False
        self.offered = 0
        self.taken = 0
        self.dropped = 0

    def offer(self, frame: np.ndarray, offered_at: float | None = None) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = OfferedFrame(frame, self._clock() if offered_at is None else offered_at, self.offered)
            self.offered += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> OfferedFrame | None:
        """The newest frame (removing it), waiting up to ``timeout``; None on timeout or when closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            item, self._item = self._item, None
            if item is not None:
                self.taken += 1
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


# -- timing --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameTiming:
    done_at: float
    model_ms: float
    render_ms: float
    e2e_ms: float


@dataclass(frozen=True)
class StatsSnapshot:
    frames: int  # frames completed in total
    dropped: int  # frames skipped in total (latest-frame-wins)
    fps: float  # completed frames per second over the window
    model_ms: float  # median over the window
    render_ms: float
    e2e_ms: float  # median end-to-end (frame offered -> annotated frame ready)
    e2e_p95_ms: float

    def markdown(self) -> str:
        if self.frames == 0:
            return "Waiting for frames…"
        return (
            f"**{self.fps:.1f} fps** · model **{self.model_ms:.0f} ms** · end-to-end **{self.e2e_ms:.0f} ms** "
            f"(p95 {self.e2e_p95_ms:.0f}) · drawing {self.render_ms:.0f} ms · {self.frames} frames"
            # The browser sends the next frame only when the last one is answered, so at a low rate the camera's
            # other frames never reach the server: "0 skipped" would suggest every frame was processed.
            + (f", {self.dropped} stale frames skipped" if self.dropped else "")
        )


class LiveStats:
    """Rolling timing window (the last ``window_s`` seconds, at most ``max_items`` frames)."""

    def __init__(self, window_s: float = 5.0, max_items: int = 300, clock: Clock = time.perf_counter) -> None:
        self.window_s = window_s
        self._clock = clock
        self._items: deque[FrameTiming] = deque(maxlen=max_items)
        self._lock = threading.Lock()
        self.frames = 0
        self.dropped = 0

    def record(self, model_ms: float, render_ms: float, e2e_ms: float, done_at: float | None = None) -> None:
        with self._lock:
            self._items.append(FrameTiming(self._clock() if done_at is None else done_at, model_ms, render_ms, e2e_ms))
            self.frames += 1

    def record_dropped(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def snapshot(self, now: float | None = None) -> StatsSnapshot:
        with self._lock:
            now = self._clock() if now is None else now
            recent = [t for t in self._items if now - t.done_at <= self.window_s]
            if len(recent) == 1 and len(self._items) >= 2:
                # A slow model (seconds per frame) still gets a rate: from the last two frames.
                recent = list(self._items)[-2:]
            frames, dropped = self.frames, self.dropped
        if not recent:
            return StatsSnapshot(frames, dropped, 0.0, 0.0, 0.0, 0.0, 0.0)
        # fps from the spacing of completed frames: n frames span n-1 intervals.
        span = recent[-1].done_at - recent[0].done_at
        fps = (len(recent) - 1) / span if len(recent) > 1 and span > 0 else 0.0
        e2e = np.array([t.e2e_ms for t in recent])
        return StatsSnapshot(
            frames=frames,
            dropped=dropped,
            fps=float(fps),
            model_ms=float(np.median([t.model_ms for t in recent])),
            render_ms=float(np.median([t.render_ms for t in recent])),
            e2e_ms=float(np.median(e2e)),
            e2e_p95_ms=float(np.percentile(e2e, 95)),
        )


# -- the handler ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameOptions:
    threshold: float = DEFAULT_THRESHOLD
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD
    resolution: int | None = None
    views: Sequence[str] = ()
    mirrored_input: bool = False  # the frame arrived as a mirror image (browser webcam with mirror=True)
    mirror_display: bool = False  # draw the result as a mirror image (labels stay readable, sides stay correct)
    max_side: int = DEFAULT_LIVE_MAX_SIDE
    smoothing: str = "off"  # "off", "one-euro" or "kalman" (causal: a live stream has no later frames)


@dataclass
class FrameResult:
    image: np.ndarray  # RGB uint8: chosen views tiled side by side
    prediction: Prediction | None  # in the un-mirrored camera frame's coordinates; None when not run
    model_ms: float
    render_ms: float
    e2e_ms: float
    message: str = ""
    notes: list[str] = field(default_factory=list)
    smooth_ms: float = 0.0  # tracking + smoothing, part of e2e_ms
    smoothed: sv.KeyPoints | None = None  # what was drawn when smoothing is on (un-mirrored coordinates)


class FrameHandler:
    """Turns live frames into annotated tiles using the shared :class:`ModelService`.

    One handler per viewer (webcam session or stream source) so its stats describe that viewer's experience.
    ``submit`` may be called from any thread; ``process_latest`` handles the newest submitted frame only.
    """

    def __init__(self, service: ModelService, clock: Clock = time.perf_counter, stats_window_s: float = 5.0) -> None:
        self.service = service
        self.clock = clock
        self.slot = LatestFrame(clock)
        self.stats = LiveStats(stats_window_s, clock=clock)
        self._dropped_reported = 0
        self._smoothing: tuple[str, LiveChain] | None = None  # (smoother name, chain) of this viewer

    # Producer side.
    def submit(self, frame: np.ndarray, offered_at: float | None = None) -> None:
        self.slot.offer(frame, offered_at)

    # Consumer side.
    def process_latest(self, options: FrameOptions, timeout: float | None = 0.0) -> FrameResult | None:
        """Process the newest submitted frame (older ones are dropped and counted); None when none is waiting."""
        item = self.slot.take(timeout)
        dropped = self.slot.dropped  # overwritten while waiting: counted at offer time, reported here
        if dropped > self._dropped_reported:
            self.stats.record_dropped(dropped - self._dropped_reported)
            self._dropped_reported = dropped
        if item is None:
            return None
        return self.process(item.frame, options, item.offered_at)

    def process(self, frame: np.ndarray, options: FrameOptions, offered_at: float | None = None) -> FrameResult:
        """Annotate one frame now. Never raises for model-not-ready; invalid options raise ``ValueError``."""
        start = self.clock() if offered_at is None else offered_at
        views = normalize_views(options.views)
        rgb = fit_max_side(as_rgb_uint8(frame), options.max_side)
        if options.mirrored_input:
            rgb = unmirror(rgb)
        status = self.service.status()
        if status.state != "ready":
            shown = unmirror(rgb) if options.mirror_display else rgb
            return FrameResult(shown, None, 0.0, 0.0, (self.clock() - start) * 1000.0, message=_not_ready(status))
        try:
            prediction = self.service.predict(rgb, threshold=options.threshold, resolution=options.resolution)
        except ModelUnavailable as exc:
            shown = unmirror(rgb) if options.mirror_display else rgb
            return FrameResult(shown, None, 0.0, 0.0, (self.clock() - start) * 1000.0, message=str(exc))
        t_smooth = self.clock()
        smoothed = self.smoothed(prediction, options, start)
        t_render = self.clock()
        image = self.render(rgb, prediction, options.keypoint_threshold, views, options.mirror_display, smoothed)
        done = self.clock()
        render_ms = (done - t_render) * 1000.0
        e2e_ms = (done - start) * 1000.0
        self.stats.record(prediction.inference_ms, render_ms, e2e_ms, done_at=done)
        smooth_ms = (t_render - t_smooth) * 1000.0
        return FrameResult(
            image, prediction, prediction.inference_ms, render_ms, e2e_ms, smooth_ms=smooth_ms, smoothed=smoothed
        )

    def smoothed(self, prediction: Prediction, options: FrameOptions, timestamp: float) -> sv.KeyPoints | None:
        """This viewer's tracked, thresholded, smoothed key points; None with smoothing off."""
        name = str(options.smoothing or "off")
        if self._smoothing is None or self._smoothing[0] != name:
            self._smoothing = (name, LiveChain(name, options.threshold))
        chain = self._smoothing[1]
        return chain.update(prediction.key_points, timestamp, options.keypoint_threshold, options.threshold)

    def render(
        self,
        rgb: np.ndarray,
        prediction: Prediction,
        keypoint_threshold: float,
        views: Sequence[str],
        mirror: bool,
        key_points: sv.KeyPoints | None = None,
    ) -> np.ndarray:
        """Draw the chosen views (from one inference; ``key_points``: smoothed ones) tiled side by side."""
        if not 0.0 <= float(keypoint_threshold) <= 1.0:
            raise UserError(f"keypoint_threshold must be within [0, 1], got {keypoint_threshold}")
        displayed = key_points if key_points is not None else prediction.displayed(float(keypoint_threshold))
        if mirror:
            rgb = unmirror(rgb)
            displayed = mirror_keypoints(displayed, rgb.shape[1])
        chosen = normalize_views(views)
        return render(rgb, displayed, prediction.schema, chosen, LAYOUT_GRID, columns=min(len(chosen), 2))[0]


def _not_ready(status: object) -> str:
    state = getattr(status, "state", "")
    message = getattr(status, "message", "")
    if state == "error":
        return f"The model could not be loaded: {message}"
    return "The model is still loading; frames are shown without annotations until it is ready."
