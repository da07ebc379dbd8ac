"""Video pipeline and tab: decoded outputs, audio, rotation, odd sizes, errors, caps, tracking, cancel, API."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from rfdetr_demo.results.render import LEFT_COLOR, RIGHT_COLOR, VIEW_VERTICES, side_of
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.temporal.one_euro import KeypointSmoother
from rfdetr_demo.temporal.tracking import UNCONFIRMED, PersonTracker
from rfdetr_demo.video import pipeline
from rfdetr_demo.video.pipeline import VideoCancelled, VideoOptions, run_video
from rfdetr_demo.video.reader import VideoLoadError, VideoTooLongError
from rfdetr_demo.video.writer import VideoWriter
from tests.conftest import COCO_DIR, make_replay_service
from tests.support.replay import ReplayPredictor
from tests.video_helpers import decode, make_clip


def _opts(**kw) -> VideoOptions:
    base = {"resolution": 288, "views": [VIEW_VERTICES], "max_seconds": 60.0}
    base.update(kw)
    return VideoOptions(**base)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- real clips ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "size", "fps", "frames"),
    [("dance_960x540_5f.mp4", (960, 540), 5, 5), ("posetrack_1280x720_5f.mp4", (1280, 720), 30, 5)],
)
def test_real_clip_decodes_as_browser_h264(replay_service, video_dir, tmp_path, name, size, fps, frames):
    result = run_video(replay_service, video_dir / name, _opts(views=None), out_dir=tmp_path)
    out = decode(result.video_path)
    assert out["codec"] == "h264" and out["pix_fmt"] == "yuv420p"
    assert out["size"] == size and out["fps"] == fps and len(out["frames"]) == frames
    lines = _jsonl(result.files[1])
    assert [r["frame"] for r in lines] == list(range(frames))
    assert len(result.frames) == frames
    assert not list(tmp_path.glob(".*partial*"))


def test_grid_layout_has_one_tile_per_view(replay_service, video_dir, tmp_path):
    views = ["Skeleton", "Boxes"]
    result = run_video(
        replay_service, video_dir / "dance_960x540_5f.mp4", _opts(views=views, layout="grid"), out_dir=tmp_path
    )
    assert decode(result.video_path)["size"] == (1920, 540)


# -- overlays where the oracle puts keypoints -----------------------------------------------------------------------
def _coco_clip(tmp_path: Path, coco_truth, file_name: str, codec: str, n: int = 3):
    truth = next(t for t in coco_truth.values() if t.file_name == file_name)
    rgb = np.asarray(Image.open(COCO_DIR / file_name).convert("RGB"))
    suffix = ".mov" if codec == "png" else ".mp4"
    path = make_clip(tmp_path / f"coco{suffix}", [rgb] * n, size=(truth.width, truth.height), fps=10, codec=codec)
    return truth, rgb, path


@pytest.mark.parametrize(
    ("file_name", "codec", "workers"),
    [("000000197388.jpg", "libx264", None), ("000000000785.jpg", "png", None), ("000000197388.jpg", "libx264", 2)],
)
def test_overlays_drawn_at_oracle_keypoints(replay_service, coco_truth, tmp_path, file_name, codec, workers):
    truth, rgb, path = _coco_clip(tmp_path, coco_truth, file_name, codec)
    opts = _opts(keypoint_threshold=0.5, render_workers=workers)
    result = run_video(replay_service, path, opts, out_dir=tmp_path)
    out = decode(result.video_path)
    w, h = truth.width, truth.height
    assert out["size"] == (w + w % 2, h + h % 2)  # odd sizes padded by one pixel, never scaled
    frame = out["frames"][1].astype(int)
    names = KeypointSchema.coco().names
    kp = truth.key_points
    hits = total = 0
    for i in range(len(kp)):
        for j, name in enumerate(names):
            if not kp.visible[i, j] or kp.keypoint_confidence[i, j] < 0.5 or side_of(name) == "center":
                continue
            x, y = (round(v) for v in kp.xy[i, j])
            if not (2 <= x < w - 2 and 2 <= y < h - 2):
                continue
            color = LEFT_COLOR if side_of(name) == "left" else RIGHT_COLOR
            patch = frame[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(axis=0)
            total += 1
            hits += np.abs(patch - np.array(color.as_rgb())).max() < 70
    assert total >= 10 and hits / total >= 0.8, (hits, total)
    # Far from every joint the frame is the source frame (only compression noise).
    far = np.ones((h, w), bool)
    for x, y in kp.xy.reshape(-1, 2):
        if np.isfinite([x, y]).all():
            far[max(0, int(y) - 12) : int(y) + 13, max(0, int(x) - 12) : int(x) + 13] = False
    diff = np.abs(frame[:h, :w] - rgb.astype(int)).mean(axis=2)
    assert diff[far].mean() < 6


def test_default_video_views_are_combined_only(replay_service, coco_truth, tmp_path):
    """No views chosen → Combined alone, not the Image tab's four views overlaid (a wall of joint labels)."""
    _, _, path = _coco_clip(tmp_path, coco_truth, "000000197388.jpg", "libx264", n=1)

    def frame(views) -> np.ndarray:
        out = tmp_path / str(views)
        return decode(run_video(replay_service, path, _opts(views=views), out_dir=out).video_path)["frames"][0]

    default = frame(None)
    assert np.array_equal(default, frame([]))
    assert np.array_equal(default, frame(["Combined"]))
    crowded = frame(["Combined", "Skeleton", "Uncertainty ellipses", "Labels"])  # still selectable
    assert np.abs(crowded.astype(int) - default.astype(int)).max(axis=2).astype(bool).mean() > 0.01


