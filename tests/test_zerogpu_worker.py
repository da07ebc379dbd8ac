"""ZeroGPU as Spaces runs it: a served clip's progress and Cancel reach a GPU worker forked before the request.

``ForkingSpaces`` follows ``spaces`` 0.51.3 (``zero/wrappers.py`` ``regular_function_wrapper``, ``zero/gradio.py``):
per decorated function, a worker process forked at the first call and reused for later ones; arguments, the
request's partial Gradio context and results cross pickled through queues; in the worker Gradio's
``Queue.set_progress``/``log_message`` are replaced by messages to the main process, which applies them to the
real queue.
"""

from __future__ import annotations

import contextvars
import multiprocessing
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import supervision as sv
from gradio.context import LocalContext
from gradio.helpers import TrackedIterable
from gradio.queueing import Queue

from rfdetr_demo import zerogpu
from rfdetr_demo.config import Settings
from rfdetr_demo.ui import video_tab
from rfdetr_demo.ui.app import build_demo
from tests.conftest import make_replay_service
from tests.helpers import free_port
from tests.support.replay import ReplayPredictor
from tests.video_helpers import make_clip

QUEUE_RPC_METHODS = ("set_progress", "log_message")
_fork = multiprocessing.get_context("fork")
_forked = False  # True in a worker, as `spaces.zero.wrappers.forked`


def _tracked_iterable_reduce(self: TrackedIterable) -> Any:
    """What spaces sets as ``TrackedIterable.__reduce__``: the iterator and tqdm bar stay behind."""
    cls, base, state, *_ = super(TrackedIterable, self).__reduce__()  # type: ignore[misc]
    return cls, base, {**state, "iterable": None, "_tqdm": None}


def _partial_context() -> tuple[Any, ...]:
    TrackedIterable.__reduce__ = _tracked_iterable_reduce  # type: ignore[method-assign]
    return LocalContext.event_id.get(None), LocalContext.in_event_listener.get(False), LocalContext.progress.get(None)


