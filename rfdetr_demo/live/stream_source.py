"""Server-side camera streams (RTSP / HTTP / local device): a reconnecting reader thread.

What may be opened, and with which FFmpeg options, is :mod:`rfdetr_demo.live.stream_policy`'s decision. The URL is
opened by PyAV (FFmpeg) into frames we decode ourselves; it is never passed to ``model.predict``, which would fetch
URLs or open paths on its own terms. What goes wrong on the network is logged, not shown: a page that echoed
"connection refused" versus "timed out" would be a port scanner.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rfdetr_demo.live.stream_policy import (
    StreamSourceError,
    StreamTarget,
    mask_credentials,
    parse_allow_hosts,
    validate_stream_url,
)

__all__ = [
    "FrameIterator", "ReaderStatus", "StreamReader", "StreamSourceError", "StreamTarget", "mask_credentials",
    "parse_allow_hosts", "validate_stream_url",
]  # fmt: skip

log = logging.getLogger(__name__)


# -- reader --------------------------------------------------------------------------------------------------------
FrameSink = Callable[[np.ndarray], None]
Opener = Callable[[StreamTarget, float], "FrameIterator"]


class FrameIterator:
    """Decoded RGB frames from one connection; ``close`` ends it. The default uses PyAV (FFmpeg)."""

    def __init__(self, target: StreamTarget, timeout_s: float) -> None:
        import av

        kwargs: dict = {"options": dict(target.options), "timeout": (timeout_s, timeout_s)}
        if target.kind == "device":
            kwargs["format"] = "v4l2"
        try:
            self._container = av.open(target.url, **kwargs)
        except Exception as exc:
            raise StreamSourceError(f"Could not open {target.display}.") from exc
        if not self._container.streams.video:
            self._container.close()
            raise StreamSourceError(f"{target.display} has no video stream.")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def __iter__(self):
        for frame in self._container.decode(self._stream):
            t = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
            yield frame.to_ndarray(format="rgb24"), t

    def close(self) -> None:
        try:
            self._container.close()
        except Exception:  # closing a half-broken connection may fail; nothing to do about it
            log.debug("closing stream failed", exc_info=True)


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 300 else text[:300] + "…"


@dataclass(frozen=True)
class ReaderStatus:
    state: str  # "connecting" | "streaming" | "reconnecting" | "failed" | "stopped"
    message: str
    frames: int
    reconnects: int


class StreamReader:
    """Reads a stream in a daemon thread, handing each decoded frame to ``sink`` (e.g. ``LatestFrame.offer``).

    Drops and ends of stream trigger a reconnect with exponential backoff (``backoff_s`` doubling up to
    ``max_backoff_s``); after ``max_failures`` consecutive failures without a frame it gives up with a message.
    Frames carrying timestamps are paced to real time, so a file served over HTTP does not decode as fast as the
    CPU allows only for most frames to be dropped.
    """

    def __init__(
        self,
        target: StreamTarget,
        sink: FrameSink,
        *,
        opener: Opener = FrameIterator,
        timeout_s: float = 10.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_failures: int = 5,
        pace: bool = True,
    ) -> None:
        self.target = target
        self._sink = sink
        self._opener = opener
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_failures = max_failures
        self._pace = pace
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state, self._message = "connecting", f"Connecting to {target.display}…"
        self._frames = 0
        self._reconnects = 0
        self._thread = threading.Thread(target=self._run, name="stream-reader", daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        return self

    def stop(self, join_timeout: float = 2.0) -> None:
        # The reader thread closes its own connection: closing an FFmpeg container from another thread while it
        # decodes crashes the process. It notices the flag after the current frame or the read timeout.
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join_timeout)
        self._set("stopped", "Stopped.")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def status(self) -> ReaderStatus:
        with self._lock:
            return ReaderStatus(self._state, self._message, self._frames, self._reconnects)

    def _set(self, state: str, message: str) -> None:
        with self._lock:
            if self._state == "stopped":
                return
            self._state, self._message = state, message

    def _run(self) -> None:
        failures = 0
        delay = self._backoff_s
        while not self._stop.is_set():
            got_frame = False
            error = ""
            try:
                frames = self._opener(self.target, self._timeout_s)
                try:
                    got_frame = self._pump(frames)
                finally:
                    frames.close()
                error = "the stream ended"
            except Exception as exc:  # noqa: BLE001 - any decoder/network failure means: reconnect
                error = _short(exc.__cause__ or exc)  # FFmpeg's own words, for the log
            if self._stop.is_set():
                break
            log.info("stream %s: %s", self.target.display, error)  # the detail for the operator, not the page
            if got_frame:
                failures, delay = 0, self._backoff_s
            failures += 1
            if failures >= self._max_failures:
                self._set(
                    "failed",
                    f"Could not read {self.target.display} after {failures} attempts. "
                    "Check the URL, that the camera is reachable from the server, and its credentials.",
                )
                return
            with self._lock:
                self._reconnects += 1
            self._set("reconnecting", f"Connection lost; reconnecting in {delay:.1f} s…")
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._max_backoff_s)

    def _pump(self, frames: FrameIterator) -> bool:
        got = False
        t0_wall: float | None = None
        t0_pts: float | None = None
        for rgb, pts in frames:
            if self._stop.is_set():
                break
            if self._pace and pts is not None:
                if t0_wall is None or t0_pts is None or pts < t0_pts:
                    t0_wall, t0_pts = time.perf_counter(), pts
                wait = (pts - t0_pts) - (time.perf_counter() - t0_wall)
                if wait > 0 and self._stop.wait(min(wait, 1.0)):
                    break
            self._sink(rgb)
            with self._lock:
                self._frames += 1
            if not got:
                got = True
                self._set("streaming", f"Streaming from {self.target.display}.")
        return got