# -- audio, rotation, odd sizes, bad files, caps --------------------------------------------------------------------
def test_audio_track_is_kept_and_trimmed(replay_service, tmp_path):
    src = make_clip(tmp_path / "a.mp4", 30, fps=10, audio="aac")
    result = run_video(replay_service, src, _opts(start=1.0, end=2.5), out_dir=tmp_path)
    out = decode(result.video_path)
    assert out["audio"] == ["aac"]
    assert abs(out["audio_duration"][0] - 1.5) < 0.15
    assert len(out["frames"]) == 15


def test_pcm_audio_is_reencoded_to_aac(replay_service, tmp_path):
    src = make_clip(tmp_path / "a.mov", 10, fps=10, audio="pcm_s16le")
    out = decode(run_video(replay_service, src, _opts(), out_dir=tmp_path).video_path)
    assert out["audio"] == ["aac"] and len(out["frames"]) == 10


def test_no_audio_when_source_has_none(replay_service, tmp_path):
    src = make_clip(tmp_path / "v.mp4", 4)
    assert decode(run_video(replay_service, src, _opts(), out_dir=tmp_path).video_path)["audio"] == []


@pytest.mark.parametrize("rotation", [90, -90])
def test_rotation_metadata_is_honoured(replay_service, tmp_path, rotation):
    def frame(i: int) -> np.ndarray:
        img = np.zeros((96, 160, 3), np.uint8)
        img[:, :20] = 255  # white strip on the stored frame's left edge
        return img

    src = make_clip(tmp_path / "r.mp4", 4, size=(160, 96), rotation=rotation, frame_fn=frame)
    result = run_video(replay_service, src, _opts(), out_dir=tmp_path)
    out = decode(result.video_path)
    assert out["size"] == (96, 160)  # displayed upright: 90° counter-clockwise turns the width into the height
    img = out["frames"][0]
    # Counter-clockwise 90° moves the stored left edge to the bottom; clockwise (phone "rotate=90") to the top.
    strip, rest = (img[-15:], img[:100]) if rotation == 90 else (img[:15], img[-100:])
    assert strip.mean() > 200 and rest.mean() < 30


