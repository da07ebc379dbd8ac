"""Bounded memory and disk per visitor: the byte-budget LRU of kept runs and the temp-disk pruner (no Gradio)."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rfdetr_demo import kept_runs, run_cache
from rfdetr_demo.disk_budget import REQUEST_DIR_NAME, DiskBudget, scan_units
from rfdetr_demo.run_cache import MB, ByteLRU


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _arrays_cache(budget: int, **kwargs) -> ByteLRU[np.ndarray]:
    return ByteLRU(budget, lambda a: a.nbytes, **kwargs)


# -- the byte-budget LRU -------------------------------------------------------------------------------------------
def test_cache_evicts_least_recently_used_by_bytes() -> None:
    cache = _arrays_cache(3 * MB)
    for key in "abc":
        assert cache.put(key, np.zeros(MB, np.uint8))
    assert cache.get("a") is not None  # "a" is now the most recently used; "b" the least
    cache.put("d", np.zeros(MB, np.uint8))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("d") is not None
    stats = cache.stats()
    assert stats.entries == 3 and stats.bytes == 3 * MB and stats.evictions == 1
    # one big value pushes out as many small ones as needed, least recently used first: c, a, then d
    cache.put("big", np.zeros(2 * MB + 1, np.uint8))
    assert cache.stats().entries == 1 and cache.stats().bytes == 2 * MB + 1 and cache.get("big") is not None


def test_cache_never_keeps_a_value_bigger_than_the_budget_and_replaces_per_key() -> None:
    cache = _arrays_cache(MB)
    assert not cache.put("huge", np.zeros(MB + 1, np.uint8))
    assert cache.get("huge") is None and cache.stats().bytes == 0
    cache.put("s", np.zeros(1000, np.uint8))
    cache.put("s", np.zeros(2000, np.uint8))  # same session, new run: the old one is not counted twice
    assert cache.stats().entries == 1 and cache.stats().bytes == 2000
    cache.resize(1000)  # shrinking the budget evicts at once
    assert cache.get("s") is None and cache.stats().bytes == 0


def test_cache_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    cache = _arrays_cache(MB, ttl_s=60.0, clock=clock)
    cache.put("old", np.zeros(10, np.uint8))
    clock.now += 30
    cache.put("new", np.zeros(10, np.uint8))
    clock.now += 40  # "old" was last used 70 s ago, "new" 40 s ago
    assert cache.get("old") is None and cache.get("new") is not None
    assert cache.stats().bytes == 10


# -- kept image runs -----------------------------------------------------------------------------------------------
def test_kept_run_costs_its_decoded_image_and_a_new_run_replaces_the_old(replay_service, coco_image_paths) -> None:
    from rfdetr_demo.image_task import run_image

    path = str(next(iter(coco_image_paths.values())))
    run = run_image(replay_service, path, 0.5, 576)
    cost = kept_runs.run_nbytes(run)
    assert run.rgb.nbytes < cost < run.rgb.nbytes + 256 * 1024  # the image dominates; the prediction is small

    cache = ByteLRU(10 * MB, lambda item: kept_runs.run_nbytes(item[1]))
    ref = kept_runs.keep(run, "session-a", cache)
    assert kept_runs.lookup(ref, cache) is run
    assert ref.same_request(path, 0.5, 576) and not ref.same_request(path, 0.5, 288)
    assert ref.covers(0.2) and not ref.covers(0.05)  # the model ran at the 0.1 floor
    newer = kept_runs.keep(run_image(replay_service, path, 0.5, 576), "session-a", cache)
    assert kept_runs.lookup(ref, cache) is None and kept_runs.lookup(newer, cache) is not None
    assert cache.stats().entries == 1
    kept_runs.forget("session-a", cache)
    assert kept_runs.lookup(newer, cache) is None and cache.stats().bytes == 0
    assert kept_runs.lookup(None, cache) is None


def test_kept_runs_of_many_sessions_stay_within_the_budget(replay_service, coco_image_paths) -> None:
    from rfdetr_demo.image_task import run_image

    paths = [str(p) for p in coco_image_paths.values()][:6]
    runs = [run_image(replay_service, p, 0.5, 576) for p in paths]
    one = max(kept_runs.run_nbytes(r) for r in runs)
    cache = ByteLRU(int(2.5 * one), lambda item: kept_runs.run_nbytes(item[1]))
    refs = [kept_runs.keep(r, f"s{i}", cache) for i, r in enumerate(runs)]
    assert cache.stats().bytes <= 2.5 * one
    alive = [kept_runs.lookup(r, cache) is not None for r in refs]
    assert alive[-2:] == [True, True] and not any(alive[:-3])  # the newest survive, the oldest were evicted


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
    from rfdetr_demo import disk_budget, workdirs

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(disk_budget.BUDGET, "grace_s", 0.0)
    monkeypatch.setattr(disk_budget.BUDGET, "max_bytes", 0)
    with disk_budget.BUDGET.in_use():
        folder = workdirs.new_request_dir("video_")
        assert folder.parent == tmp_path / REQUEST_DIR_NAME
        (folder / "out.mp4").write_bytes(b"\0" * 100)
        disk_budget.BUDGET.prune()
        assert (folder / "out.mp4").exists()  # over a zero budget, yet still being written
    assert not disk_budget.BUDGET.is_held(folder)
    disk_budget.BUDGET.prune()
    assert not folder.exists()


def test_capacity_options_size_the_budgets() -> None:
    from rfdetr_demo import disk_budget, run_cache
    from rfdetr_demo.app_factory import apply_capacity
    from rfdetr_demo.config import Settings, load_settings

    defaults = Settings()
    assert defaults.state_memory_mb == run_cache.DEFAULT_STATE_MEMORY_MB
    assert defaults.max_temp_gb == disk_budget.DEFAULT_MAX_TEMP_GB
    assert defaults.download_grace_s == disk_budget.DEFAULT_GRACE_S
    with pytest.raises(ValueError, match="--max-temp-gb"):
        load_settings(["--max-temp-gb", "-1"], {})
    try:
        apply_capacity(
            load_settings(["--state-memory-mb", "64", "--max-temp-gb", "0.5"], {"RFDETR_DEMO_DOWNLOAD_GRACE_S": "7"})
        )
        assert kept_runs.KEPT_RUNS.budget_bytes == 64 * MB
        assert disk_budget.BUDGET.max_bytes == disk_budget.GB // 2 and disk_budget.BUDGET.grace_s == 7.0
    finally:
        apply_capacity(defaults)


# -- the Image tab on the cache ------------------------------------------------------------------------------------
@pytest.fixture()
def empty_cache():
    kept_runs.KEPT_RUNS.clear()
    yield kept_runs.KEPT_RUNS
    kept_runs.KEPT_RUNS.clear()
    kept_runs.configure(run_cache.DEFAULT_STATE_MEMORY_MB)


def _request(session: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=session)


def test_api_calls_keep_nothing_and_page_runs_keep_one_small_ref_per_session(
    empty_cache, replay_service, coco_image_paths
) -> None:
    from rfdetr_demo.ui.common import UiContext
    from rfdetr_demo.ui.image_tab import detect, predict_image

    ctx = UiContext(replay_service)
    paths = [str(p) for p in coco_image_paths.values()]
    out = predict_image(ctx, paths[0], 0.5, 0.3, 576, ["Combined"])
    assert len(out) == 6 and "instance" in out[-1] and empty_cache.stats().entries == 0
    ref = detect(ctx, paths[0], 0.5, 0.3, 576, ["Combined"], _request("page-1"))[-1]
    newer = detect(ctx, paths[1], 0.5, 0.3, 576, ["Combined"], _request("page-1"))[-1]
    detect(ctx, paths[2], 0.5, 0.3, 576, ["Combined"], _request("page-2"))
    assert empty_cache.stats().entries == 2  # one per session: a new image replaces the session's old run
    assert kept_runs.lookup(ref) is None and kept_runs.lookup(newer).source_path == paths[1]
    assert len(pickle.dumps(newer)) < 1024  # what gr.State holds per session
    from rfdetr_demo.ui.image_tab import forget_kept_run

    forget_kept_run(_request("page-1"))
    assert kept_runs.lookup(newer) is None and empty_cache.stats().entries == 1


def test_redraw_after_eviction_reruns_once_and_gives_the_same_views(
    empty_cache, replay_service, replay_predictor, coco_image_paths
) -> None:
    from rfdetr_demo.ui.common import UiContext
    from rfdetr_demo.ui.image_tab import detect, rerender

    ctx = UiContext(replay_service)
    path = str(coco_image_paths[196141])
    views = ["Combined", "Skeleton"]
    ref = detect(ctx, path, 0.5, 0.3, 576, views, _request("page"))[-1]
    calls = replay_predictor.calls
    kept = rerender(ctx, ref, 0.4, views, path, 0.6, 576, _request("page"))
    assert replay_predictor.calls == calls  # kept: a redraw never runs the model
    assert kept_runs.EVICTED_NOTE not in kept[5]

    kept_runs.configure(0.001)  # a budget smaller than any run: everything is evicted
    kept_runs.configure(run_cache.DEFAULT_STATE_MEMORY_MB)
    assert kept_runs.lookup(ref) is None
    # the resolution control moved meanwhile, but the re-run uses the run's own, so the views are the same
    again = rerender(ctx, ref, 0.4, views, path, 0.6, 288, _request("page"))
    assert replay_predictor.calls == calls + 1
    assert kept_runs.EVICTED_NOTE in again[5] and "576²" in again[5]
    assert [c for _i, c in again[0]] == [c for _i, c in kept[0]] == views
    for (a, _ca), (b, _cb) in zip(again[0], kept[0], strict=True):
        assert a.shape == b.shape and np.array_equal(a, b)
    assert again[1].equals(kept[1]) and again[2].equals(kept[2])  # the same tables
    third = rerender(ctx, again[-1], 0.3, views, path, 0.6, 288, _request("page"))
    assert replay_predictor.calls == calls + 1 and kept_runs.EVICTED_NOTE not in third[5]


def test_videos_queue_apart_from_images_unless_shared(replay_service) -> None:
    from rfdetr_demo.config import Settings
    from rfdetr_demo.ui.app import build_demo

    for mode, group in (("separate", "video"), ("shared", "model")):
        demo = build_demo(Settings(video_queue=mode), replay_service)
        fns = {fn.name: fn for fn in demo.fns.values()}
        assert fns["predict_video"].concurrency_id == group
        assert fns["predict_image"].concurrency_id == fns["detect"].concurrency_id == "model"
        deps = {d["api_name"]: d for d in demo.config["dependencies"]}
        assert deps["detect"]["api_visibility"] == "private"  # the page's run is not an API endpoint
        assert (fns["rerender"].concurrency_id, fns["rerender"].concurrency_limit) == ("redraw", 2)


def test_gradio_keeps_at_most_max_sessions(monkeypatch) -> None:
    from rfdetr_demo import memory
    from rfdetr_demo.app_factory import launch_kwargs
    from rfdetr_demo.config import load_settings

    assert launch_kwargs(load_settings(["--max-sessions", "300"], {}))["state_session_capacity"] == 300
    with pytest.raises(ValueError, match="--max-sessions"):
        load_settings(["--max-sessions", "0"], {})
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert memory.release_freed_memory()  # malloc_trim found and called
    trims = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: trims.append(1) or True)
    memory.after_image(640 * 480)
    memory.after_image(4000 * 3000)
    assert trims == [1]  # only after large images


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
