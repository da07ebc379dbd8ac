"""ZeroGPU as Spaces runs it: a served clip's progress and Cancel reach a GPU worker forked before the request.

The scenario is :func:`tests.support.zerogpu_clip.run_two_clips`, run here behind ``ForkingSpaces`` and, in a
subprocess, behind the real ``spaces`` package.

``ForkingSpaces`` follows ``spaces`` 0.51.3 (``zero/wrappers.py`` ``regular_function_wrapper``, ``zero/gradio.py``):
per decorated function, a worker process forked at the first call and reused for later ones; arguments, the
request's partial Gradio context and results cross pickled through queues; in the worker Gradio's
``Queue.set_progress``/``log_message`` are replaced by messages to the main process, which applies them to the
real queue.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gradio.context import LocalContext
from gradio.helpers import TrackedIterable
from gradio.queueing import Queue

from rfdetr_demo.models import zerogpu
from rfdetr_demo.ui.cancel import CancelToken
from tests.support.zerogpu_clip import CANCEL_AT, CLIP_FRAMES, run_two_clips

REPO = Path(__file__).resolve().parent.parent

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


def _check(out: dict[str, Any], leases: list[Any], forks: int) -> None:
    assert out["first_clip_frames"] == 4
    frames = [u for u in out["progress"] if u["unit"] == "frames"]
    assert frames and frames[0]["length"] == CLIP_FRAMES, out  # the bar counts the clip's frames ...
    indices = [u["index"] for u in frames]
    assert indices == sorted(set(indices)) and indices[-1] >= CANCEL_AT  # ... upwards
    assert any("frames/s" in u["desc"] and "s left" in u["desc"] for u in frames)  # with speed and time left
    assert out["at_cancel"] is not None and out["cancel_reply"] == "⏹️ Cancelling…"
    assert "Stopped before any output" in (out["error"] or "")  # the message an API client gets on Cancel
    assert out["after"] < CLIP_FRAMES and out["after"] - out["at_cancel"] <= 3  # stopped within a few frames
    assert len(leases) == 2  # one lease per request
    assert forks == 1  # the second request ran in the worker forked for the first


def test_progress_and_cancel_reach_a_reused_worker(forking_spaces, tmp_path):
    out = run_two_clips(tmp_path)
    _check(out, forking_spaces.leases, len(forking_spaces.forks))
    assert [name for name, _ in forking_spaces.leases] == ["_run_planned", "_run_planned"]


def test_the_real_spaces_wrapper_too(tmp_path):
    """The same through ``spaces`` 0.51.3 itself, in a process of its own (it patches torch and gradio's queue)."""
    if importlib.util.find_spec("spaces") is None:
        pytest.skip("the spaces package is not installed (requirements-dev.txt)")
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.zerogpu_clip"],
        cwd=REPO, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])  # spaces prints debug lines before it
    _check(out, out["leases"], out["forks"])


def test_a_cuda_failure_replaces_the_real_spaces_worker_and_a_user_error_does_not() -> None:
    """``spaces`` reuses a worker after a lease that returns; a sticky CUDA error must reach it as an exception."""
    if importlib.util.find_spec("spaces") is None:
        pytest.skip("the spaces package is not installed (requirements-dev.txt)")
    run = subprocess.run(
        [sys.executable, "-m", "tests.support.zerogpu_clip", "errors"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    first, after_user_error, after_cuda_error = out["pids"]
    assert after_user_error == first  # the worker survives a visitor's mistake ...
    assert after_cuda_error != first  # ... and is replaced after a CUDA failure
    user, gpu = out["errors"]
    assert user == "UserError: resolution must be a positive multiple of 24, got 100"  # type and message kept
    assert "The GPU failed during this request (CUDA error: an illegal memory access" in gpu and "try again" in gpu


def _log_progress(path: Path, cancel_at: int | None, token: CancelToken | None, done: int, total: int) -> None:
    with path.open("a") as f:
        f.write(f"{done}/{total}\n")
    if token is not None and cancel_at is not None and done >= cancel_at:
        token.set()


def test_an_evaluation_in_a_reused_worker_reports_progress_and_stops(
    forking_spaces, replay_service, coco_json, tmp_path
):
    from rfdetr_demo.evaluate.pipeline import EvaluationRequest, evaluate
    from rfdetr_demo.evaluate.runner import EvaluationCancelled, RunOptions
    from tests.conftest import COCO_DIR

    log = tmp_path / "progress"
    request = EvaluationRequest(coco_json, [COCO_DIR], options=RunOptions(resolution=288, batch_size=1))
    first = evaluate(request, replay_service, on_progress=functools.partial(_log_progress, log, None, None))
    n = len(first.images)
    assert log.read_text().splitlines()[-1] == f"{n}/{n}" and first.first.stats["AP"] > 0.9
    log.unlink()
    token = CancelToken(tmp_path / "cancel")  # made after the worker forked
    report = functools.partial(_log_progress, log, 2, token)
    with pytest.raises(EvaluationCancelled, match=f"cancelled after 2 of {n} images"):
        evaluate(request, replay_service, on_progress=report, should_stop=token.is_set)
    assert log.read_text().splitlines() == [f"0/{n}", f"1/{n}", f"2/{n}"]
    assert [name for name, _ in forking_spaces.leases] == ["predict_dataset"] * 2 and len(forking_spaces.forks) == 1
