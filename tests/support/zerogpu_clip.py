"""Two clips through the served app on (fake or real) ZeroGPU: the first forks the lease's worker, the second runs
in that worker, shows progress on the client and is cancelled. Run as a module it drives the real ``spaces`` package
(its GPU scheduler client and CUDA set-up replaced; importable ``spaces`` needed) and prints the outcome as JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import supervision as sv

CLIP_FRAMES = 60
CANCEL_AT = 8  # frames through the model when the test presses Cancel


def _counting_predictor(counter: Path) -> Any:
    """0.05 s per frame, each frame counted in a file (a worker's own counters stay in the worker)."""
    from tests.support.replay import ReplayPredictor

    def slow(img: np.ndarray) -> sv.KeyPoints:
        time.sleep(0.05)
        with counter.open("a") as f:
            f.write(".")
        return sv.KeyPoints.empty()

    return ReplayPredictor(slow)


def _frames_seen(counter: Path) -> int:
    return len(counter.read_text()) if counter.exists() else 0


def run_two_clips(tmp: Path) -> dict[str, Any]:
    """Serve the app, run a 4-frame clip, then a long one cancelled after :data:`CANCEL_AT` frames; what was seen."""
    from gradio_client import Client, handle_file

    from rfdetr_demo.config import Settings
    from rfdetr_demo.ui import video_tab
    from rfdetr_demo.ui.app import build_demo
    from tests.conftest import make_replay_service
    from tests.helpers import free_port
    from tests.video_helpers import make_clip

    counter = tmp / "frames_seen"
    demo = build_demo(Settings(resolution=288), make_replay_service(_counting_predictor(counter)))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    out: dict[str, Any] = {"progress": [], "at_cancel": None, "error": None}
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = {"resolution": 288, "keyframes": "1", "api_name": "/predict_video"}  # the model on every frame
        client.predict(video=handle_file(str(make_clip(tmp / "short.mp4", 4, size=(64, 48)))), **args)
        out["first_clip_frames"] = _frames_seen(counter)
        long = make_clip(tmp / "long.mp4", CLIP_FRAMES, size=(64, 48))
        job = client.submit(video=handle_file(str(long)), **args)  # its progress object and token are made now
        deadline = time.monotonic() + 60
        while not job.done() and time.monotonic() < deadline:
            units = [u.__dict__ for u in job.status().progress_data or []]
            if units and (not out["progress"] or units[0] != out["progress"][-1]):
                out["progress"].append(units[0])
            if out["at_cancel"] is None and out["progress"] and (out["progress"][-1]["index"] or 0) >= CANCEL_AT:
                out["at_cancel"] = _frames_seen(counter) - out["first_clip_frames"]
                out["cancel_reply"] = video_tab.cancel_runs(SimpleNamespace(session_hash=client.session_hash))
            time.sleep(0.02)
        try:
            job.result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - the outcome is reported, the caller asserts
            out["error"] = str(exc)
        time.sleep(0.3)
        out["after"] = _frames_seen(counter) - out["first_clip_frames"]
    finally:
        demo.close()
    return out


def _real_spaces_without_a_gpu() -> tuple[list[float], list[int]]:
    """Import the real ``spaces`` with its network client and CUDA steps replaced (nothing else): the lease
    durations asked for and one entry per worker forked, as they happen."""
    import os

    os.environ.update(SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL="http://127.0.0.1:9/")
    import spaces  # noqa: F401 - first, as on a Space: it patches torch
    from spaces.zero import client, wrappers
    from spaces.zero import torch as zero_torch
    from spaces.zero.api import ScheduleResponse

    leases: list[float] = []
    forks: list[int] = []

    def schedule(task_id: int, request: Any = None, duration: Any = None, gpu_size: Any = None) -> ScheduleResponse:
        leases.append(duration.total_seconds())
        return ScheduleResponse(idle=True, nvidiaIndex=0, nvidiaUUID="GPU-fake", allowToken="token")

    class CountedWorker(wrappers.Worker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            forks.append(1)
            super().__init__(*args, **kwargs)

    client.schedule, client.release, client.allow = schedule, lambda *a, **k: None, lambda *a, **k: None
    client.startup_report = lambda: None
    for name in ("init", "move", "unpatch"):
        setattr(zero_torch, name, lambda *a, **k: None)
    zero_torch.size, zero_torch.pack = lambda: 0, lambda: 0
    wrappers.Worker = CountedWorker
    return leases, forks


def _with_real_spaces() -> dict[str, Any]:
    """The two clips behind the real ``spaces`` wrapper."""
    leases, forks = _real_spaces_without_a_gpu()
    with tempfile.TemporaryDirectory() as tmp:
        out = run_two_clips(Path(tmp))
    return {**out, "leases": leases, "forks": len(forks)}


def worker_after_errors() -> dict[str, Any]:
    """Which worker process serves each lease around a user error and a sticky CUDA error (real ``spaces``)."""
    import os

    _real_spaces_without_a_gpu()
    import torch

    from rfdetr_demo.errors import UserError
    from rfdetr_demo.models import zerogpu

    @zerogpu.gpu(5)
    def lease(what: str) -> int:
        if what == "user":
            raise UserError("resolution must be a positive multiple of 24, got 100")
        if what == "cuda":
            raise torch.AcceleratorError("CUDA error: an illegal memory access was encountered")
        return os.getpid()

    out: dict[str, Any] = {"pids": [], "errors": []}
    for what in ("ok", "user", "ok", "cuda", "ok"):
        try:
            out["pids"].append(lease(what))
        except Exception as exc:  # noqa: BLE001 - reported, the caller asserts
            out["errors"].append(f"{exc.__class__.__name__}: {exc}")
    return out


if __name__ == "__main__":
    scenario = worker_after_errors if sys.argv[1:] == ["errors"] else _with_real_spaces
    json.dump(scenario(), sys.stdout)