def _serve(task: Any, arg_queue: Any, res_queue: Any) -> None:
    """The worker's loop (spaces' ``thread_wrapper`` + ``worker_init`` without the GPU part)."""
    global _forked
    _forked = True

    def rpc(name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> None:
            if args and isinstance(args[0], Queue):
                args = args[1:]
            res_queue.put(("queue", (name, args, kwargs)))

        return method

    for name in QUEUE_RPC_METHODS:
        setattr(Queue, name, rpc(name))
    TrackedIterable.__reduce__ = _tracked_iterable_reduce  # type: ignore[method-assign]
    while True:
        (args, kwargs), (event_id, in_listener, progress) = arg_queue.get()

        def run_task(args: tuple, kwargs: dict) -> None:
            try:
                res_queue.put(("ok", task(*args, **kwargs)))
            except Exception as exc:  # noqa: BLE001 - as spaces: only the class name crosses
                res_queue.put(("error", type(exc).__name__))

        LocalContext.event_id.set(event_id)
        LocalContext.in_event_listener.set(in_listener)
        LocalContext.progress.set(progress)
        context = contextvars.copy_context()
        with ThreadPoolExecutor() as executor:
            executor.submit(context.run, run_task, args, kwargs).result()


class ForkingSpaces(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("spaces")
        self.leases: list[tuple[str, int]] = []
        self.forks: list[Any] = []  # every worker process started

    def GPU(self, func: Any = None, *, duration: Any = 60) -> Any:  # mirrors spaces.GPU
        def decorate(task: Any) -> Any:
            idle: list[tuple[Any, Any, Any]] = []  # (process, arg queue, result queue), as spaces' `workers`

            def handler(*args: Any, **kwargs: Any) -> Any:
                if _forked:
                    return task(*args, **kwargs)
                self.leases.append((task.__name__, duration(*args, **kwargs) if callable(duration) else duration))
                worker = idle.pop() if idle and idle[-1][0].is_alive() else None
                if worker is None:
                    arg_queue, res_queue = _fork.SimpleQueue(), _fork.SimpleQueue()
                    process = _fork.Process(target=_serve, args=(task, arg_queue, res_queue), daemon=True)
                    process.start()  # forked from this request's thread, as spaces does
                    self.forks.append(process)
                    worker = (process, arg_queue, res_queue)
                worker[1].put(((args, kwargs), _partial_context()))
                while True:
                    kind, value = worker[2].get()
                    if kind == "queue":  # spaces' try_process_queue_event
                        name, rpc_args, rpc_kwargs = value
                        getattr(LocalContext.blocks.get()._queue, name)(*rpc_args, **rpc_kwargs)
                        continue
                    if kind == "error":
                        raise RuntimeError(f"ZeroGPU worker error: {value}")
                    idle.append(worker)
                    return value

            return handler

        return decorate(func) if func is not None else decorate


@pytest.fixture()
def forking_spaces(monkeypatch: pytest.MonkeyPatch):
    fake = ForkingSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    zerogpu.rebuild_leases()
    yield fake
    for process in fake.forks:
        process.kill()
        process.join(5)
    monkeypatch.undo()
    zerogpu.rebuild_leases()


def _counting_predictor(counter: Path) -> ReplayPredictor:
    """0.05 s per frame, each frame seen counted in a file (the worker's own counters stay in the worker)."""

    def slow(img: np.ndarray) -> sv.KeyPoints:
        time.sleep(0.05)
        with counter.open("a") as f:
            f.write(".")
        return sv.KeyPoints.empty()

    return ReplayPredictor(slow)


def _frames_seen(counter: Path) -> int:
    return len(counter.read_text()) if counter.exists() else 0


def test_progress_and_cancel_reach_a_reused_worker(forking_spaces, tmp_path):
    from types import SimpleNamespace

    from gradio_client import Client, handle_file

    counter = tmp_path / "frames_seen"
    service = make_replay_service(_counting_predictor(counter))
    demo = build_demo(Settings(resolution=288), service)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        short, long = (
            make_clip(tmp_path / "short.mp4", 4, size=(64, 48)),
            make_clip(tmp_path / "long.mp4", 60, size=(64, 48)),
        )
        args = {"resolution": 288, "keyframes": "1", "api_name": "/predict_video"}  # the model on every frame
        client.predict(video=handle_file(str(short)), **args)  # forks the worker
        assert len(forking_spaces.forks) == 1 and _frames_seen(counter) == 4
        job = client.submit(video=handle_file(str(long)), **args)  # its progress object and token are made now
        seen: list[Any] = []
        at_cancel = None
        deadline = time.monotonic() + 60
        while not job.done() and time.monotonic() < deadline:
            units = job.status().progress_data or []
            if units and (not seen or units[0] != seen[-1]):
                seen.append(units[0])
            if at_cancel is None and seen and (seen[-1].index or 0) >= 8:
                at_cancel = _frames_seen(counter) - 4
                assert video_tab.cancel_runs(SimpleNamespace(session_hash=client.session_hash)) == "⏹️ Cancelling…"
            time.sleep(0.02)
        assert at_cancel is not None, f"no progress reached the page: {seen}"
        with pytest.raises(Exception, match="Cancelled"):
            job.result(timeout=30)
        time.sleep(0.3)
        after = _frames_seen(counter) - 4
    finally:
        demo.close()
    frames = [u for u in seen if u.unit == "frames"]
    assert frames and frames[0].length == 60  # the bar counts the clip's frames ...
    assert [u.index for u in frames] == sorted({u.index for u in frames}) and frames[-1].index >= 8  # ... upwards
    assert any("frames/s" in (u.desc or "") and "s left" in (u.desc or "") for u in frames)  # speed, time left
    assert after < 60 and after - at_cancel <= 3  # the lease stopped within a few frames
    assert [name for name, _ in forking_spaces.leases] == ["_run_planned", "_run_planned"]  # one lease per request
    assert len(forking_spaces.forks) == 1  # the second request ran in the worker forked for the first
