"""One viewer watching one server-side stream: reader thread → latest-frame slot → annotated frames.

Kept free of Gradio so the whole path (URL policy, reconnects, dropping, annotation) is tested without a browser.
The UI iterates :meth:`SourceSession.updates` in a generator event; a registry keyed by the browser session lets the
Stop button and option changes reach the running loop (a Gradio generator only sees its inputs once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rfdetr_demo.live.frame_handler import FrameHandler, FrameOptions, FrameResult
from rfdetr_demo.live.stream_source import ReaderStatus, StreamReader, StreamSourceError, StreamTarget
from rfdetr_demo.models.service import ModelService

# A stream-source viewer holds a queue slot while it runs; after this long it ends and must be restarted.
DEFAULT_MAX_SECONDS = 600.0
# A reader whose viewer stopped asking for frames this long ago (page closed) shuts itself down.
DEFAULT_IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SourceUpdate:
    result: FrameResult | None  # None: no new frame yet (connecting / reconnecting)
    status: ReaderStatus


class SourceSession:
    def __init__(
        self,
        service: ModelService,
        target: StreamTarget,
        options: FrameOptions,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        **reader_kwargs: Any,
    ) -> None:
        self.handler = FrameHandler(service)
        self.options = options
        self.idle_timeout_s = idle_timeout_s
        self._last_poll = time.monotonic()
        self.reader = StreamReader(target, self._offer, **reader_kwargs)
        self._stopped = threading.Event()

    def _offer(self, frame: Any) -> None:
        """Reader-thread sink. If nobody has asked for frames for a while (the page was closed without Stop and
        the generator was abandoned), stop reading instead of holding a camera connection open forever."""
        if time.monotonic() - self._last_poll > self.idle_timeout_s:
            self._stopped.set()
            self.reader.stop()
            return
        self.handler.submit(frame)

    def start(self) -> SourceSession:
        self.reader.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.reader.stop()
        self.handler.slot.close()

    def updates(self, max_seconds: float = DEFAULT_MAX_SECONDS, poll_s: float = 0.5) -> Iterator[SourceUpdate]:
        """Annotated frames as they can be processed; ends on stop or time-out, raises on a final failure."""
        deadline = time.monotonic() + max_seconds
        try:
            while not self._stopped.is_set() and time.monotonic() < deadline:
                status = self.reader.status()
                if status.state == "failed":
                    raise StreamSourceError(status.message)
                if status.state == "stopped":
                    return
                self._last_poll = time.monotonic()
                result = self.handler.process_latest(self.options, timeout=poll_s)
                self._last_poll = time.monotonic()
                yield SourceUpdate(result, self.reader.status())
        finally:
            self.stop()


class SourceRegistry:
    """At most one running source per browser session; starting another stops the previous one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SourceSession] = {}

    def start(self, key: str, session: SourceSession) -> SourceSession:
        with self._lock:
            old = self._sessions.get(key)
            self._sessions[key] = session
        if old is not None:
            old.stop()
        return session.start()

    def get(self, key: str) -> SourceSession | None:
        with self._lock:
            return self._sessions.get(key)

    def stop(self, key: str) -> bool:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is None:
            return False
        session.stop()
        return True

    def discard(self, key: str, session: SourceSession) -> None:
        with self._lock:
            if self._sessions.get(key) is session:
                del self._sessions[key]
