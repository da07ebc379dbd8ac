"""Bounded memory and disk per visitor: the byte-budget LRU of kept runs and the temp-disk pruner (no Gradio)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from rfdetr_demo.disk import REQUEST_DIR_NAME, DiskBudget, scan_units


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the temp-disk pruner ------------------------------------------------------------------------------------------
def _unit(root: Path, name: str, size: int, age_s: float, now: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    f = folder / "data.bin"
    f.write_bytes(b"\0" * size)
    os.utime(f, (now - age_s, now - age_s))
    os.utime(folder, (now - age_s, now - age_s))
    return folder


def _budget(root: Path, max_bytes: int, clock: FakeClock, grace_s: float = 10.0) -> DiskBudget:
    return DiskBudget(max_bytes=max_bytes, max_age_s=3600, grace_s=grace_s, root=lambda: root, clock=clock)


def test_pruner_removes_old_units_then_oldest_until_within_budget(tmp_path: Path) -> None:
    now = time.time()
    clock = FakeClock(now)
    upload = _unit(tmp_path, "a" * 40, 4000, 7200, now)  # a Gradio upload folder, two hours old
    req = tmp_path / REQUEST_DIR_NAME
    oldest = _unit(req, "image_1", 3000, 600, now)
    middle = _unit(req, "video_2", 3000, 500, now)
    newest = _unit(req, "image_3", 3000, 400, now)
    assert {u.path for u in scan_units(tmp_path)} == {upload, oldest, middle, newest}

    report = _budget(tmp_path, 7500, clock).prune()  # over budget: down to the low-water mark, 0.8 × 7500 = 6000
    assert not upload.exists() and not oldest.exists()  # too old; then the oldest, to fit the budget
    assert middle.exists() and newest.exists()
    assert report.removed == 2 and report.total_bytes == 6000 and report.freed_bytes == 7000


def test_an_over_budget_prune_leaves_headroom_under_the_budget(tmp_path: Path) -> None:
    now = time.time()
    clock = FakeClock(now)
    req = tmp_path / REQUEST_DIR_NAME
    units = [_unit(req, f"image_{i}", 3000, 600 - i, now) for i in range(4)]
    assert _budget(tmp_path, 12000, clock).prune().removed == 0  # at the budget: nothing goes
    report = _budget(tmp_path, 11000, clock).prune()  # over: down to 0.8 × 11000 = 8800, not just to 11000
    assert report.removed == 2 and report.total_bytes == 6000
    assert not units[0].exists() and not units[1].exists() and units[2].exists() and units[3].exists()


def test_pruner_never_deletes_a_unit_in_use_or_just_written(tmp_path: Path) -> None:
    now = time.time()
    clock = FakeClock(now)
    req = tmp_path / REQUEST_DIR_NAME
    writing = _unit(req, "video_running", 5000, 900, now)  # a long video job, last write long ago
    shown = _unit(req, "image_shown", 5000, 5, now)  # results just returned: the visitor may click download
    stale = _unit(req, "image_stale", 5000, 800, now)
    budget = _budget(tmp_path, 1000, clock)
    with budget.in_use(writing / "data.bin"):
        report = budget.prune()
        assert writing.exists() and shown.exists() and not stale.exists()
        assert report.kept_in_use == 2 and report.total_bytes == 10000  # over budget, but nothing else may go
    clock.now += 20  # the request ended and the grace period passed
    budget.prune()
    assert not writing.exists() and not shown.exists()


def test_request_dirs_made_inside_a_request_are_held_until_it_ends(tmp_path: Path, monkeypatch) -> None:
    from rfdetr_demo import disk

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(disk.BUDGET, "grace_s", 0.0)
    monkeypatch.setattr(disk.BUDGET, "max_bytes", 0)
    with disk.BUDGET.in_use():
        folder = disk.new_request_dir("video_")
        assert folder.parent == tmp_path / REQUEST_DIR_NAME
        (folder / "out.mp4").write_bytes(b"\0" * 100)
        disk.BUDGET.prune()
        assert (folder / "out.mp4").exists()  # over a zero budget, yet still being written
    assert not disk.BUDGET.is_held(folder)
    disk.BUDGET.prune()
    assert not folder.exists()


def test_capacity_options_size_the_budgets() -> None:
    from rfdetr_demo import disk
    from rfdetr_demo.app_factory import apply_capacity
    from rfdetr_demo.config import Settings, load_settings

    defaults = Settings()
    assert defaults.max_temp_gb == disk.DEFAULT_MAX_TEMP_GB
    assert defaults.download_grace_s == disk.DEFAULT_GRACE_S
    with pytest.raises(ValueError, match="--max-temp-gb"):
        load_settings(["--max-temp-gb", "-1"], {})
    try:
        apply_capacity(load_settings(["--max-temp-gb", "0.5"], {"RFDETR_DEMO_DOWNLOAD_GRACE_S": "7"}))
        assert disk.BUDGET.max_bytes == disk.GB // 2 and disk.BUDGET.grace_s == 7.0
    finally:
        apply_capacity(defaults)


# -- the Image tab's kept runs -------------------------------------------------------------------------------------
def test_api_calls_keep_nothing_and_a_page_session_keeps_its_prediction_only(
    replay_service, coco_image_paths, coco_truth
) -> None:
    from rfdetr_demo.ui.handlers import UiContext
    from rfdetr_demo.ui.image_tab import detect, predict_image

    ctx = UiContext(replay_service)
    image_id = max(coco_truth, key=lambda i: len(coco_truth[i].key_points))  # the most people: the largest prediction
    path = str(coco_image_paths[image_id])
    out = predict_image(ctx, path, 0.5, 0.3, 576, ["Combined"])
    assert "state" not in out and "instance" in out["summary"]  # no state output: an API client keeps nothing
    kept = detect(ctx, path, 0.5, 0.3, 576, ["Combined"])["state"]
    assert kept.source_path == path and len(kept.prediction) == len(coco_truth[image_id].key_points)
    assert kept.covers(0.2) and not kept.covers(0.05)  # the model ran at the 0.1 floor
    assert kept.same_request(path, 0.5, 576) and not kept.same_request(path, 0.5, 288)
    # What gr.State holds per idle page session: no pixels (the photo alone is far more), a few KB per person.
    pixels = 640 * 480 * 3
    assert len(pickle.dumps(kept)) < min(pixels // 4, 2 * 1024 * 1024)


def test_redraw_decodes_the_held_upload_without_the_model(
    replay_service, replay_predictor, coco_image_paths, tmp_path
) -> None:
    import shutil

    import gradio as gr

    from rfdetr_demo.ui.handlers import UiContext
    from rfdetr_demo.ui.image_tab import detect, predict_or_clear, rerender

    ctx = UiContext(replay_service)
    path = str(tmp_path / "000000196141.jpg")
    shutil.copy(coco_image_paths[196141], path)
    views = ["Combined", "Skeleton"]
    first = detect(ctx, path, 0.6, 0.4, 576, views)
    calls = replay_predictor.calls
    again = rerender(ctx, first["state"], 0.4, views, path, 0.6, 288)  # the resolution control moved meanwhile
    assert replay_predictor.calls == calls  # a redraw never runs the model
    assert [c for _i, c in again["gallery"]] == [c for _i, c in first["gallery"]] == views
    for (a, _ca), (b, _cb) in zip(again["gallery"], first["gallery"], strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)  # the same decode, the same drawing
    assert again["persons"].equals(first["persons"]) and again["keypoints"].equals(first["keypoints"])
    assert again["state"] is first["state"]
    fewer = rerender(ctx, first["state"], 0.4, views, path, 0.99, 576)
    assert replay_predictor.calls == calls and len(fewer["persons"]) < len(
        first["persons"]
    )  # a higher threshold: fewer rows
    # the summary counts what is shown, also when nothing passes (an empty prediction is not "no prediction")
    shown = len(fewer["persons"])
    assert fewer["summary"].startswith(f"**{shown} instance") and "detection ≥ 0.99" in fewer["summary"]
    none = rerender(ctx, first["state"], 0.4, views, path, 1.0, 576)
    assert len(none["persons"]) == 0 and none["summary"].startswith("**0 instances**")
    assert "detection ≥ 1.00" in none["summary"]
    # Gradio's second ``change`` for the same upload is a redraw too
    predict_or_clear(ctx, path, 0.6, 0.4, 576, views, model=None, kept=first["state"])
    assert replay_predictor.calls == calls
    # below the floor the model runs again
    rerender(ctx, first["state"], 0.4, views, path, 0.05, 576)
    assert replay_predictor.calls == calls + 1
    # an upload the temp-file limits removed: a clear message, not a crash
    Path(path).unlink()
    with pytest.raises(gr.Error, match="upload it again"):
        rerender(ctx, first["state"], 0.4, views, path, 0.6, 576)


@pytest.mark.parametrize("mode", ["separate", "shared"])
def test_an_image_waits_behind_a_whole_video_only_when_the_queue_is_shared(mode, coco_json, coco_image_paths, tmp_path):
    """Over HTTP, one request at a time (--concurrency 1): a photo sent while a slow clip runs is answered before the
    clip ends with --video-queue separate (they take turns on the model), after it with shared."""
    import threading

    from gradio_client import Client, handle_file

    from rfdetr_demo.config import Settings
    from tests.helpers import serve_replay_app
    from tests.support.replay import ReplayPredictor
    from tests.video_helpers import make_clip

    oracle = ReplayPredictor.from_coco(coco_json)
    video_frames = threading.Semaphore(0)
    image_done = threading.Event()
    clip_frames_seen: list[int] = []  # clip frames the model was given so far (in the server)
    photo_after: list[int] = []  # how many of them when the photo reached the model

    def lookup(img: np.ndarray):
        if img.shape[:2] == (48, 64):  # a frame of the clip: slow until the photo is answered (40 frames: 10 s)
            video_frames.release()
            clip_frames_seen.append(1)
            if not image_done.is_set():
                time.sleep(0.25)
        else:
            photo_after.append(len(clip_frames_seen))
        return oracle.lookup(img)

    clip = make_clip(tmp_path / "clip.mp4", 40, size=(64, 48), fps=10)
    with serve_replay_app(coco_json, Settings(video_queue=mode), ReplayPredictor(lookup)) as (url, _predictor):
        video_client, image_client = Client(url, verbose=False), Client(url, verbose=False)
        video = video_client.submit(handle_file(str(clip)), api_name="/predict_video", smoothing="off", keyframes="1")
        assert video_frames.acquire(timeout=60)  # the clip is being processed
        image_client.predict(handle_file(str(coco_image_paths[785])), api_name="/predict_image")
        image_done.set()
        video.result(timeout=120)
    # Read in the server, not from the clients' futures (whose completion messages can arrive in either order).
    assert len(clip_frames_seen) == 40 and len(photo_after) == 1
    assert (photo_after[0] < 40) == (mode == "separate"), photo_after


def test_gradio_keeps_at_most_max_sessions(monkeypatch) -> None:
    from rfdetr_demo.app_factory import launch_kwargs
    from rfdetr_demo.config import load_settings
    from rfdetr_demo.models import malloc_trim

    assert launch_kwargs(load_settings(["--max-sessions", "300"], {}))["state_session_capacity"] == 300
    with pytest.raises(ValueError, match="--max-sessions"):
        load_settings(["--max-sessions", "0"], {})
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert malloc_trim.release_freed_memory()  # malloc_trim found and called
        assert malloc_trim.configure_allocator()  # mallopt accepted the mmap threshold
    trims = []
    monkeypatch.setattr(malloc_trim, "release_freed_memory", lambda: trims.append(1) or True)
    monkeypatch.setattr(malloc_trim, "_last_trim", [float("-inf")])
    for _ in range(5):
        malloc_trim.after_request(640 * 480)  # small requests in a burst: one trim per interval
    assert trims == [1]
    malloc_trim.after_request(4000 * 3000)  # after a large image, always
    assert trims == [1, 1]


def test_files_a_request_uses_or_a_page_is_shown_count_as_just_used(tmp_path: Path) -> None:
    """Gradio hands out an existing copy of identical content without touching it; its age must not get it pruned."""
    now = time.time()
    clock = FakeClock(now)
    reused = _unit(tmp_path, "f" * 40, 1000, 7200, now)  # an example's output first written two hours ago
    upload = _unit(tmp_path, "e" * 40, 1000, 7200, now)  # the same photo uploaded again
    budget = _budget(tmp_path, 10**6, clock)
    shown = [(str(reused / "data.bin"), "Combined")]  # what the gallery holds: (path, caption)
    assert budget.refresh(shown, None, {"path": "/elsewhere/not-ours.jpg"}) == 1
    unit = budget.hold(upload / "data.bin")
    budget.release(unit)
    budget.prune()
    assert reused.exists() and upload.exists()
