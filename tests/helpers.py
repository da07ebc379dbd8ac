"""Small helpers shared by the server and browser tests: a free loopback port and Chromium's launch settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

# Debian's chromium (apt-get install chromium); Playwright's own browser download is not available offline. Found
# the way .ci/run finds it: CHROMIUM_PATH, else `command -v chromium`.
CHROMIUM = (
    os.environ.get("CHROMIUM_PATH")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
# Without the background-networking flags Chromium keeps trying (and failing) to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_replay_app(coco_json, settings=None, predictor=None) -> Iterator[tuple[str, object]]:
    """The real Blocks app, launched on loopback with the app's own queue and launch settings, around the replay model.

    Yields ``(url, predictor)``; the predictor's ``calls`` tell whether a UI action ran the model. ``predictor``: a
    replay predictor prepared by the test (e.g. one held behind a gate); default, a fresh one on ``coco_json``.
    """
    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs
    from rfdetr_demo.config import Settings
    from tests.conftest import make_replay_service
    from tests.support.replay import ReplayPredictor

    predictor = predictor or ReplayPredictor.from_coco(coco_json)
    settings = replace(settings or Settings(), port=free_port())
    service = make_replay_service(predictor)
    demo = create_app(settings, service=service)
    configure_queue(demo, settings)
    kwargs = {k: v for k, v in launch_kwargs(settings, service).items() if k != "share"}
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield f"http://127.0.0.1:{settings.port}/", predictor
    finally:
        demo.close()


def run_concurrently(fn: Callable[[], object], n: int, timeout_s: float) -> tuple[list[object], list[BaseException]]:
    """Call ``fn`` from ``n`` threads at once; return what they returned and what they raised."""
    results: list[object] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed back to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return results, errors
