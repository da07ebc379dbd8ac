"""Cancel for long runs (video, evaluation): a per-session registry of marker-file tokens a GPU worker can see."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from rfdetr_demo.ui.handlers import session_id


@dataclass(frozen=True)
class CancelToken:
    """A run's cancel flag as a marker file: it pickles, so a GPU worker forked before the request sees it too."""

    path: Path

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a tmp cleaner may have removed an idle folder
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()


@functools.cache
def _cancel_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rfdetr-demo-cancel-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class CancelRegistry:
    """A tab's runs in progress, per session: its Cancel button and a closed page stop that session's runs only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, set[CancelToken]] = defaultdict(set)

    @contextmanager
    def running(self, request: gr.Request | None) -> Iterator[CancelToken]:
        """The token a run polls (set by :meth:`cancel`), registered while the run lasts."""
        session, token = session_id(request), CancelToken(_cancel_dir() / uuid.uuid4().hex)
        with self._lock:
            self._tokens[session].add(token)
        try:
            yield token
        finally:
            with self._lock:
                self._tokens[session].discard(token)
                if not self._tokens[session]:
                    del self._tokens[session]
                token.path.unlink(missing_ok=True)

    def cancel(self, request: gr.Request | None) -> int:
        """Ask the session's runs to stop; how many there were."""
        with self._lock:
            tokens = list(self._tokens.get(session_id(request), ()))
            for token in tokens:
                token.set()
        return len(tokens)

    def cancel_on_unload(self, request: gr.Request) -> None:
        """For ``Blocks.unload``: a closed or reloaded page stops its runs, so they do not hold the model."""
        self.cancel(request)
