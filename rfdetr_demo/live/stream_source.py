"""Server-side camera streams (RTSP / HTTP / local device): URL policy and a reconnecting reader thread.

Why so careful: reading a stream makes *the server* open a network connection to an address a page visitor typed.
That is server-side request forgery (SSRF): a visitor could make the server talk to internal services or a cloud
metadata endpoint. So the feature is off unless the operator enables it (``--enable-stream-source``), an optional
allow-list pins the hosts, link-local addresses (cloud metadata) are refused unless allow-listed, only video
schemes are accepted, and local capture devices need an explicit ``device`` entry in the allow-list.

The URL is opened by PyAV (FFmpeg) into frames we decode ourselves; it is never passed to ``model.predict``, which
would fetch URLs or open paths on its own terms.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from rfdetr_demo.errors import UserError

log = logging.getLogger(__name__)

NETWORK_SCHEMES: frozenset[str] = frozenset({"rtsp", "rtsps", "http", "https"})
DEVICE_ALLOW_ENTRY = "device"  # allow-list entry that permits local capture devices
_DEVICE_RE = re.compile(r"^(?:/dev/video(\d{1,2})|device:(\d{1,2}))$")
MAX_URL_LENGTH = 2048


class StreamSourceError(UserError):
    """A user-facing reason why a stream URL is refused or cannot be read."""


@dataclass(frozen=True)
class StreamTarget:
    """A validated source: either a network URL or a local capture device."""

    url: str  # what is opened (a URL, or /dev/videoN)
    kind: str  # "network" | "device"
    host: str | None = None
    display: str = ""  # the URL with any password masked, safe to show and log


def parse_allow_hosts(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'cam1.lan, 10.0.0.5:554 ,device' -> ('cam1.lan', '10.0.0.5:554', 'device') (lower-cased, no blanks)."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(i.strip().lower() for i in items if i and i.strip()))


def mask_credentials(url: str) -> str:
    """Hide a password in ``scheme://user:password@host`` so it never reaches the page or the logs."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _is_link_local(host: str) -> bool:
    """True when ``host`` is or resolves to a link-local address (169.254.0.0/16, fe80::/10: cloud metadata)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False  # unresolvable: the reader will report the failure
    for info in infos:
        try:
            if ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_link_local:
                return True
        except ValueError:
            continue
    return False


def validate_stream_url(url: str, enabled: bool, allow_hosts: str | Sequence[str] | None = "") -> StreamTarget:
    """Check a user-typed source against the server's policy; raise :class:`StreamSourceError` with the reason."""
    if not enabled:
        raise StreamSourceError(
            "Stream sources are disabled on this server: reading a camera URL makes the server open network "
            "connections. The operator can enable them with --enable-stream-source "
            "(RFDETR_DEMO_ENABLE_STREAM_SOURCE=1), ideally with --stream-allow-hosts."
        )
    text = (url or "").strip()
    if not text:
        raise StreamSourceError("Please enter a stream URL, e.g. rtsp://camera.local:554/stream.")
    if len(text) > MAX_URL_LENGTH or any(ord(c) < 32 or c.isspace() for c in text):
        raise StreamSourceError("The URL is too long or contains spaces or control characters.")
    allowed = parse_allow_hosts(allow_hosts)

    device = _DEVICE_RE.match(text)
    if device:
        if DEVICE_ALLOW_ENTRY not in allowed:
            raise StreamSourceError(
                "Local capture devices are not allowed on this server (the operator must add "
                f"'{DEVICE_ALLOW_ENTRY}' to --stream-allow-hosts)."
            )
        index = device.group(1) or device.group(2)
        return StreamTarget(f"/dev/video{int(index)}", "device", None, f"/dev/video{int(index)}")

    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        raise StreamSourceError(
            f"Unsupported scheme '{parts.scheme or '(none)'}': use one of {', '.join(sorted(NETWORK_SCHEMES))}."
        )
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise StreamSourceError(f"The URL is malformed ({exc}).") from exc
    if not host:
        raise StreamSourceError("The URL has no host name.")
    display = mask_credentials(text)
    host_port = f"{host}:{port}" if port is not None else host
    if allowed and host not in allowed and host_port not in allowed:
        raise StreamSourceError(f"Host '{host}' is not in this server's allow-list ({', '.join(a for a in allowed)}).")
    if host not in allowed and host_port not in allowed and _is_link_local(host):
        raise StreamSourceError(f"Host '{host}' is a link-local address (e.g. cloud metadata) and is refused.")
    return StreamTarget(text, "network", host, display)


# -- reader --------------------------------------------------------------------------------------------------------
FrameSink = Callable[[np.ndarray], None]
Opener = Callable[[StreamTarget, float], "FrameIterator"]


class FrameIterator:
    """Decoded RGB frames from one connection; ``close`` ends it. The default uses PyAV (FFmpeg)."""

    def __init__(self, target: StreamTarget, timeout_s: float) -> None:
        import av

        options = {"rtsp_transport": "tcp"} if target.url.startswith("rtsp") else {}
        kwargs: dict = {"options": options, "timeout": (timeout_s, timeout_s)}
        if target.kind == "device":
            kwargs["format"] = "v4l2"
        try:
            self._container = av.open(target.url, **kwargs)
        except Exception as exc:
            raise StreamSourceError(f"Could not open {target.display}: {_short(exc)}") from exc
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
                error = _short(exc)
            if self._stop.is_set():
                break
            if got_frame:
                failures, delay = 0, self._backoff_s
            failures += 1
            if failures >= self._max_failures:
                self._set(
                    "failed",
                    f"Could not read {self.target.display} after {failures} attempts ({error}). "
                    "Check the URL, that the camera is reachable from the server, and its credentials.",
                )
                return
            with self._lock:
                self._reconnects += 1
            self._set("reconnecting", f"Connection lost ({error}); reconnecting in {delay:.1f} s…")
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
