"""Generic stages of the video pipeline: run an iterator in a background thread, batch model calls, draw in a pool.

Each helper takes an iterator and returns one, so :func:`rfdetr_demo.video.pipeline.run_video` is a single chain
whichever way it runs: with ``overlap`` the decoder and the model each get a thread (bounded queues between them,
so memory stays flat), without it the same chain runs in the calling thread. Closing the last iterator (the run
finished, failed or was cancelled) stops every thread upstream.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Failed:
    exc: BaseException


_END = object()


def _put(q: queue.Queue, item: Any, halt: threading.Event) -> bool:
    """Bounded put that gives up when the consumer has gone (a full queue must never hang a stopped run)."""
    while not halt.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def in_background(items: Iterator[T], maxsize: int, name: str, check: Callable[[], None] = lambda: None) -> Iterator[T]:
    """The items of ``items``, produced by a daemon thread ``maxsize`` ahead; its exceptions re-raise here.

    ``check`` runs while waiting for an item (it raises to abandon the wait, e.g. on cancel).
    """
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    halt = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(q, item, halt):
                    return
            _put(q, _END, halt)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which re-raises it
            _put(q, _Failed(exc), halt)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # stops the stage upstream of this one

    # The thread runs in the caller's context: inside a ZeroGPU lease it stays in that lease (zerogpu.inside_gpu_call).
    thread = threading.Thread(target=contextvars.copy_context().run, args=(produce,), name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                check()
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        halt.set()
        while not q.empty():  # drop frame references at once
            q.get_nowait()
        thread.join(timeout=30)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, items)``, spread over ``workers`` threads (0: inline) with results in input order.

    At most ``2 * workers`` results wait in memory; ``items`` is consumed in the calling thread, so any state it
    carries across items (tracking, smoothing) stays sequential.
    """
    if workers <= 0:
        yield from map(fn, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="video-render") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                while len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for job in pending:
                job.cancel()


def overlap_pays_off(device: str) -> bool:
    """Whether running decode, inference and encode in parallel threads speeds a clip up on this host.

    On a GPU, inference leaves the CPU idle, so decoding and encoding alongside it are free. On a CPU, torch's
    OpenMP threads already occupy every core during inference; work in other threads then only preempts them, and
    OpenMP stalls at each barrier waiting for a descheduled thread. Measured on 2 cores (``bench/bench_video.py``):
    the threaded pipeline ran at 0.83x a plain sequential loop, while the same stages in one thread ran at 0.94x.
    """
    import torch

    if not device.startswith("cpu"):
        return True
    return torch.get_num_threads() < (os.cpu_count() or 1)