def test_odd_size_padded_to_even(replay_service, tmp_path):
    src = make_clip(tmp_path / "odd.mov", 3, size=(641, 361), codec="png")
    out = decode(run_video(replay_service, src, _opts(), out_dir=tmp_path).video_path)
    assert out["size"] == (642, 362) and out["codec"] == "h264" and len(out["frames"]) == 3


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 500])
def test_empty_or_corrupt_file_is_a_clear_error(replay_service, tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(VideoLoadError):
        run_video(replay_service, bad, _opts(), out_dir=tmp_path / "o")


def test_zero_frame_video_is_a_clear_error(replay_service, tmp_path):
    src = make_clip(tmp_path / "zero.mp4", 0)
    with pytest.raises(VideoLoadError, match=r"has no (frames|video track)"):
        run_video(replay_service, src, _opts(), out_dir=tmp_path / "o")


def test_over_long_segment_refused_with_message(replay_service, tmp_path):
    src = make_clip(tmp_path / "long.mp4", 40, size=(64, 48), fps=10)
    with pytest.raises(VideoTooLongError, match=r"4\.0 s .* at most 2 s"):
        run_video(replay_service, src, _opts(max_seconds=2.0), out_dir=tmp_path / "o")
    ok = run_video(replay_service, src, _opts(max_seconds=2.0, start=1.0, end=3.0), out_dir=tmp_path / "p")
    assert len(decode(ok.video_path)["frames"]) == 20


def test_writer_never_publishes_partial(tmp_path):
    writer = VideoWriter(tmp_path / "x.mp4", 10)
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


# -- tracking and smoothing ---------------------------------------------------------------------------------------
def _person(x: float, y: float, score: float = 0.9) -> tuple[np.ndarray, np.ndarray, float]:
    xy = np.stack([np.linspace(x, x + 40, 17), np.linspace(y, y + 90, 17)], axis=1).astype(np.float32)
    return xy, np.array([x, y, x + 40, y + 90], np.float32), score


def _kp(people: list[tuple[np.ndarray, np.ndarray, float]]) -> sv.KeyPoints:
    n = len(people)
    return sv.KeyPoints(
        xy=np.stack([p[0] for p in people]) if n else np.zeros((0, 17, 2), np.float32),
        class_id=np.zeros(n, int),
        keypoint_confidence=np.full((n, 17), 0.9, np.float32),
        detection_confidence=np.array([p[2] for p in people], np.float32),
        visible=np.ones((n, 17), bool),
        data={
            "xyxy": np.stack([p[1] for p in people]) if n else np.zeros((0, 4)),
            "class_name": np.array(["person"] * n),
        },
    )


def _moving_pair(i: int) -> sv.KeyPoints:
    """Two people walking towards each other; rows swap order halfway (score order changes)."""
    a, b = _person(10 + 4 * i, 20), _person(200 - 3 * i, 30, 0.8 if i < 10 else 0.95)
    return _kp([a, b] if i < 10 else [b, a])


def test_tracker_keeps_ids_for_smoothly_moving_people():
    tracker = PersonTracker(frame_rate=10, detection_threshold=0.5)
    ids_a, ids_b = [], []
    for i in range(20):
        kp = tracker.update(_moving_pair(i), i / 10)
        ids = kp.data["tracker_id"]
        a_row = int(np.argmin(kp.xy[:, 0, 0]))  # person a stays left of b over the whole sequence
        ids_a.append(int(ids[a_row]))
        ids_b.append(int(ids[1 - a_row]))
    # A real id from the very first frame (never the library's "unconfirmed" -1), kept for the whole sequence.
    assert {ids_a[0], ids_b[0]} == {0, 1}
    assert set(ids_a) == {ids_a[0]} and set(ids_b) == {ids_b[0]}


def test_tracker_numbers_a_newcomer_on_its_first_frame():
    tracker = PersonTracker(frame_rate=10, detection_threshold=0.5)
    for i in range(6):
        people = [_person(10 + 2 * i, 20)] + ([_person(150, 10, 0.6)] if i >= 3 else [])
        ids = tracker.update(_kp(people), i / 10).data["tracker_id"].tolist()
        assert ids == ([0] if i < 3 else [0, 1]), (i, ids)


def test_tracker_numbers_people_below_the_default_floor():
    """A user threshold of 0.01 shows people scored 0.03; they still get an id on their first frame."""
    tracker = PersonTracker(frame_rate=10, detection_threshold=0.01)
    for i in range(3):
        ids = tracker.update(_kp([_person(10, 20, 0.03), _person(150, 10, 0.9)]), i / 10).data["tracker_id"]
        assert sorted(ids.tolist()) == [0, 1] and UNCONFIRMED not in ids


@pytest.mark.parametrize(("smoothing", "workers"), [(False, None), ("one-euro", None), ("kalman", None), (False, 3)])
def test_tracking_ids_in_video_exports(tmp_path, smoothing, workers):
    def frame(i: int) -> np.ndarray:
        img = np.zeros((96, 256, 3), np.uint8)
        img[:16, :16] = i * 10  # the oracle reads the frame index from this block
        return img

    predictor = ReplayPredictor(lambda img: _moving_pair(round(float(img[2:14, 2:14].mean()) / 10)))
    service = make_replay_service(predictor)
    src = make_clip(tmp_path / "walk.mp4", 20, size=(256, 96), frame_fn=frame)
    opts = _opts(tracking=True, smoothing=smoothing, render_workers=workers)
    result = run_video(service, src, opts, out_dir=tmp_path)
    blocks = [float(f[2:14, 2:14].mean()) for f in decode(result.video_path)["frames"]]
    assert np.allclose(blocks, np.arange(20) * 10, atol=4)  # frames come out in order (also with a render pool)
    lines = _jsonl(result.files[1])
    left_ids = [min(r["persons"], key=lambda p: p["box_xyxy"][0])["id"] for r in lines]
    right_ids = [max(r["persons"], key=lambda p: p["box_xyxy"][0])["id"] for r in lines]
    assert {left_ids[0], right_ids[0]} == {0, 1}  # real ids from frame 0 on
    assert set(left_ids) == {left_ids[0]} and set(right_ids) == {right_ids[0]}
    csv_lines = result.files[2].read_text().splitlines()
    assert len(csv_lines) == 1 + 20 * 2 * 17
    # Keypoints stay on (smoothing: near) the oracle's positions; One-Euro lags a little, never jumps; the Kalman
    # smoother's constant-velocity model follows this steady walk without lag.
    last = min(lines[-1]["persons"], key=lambda p: p["box_xyxy"][0])["keypoints"][0]
    lag = abs(last["x"] - (10 + 4 * 19))
    assert lag < 8 and (lag > 0.01) == (smoothing == "one-euro")


def test_people_have_real_ids_from_frame_zero_in_every_export(replay_service, coco_truth, tmp_path):
    """The first frame's people are numbered in the JSONL, the CSV and the page's table alike, and keep their ids."""
    truth, _, path = _coco_clip(tmp_path, coco_truth, "000000197388.jpg", "libx264", n=3)
    n = len(truth.key_points)
    result = run_video(replay_service, path, _opts(tracking=True), out_dir=tmp_path)
    lines = _jsonl(result.files[1])
    ids_by_frame = [sorted(p["id"] for p in r["persons"]) for r in lines]
    assert n >= 2 and ids_by_frame == [list(range(n))] * 3
    # Same person (same box), same id, on every frame.
    box_to_id = [{tuple(p["box_xyxy"]): p["id"] for p in r["persons"]} for r in lines]
    assert box_to_id[0] == box_to_id[1] == box_to_id[2]
    with result.files[2].open(newline="") as f:
        rows = list(csv.DictReader(f))
    frame0 = {int(r["person_id"]) for r in rows if r["frame"] == "0"}
    assert frame0 == set(range(n))
    assert result.frames["ids"].iloc[0].split() == [str(i) for i in sorted(frame0)]
    assert "-1" not in " ".join(result.frames["ids"])


def test_video_csv_spells_visible_like_the_image_csv(replay_service, coco_truth, tmp_path):
    """Both CSV downloads write ``visible`` as True/False, so one reader (csv or pandas) handles either file."""
    import pandas as pd

    from rfdetr_demo.results.prediction import apply_keypoint_threshold
    from rfdetr_demo.results.tables import keypoints_table

    truth, _, path = _coco_clip(tmp_path, coco_truth, "000000197388.jpg", "libx264", n=1)
    result = run_video(replay_service, path, _opts(keypoint_threshold=0.7), out_dir=tmp_path)
    with result.files[2].open(newline="") as f:
        video_visible = [r["visible"] for r in csv.DictReader(f)]
    shown = apply_keypoint_threshold(truth.key_points, 0.7)
    image_csv = tmp_path / "image.csv"
    keypoints_table(shown, KeypointSchema.coco().names, decimals=2).to_csv(image_csv, index=False)
    with image_csv.open(newline="") as f:
        image_visible = [r["visible"] for r in csv.DictReader(f)]
    assert set(video_visible) == {"True", "False"}  # occluded (0.6) and unlabelled joints are hidden at 0.7
    assert video_visible == image_visible
    assert pd.read_csv(result.files[2])["visible"].dtype == bool


def test_smoothing_reduces_jitter_and_respects_confidence():
    rng = np.random.default_rng(0)
    smoother = KeypointSmoother(min_cutoff=0.5, beta=0.0)
    raw_x, smooth_x = [], []
    for i in range(60):
        xy, box, s = _person(100, 100)
        xy = xy + rng.normal(0, 3, xy.shape).astype(np.float32)
        kp = _kp([(xy, box, s)])
        kp.keypoint_confidence[0, 5] = 0.05  # an unsure joint
        kp.data["tracker_id"] = np.array([0])
        out = smoother.update(kp, i / 30)
        raw_x.append(kp.xy[0, :, 0].copy())
        smooth_x.append(out.xy[0, :, 0].copy())
    raw_std = np.std(raw_x[10:], axis=0)
    smooth_std = np.std(smooth_x[10:], axis=0)
    assert (smooth_std < raw_std * 0.7).all()
    assert smooth_std[5] < smooth_std[4]  # low confidence moves the estimate less


# -- cancel ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [None, 2])
def test_cancel_stops_promptly_and_publishes_nothing(tmp_path, coco_json, workers):
    oracle = ReplayPredictor.from_coco(coco_json)

    def slow(img: np.ndarray) -> sv.KeyPoints:
        time.sleep(0.05)
        return oracle.lookup(img)

    predictor = ReplayPredictor(slow)
    service = make_replay_service(predictor)
    src = make_clip(tmp_path / "c.mp4", 60, size=(64, 48))
    cancel = threading.Event()
    seen_at_cancel: list[int] = []

    def progress(p) -> None:
        if p.done >= 3 and not cancel.is_set():
            seen_at_cancel.append(predictor.images_seen)
            cancel.set()

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    t0 = time.perf_counter()
    with pytest.raises(VideoCancelled):
        run_video(service, src, _opts(render_workers=workers), out_dir=out_dir, progress=progress, cancel=cancel)
    assert time.perf_counter() - t0 < 2.5
    after = predictor.images_seen
    time.sleep(0.3)
    assert predictor.images_seen == after  # nothing keeps running in the background
    assert after - seen_at_cancel[0] <= 2
    assert list(out_dir.iterdir()) == []
    service.predict(np.zeros((48, 64, 3), np.uint8))  # the model is free for the next request


def _slow_start_service(coco_json: Path, first_call_s: float):
    """A replay model whose first inference takes ``first_call_s`` (like a real model's warm-up), then is instant."""
    oracle = ReplayPredictor.from_coco(coco_json)
    calls = [0]

    def lookup(img: np.ndarray) -> sv.KeyPoints:
        calls[0] += 1
        if calls[0] == 1:
            time.sleep(first_call_s)
        return oracle.lookup(img)

    return make_replay_service(ReplayPredictor(lookup))


def test_summary_speed_excludes_start_up(tmp_path, coco_json):
    from rfdetr_demo.ui.video_tab import summarize

    service = _slow_start_service(coco_json, 0.8)
    src = make_clip(tmp_path / "c.mp4", 8, size=(64, 48))
    result = run_video(service, src, _opts(batch_size=1), out_dir=tmp_path)
    assert result.warmup_frames == 1 and result.warmup_s >= 0.8
    assert result.fps < 8 / 0.8  # the whole-run rate is dominated by the slow first frame...
    assert result.steady_fps is not None and result.steady_fps > 3 * result.fps  # ...the steady rate is not
    text = summarize(result)
    assert f"**{result.steady_fps:.1f} frames/s** after the first frame" in text
    assert f"which took {result.warmup_s:.1f} s including start-up" in text


def test_summary_of_a_one_batch_clip_says_it_includes_start_up(tmp_path, coco_json):
    from rfdetr_demo.ui.video_tab import summarize

    service = _slow_start_service(coco_json, 0.0)
    src = make_clip(tmp_path / "c.mp4", 3, size=(64, 48))
    result = run_video(service, src, _opts(batch_size=4), out_dir=tmp_path)  # all 3 frames in the first batch
    assert result.warmup_frames == 3 and result.steady_fps is None
    assert f"({result.fps:.1f} frames/s including start-up; too few frames" in summarize(result)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_stays_bounded_for_long_clips(replay_service, tmp_path):
    """300 frames of 480×270 RGB are 117 MB decoded; the pipeline must hold only a few frames at a time."""
    src = make_clip(tmp_path / "long.mp4", 300, size=(480, 270), fps=25)
    run_video(replay_service, src, _opts(end=0.5), out_dir=tmp_path / "warm")  # allocate encoder/codec state once
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = run_video(replay_service, src, _opts(tracking=False), out_dir=tmp_path / "o")
    finally:
        done.set()
        sampler.join()
    assert result.frames_done == 300
    growth = (peak[0] - base) / 2**20
    assert growth < 50, f"resident memory grew by {growth:.0f} MB"


@pytest.mark.parametrize("overlap", [True, False])
def test_threaded_and_sequential_modes_give_the_same_output(tmp_path, overlap):
    """Both scheduling modes (threads on GPUs/spare cores, one thread on busy CPUs) produce identical results."""

    def frame(i: int) -> np.ndarray:
        img = np.zeros((96, 256, 3), np.uint8)
        img[:16, :16] = i * 10
        return img

    predictor = ReplayPredictor(lambda img: _moving_pair(round(float(img[2:14, 2:14].mean()) / 10)))
    service = make_replay_service(predictor)
    src = make_clip(tmp_path / "walk.mp4", 12, size=(256, 96), frame_fn=frame)
    result = run_video(service, src, _opts(tracking=True, overlap=overlap), out_dir=tmp_path / str(overlap))
    blocks = [float(f[2:14, 2:14].mean()) for f in decode(result.video_path)["frames"]]
    assert np.allclose(blocks, np.arange(12) * 10, atol=4)
    assert predictor.images_seen == 12
    assert [len(r["persons"]) for r in _jsonl(result.files[1])] == [2] * 12


def test_overlap_only_where_it_pays_off(monkeypatch):
    import torch

    from rfdetr_demo.video.pipeline import overlap_pays_off

    assert overlap_pays_off("cuda:0")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert not overlap_pays_off("cpu"), "inference already uses every core"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert overlap_pays_off("cpu"), "three cores are free for decoding and encoding"
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: assume one core
    assert not overlap_pays_off("cpu")


def test_smoother_is_chosen_by_name():
    from rfdetr_demo.temporal.kalman import FixedLagSmoother, KalmanSmoother
    from rfdetr_demo.temporal.stages import Causal, make_smoother, make_stage

    assert isinstance(make_smoother(True), KalmanSmoother) and isinstance(make_smoother("one-euro"), KeypointSmoother)
    assert make_smoother(True) is not make_smoother(True)  # per-request state is never shared
    assert make_smoother(False) is None and make_smoother(None) is None and make_smoother("off") is None
    assert isinstance(make_stage("kalman", offline=True), FixedLagSmoother)  # a clip: fixed-lag RTS
    live = make_stage("kalman", offline=False)
    assert isinstance(live, Causal) and isinstance(live.smoother, KalmanSmoother)  # a stream: causal, no delay
    with pytest.raises(ValueError, match="unknown smoothing"):
        VideoOptions(smoothing="wobbly").validated()


def test_background_stage_reraises_and_stops_its_thread():
    from rfdetr_demo.video.threads import in_background

    def failing():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(in_background(failing(), 2, "t-fail"))
    produced: list[int] = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    stage = in_background(endless(), 2, "t-endless")
    assert next(stage) == 0
    stage.close()
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 5  # bounded read-ahead, and nothing runs after close
    assert not any(t.name == "t-endless" for t in threading.enumerate())


def test_a_model_still_loading_fails_the_request_after_its_wait(tmp_path):
    from rfdetr_demo.models.service import ModelService, ModelUnavailable

    release = threading.Event()

    def slow_loader():
        release.wait(30)
        raise RuntimeError("never mind")

    service = ModelService(slow_loader)
    src = make_clip(tmp_path / "c.mp4", 3, size=(64, 48))
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="still loading"):
        run_video(service, src, _opts(), out_dir=tmp_path / "o", model_wait_s=0.3)
    assert time.perf_counter() - t0 < 5
    release.set()
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_progress_counts_frames_through_the_model_while_the_smoother_holds_them(tmp_path, coco_json):
    """Kalman (fixed-lag) releases frames late; progress still moves with every frame the model has done."""
    service = _slow_start_service(coco_json, 0.0)
    src = make_clip(tmp_path / "c.mp4", 12, size=(64, 48))
    reports: list[tuple[int, int]] = []  # (frames through the model, frames written) at each report
    written: list[int] = []
    real_add = pipeline._Summary.add

    def add(self, drawn) -> None:
        real_add(self, drawn)
        written.append(len(self.rows))

    def progress(p) -> None:
        reports.append((p.done, written[-1] if written else 0))
        time.sleep(0.21)  # past the report throttle: every frame reports

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline._Summary, "add", add)
        result = run_video(service, src, _opts(batch_size=1, smoothing="kalman"), out_dir=tmp_path, progress=progress)
    done = [d for d, _ in reports]
    assert done == sorted(done) and done[-1] == result.frames_done == 12
    assert len(set(done)) >= 10, "one report per frame through the model"
    assert any(d > w for d, w in reports), "progress ran ahead of the frames the smoother had released"


def test_progress_text_estimates_time_only_after_a_few_frames():
    from rfdetr_demo.video.progress import ETA_AFTER_FRAMES, ProgressInfo

    early = ProgressInfo(ETA_AFTER_FRAMES - 1, 30, elapsed_s=12.0, first_s=10.0)
    assert early.eta_s is None and "estimating time left" in early.text() and "2/30 frames" in early.text()
    later = ProgressInfo(11, 30, elapsed_s=15.0, first_s=10.0)  # 10 frames in 5 s after a 10 s first frame
    assert later.fps == pytest.approx(2.0) and later.eta_s == pytest.approx(9.5)
    assert later.text() == "11/30 frames processed · 2.0 frames/s · about 10 s left"


def test_steady_rate_agrees_with_inference_time_when_a_smoother_releases_frames_at_the_end(tmp_path, coco_json):
    """The steady rate is timed on frames leaving the model: never faster than the model's own time per frame."""
    oracle = ReplayPredictor.from_coco(coco_json)

    def slow(img: np.ndarray) -> sv.KeyPoints:
        time.sleep(0.1)
        return oracle.lookup(img)

    service = make_replay_service(ReplayPredictor(slow))
    src = make_clip(tmp_path / "c.mp4", 14, size=(64, 48))
    result = run_video(service, src, _opts(batch_size=1, smoothing="kalman"), out_dir=tmp_path)
    assert result.inference_ms >= 100 and result.steady_fps is not None
    assert result.steady_fps <= 1000.0 / result.inference_ms * 1.05
