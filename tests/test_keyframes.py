"""Keyframes: the model on some frames, the Kalman/RTS smoother fills the rest (schedule, filling, exports, output)."""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import supervision as sv

from rfdetr_demo.results.prediction import apply_keypoint_threshold
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.temporal.kalman import FixedLagSmoother
from rfdetr_demo.temporal.keyframes import (
    AUTO,
    FILLED,
    MODEL,
    KeyframeFiller,
    KeyframeSchedule,
    parse_keyframes,
    plan_keyframes,
    run_on_keyframes,
)
from rfdetr_demo.temporal.stages import KALMAN, OFFLINE_LAG
from rfdetr_demo.temporal.tracking import PersonTracker
from rfdetr_demo.video.exports import frame_record
from rfdetr_demo.video.motion_plots import confidence_series
from rfdetr_demo.video.pipeline import VideoOptions, run_video
from tests.conftest import make_replay_service
from tests.support.replay import ReplayPredictor
from tests.test_kalman import _kp as kalman_kp
from tests.test_kalman import _pose
from tests.test_video import _moving_pair
from tests.video_helpers import decode, make_clip


def _keys(schedule: KeyframeSchedule, n: int) -> list[int]:
    return [i for i in range(n) if schedule.next_is_keyframe(last=i == n - 1)]


def test_fixed_interval_runs_every_nth_frame_and_the_last():
    assert _keys(KeyframeSchedule(1), 5) == [0, 1, 2, 3, 4]
    assert _keys(KeyframeSchedule(3), 8) == [0, 3, 6, 7]
    assert _keys(KeyframeSchedule(3), 7) == [0, 3, 6]


def test_auto_interval_follows_the_filter_surprise_within_1_to_4():
    s = KeyframeSchedule(AUTO)
    assert s.interval == 2
    for want in (3, 4, 4):  # calm (predictions within the noise) or nobody measured: look less often
        s.observe(1.0 if want != 4 else None)
        assert s.interval == want
    s.observe(8.0)  # a sudden movement halves it at once
    assert s.interval == 2
    for _ in range(5):  # sustained surprise goes down to every frame, never below
        s.observe(3.5)
    assert s.interval == 1
    for _ in range(12):
        s.observe(1.0)
    assert s.interval == 4
    fixed = KeyframeSchedule(3)
    fixed.observe(9.0)
    assert fixed.interval == 3  # a fixed interval ignores feedback


def test_parse_and_plan_keyframes():
    assert parse_keyframes("auto") == AUTO and parse_keyframes(" 3 ") == 3 and parse_keyframes(2.0) == 2
    assert parse_keyframes(None) is None and parse_keyframes("") is None
    for bad in ("0", "7", "2.5", "fast", -1):
        with pytest.raises(ValueError, match="keyframes must be"):
            parse_keyframes(bad)
    with pytest.raises(ValueError, match="keyframes must be"):
        VideoOptions(keyframes="often").validated()
    assert plan_keyframes(None, KALMAN, "cpu") == (AUTO, KALMAN, [])
    assert plan_keyframes(None, "off", "cuda:0") == (1, "off", [])
    setting, smoother, notes = plan_keyframes(3, "one-euro", "cpu")
    assert (setting, smoother) == (3, KALMAN) and "instead of one-euro" in notes[0]


def test_model_runs_on_batches_of_keyframes_in_order():
    calls: list[list[int]] = []

    def infer(batch: list[int]) -> list[str]:
        calls.append(batch)
        return [f"p{i}" for i in batch]

    out = list(run_on_keyframes(range(8), KeyframeSchedule(2), 2, infer))
    assert [f for f, _ in out] == list(range(8))
    assert [p for _, p in out] == ["p0", None, "p2", None, "p4", None, "p6", "p7"]
    assert calls == [[0, 2], [4, 6], [7]]


def test_a_filled_frame_lies_between_its_keyframes_for_linear_motion():
    """Linear motion, noisy measurements on every 3rd frame: each filled joint sits between the smoothed joints of
    the keyframes either side (on the line between them), with a larger covariance than theirs."""
    rng = np.random.default_rng(3)
    n, fps, speed = 31, 30.0, np.array([90.0, -45.0])  # px/s
    schedule, filler, smoother = KeyframeSchedule(3), KeyframeFiller(), FixedLagSmoother(lag=OFFLINE_LAG)
    done = []
    for i in range(n):
        if schedule.next_is_keyframe(last=i == n - 1):
            items = filler.key(i, i / fps, kalman_kp(_pose() + speed * i / fps + rng.normal(0, 1.0, (17, 2)), 1.0))
        else:
            items = filler.skip(i, i / fps)
        for payload, t, kp, filled in items:
            done += smoother.push(kp, t, payload, filled=filled)
    done += smoother.flush()
    assert [i for i, _ in done] == list(range(n))
    xy = np.stack([kp.xy[0] for _, kp in done])
    var = np.stack([np.trace(kp.data["covariance"][0], axis1=1, axis2=2) for _, kp in done])
    assert all(kp.visible.all() for _, kp in done)
    for key in range(3, 28, 3):  # the filled frames key+1, key+2 against the keyframes key and key+3
        for f in (key + 1, key + 2):
            lo, hi = np.minimum(xy[key], xy[key + 3]), np.maximum(xy[key], xy[key + 3])
            assert np.all(xy[f] >= lo - 1e-3) and np.all(xy[f] <= hi + 1e-3)
            frac = (f - key) / 3
            assert np.abs(xy[f] - (xy[key] + frac * (xy[key + 3] - xy[key]))).max() < 0.5  # on the line
            if key + 3 < n - 1:  # the clip's last frame has no frame after it to be smoothed with
                assert np.all(var[f] > var[key]) and np.all(var[f] > var[key + 3])


def test_a_keyframe_without_people_fills_empty_frames():
    filler = KeyframeFiller()
    assert filler.key("k0", 0.0, sv.KeyPoints.empty())[-1][2] is not None
    assert filler.skip("f1", 0.1) == []
    ((payload, t, kp, filled),) = filler.flush()
    assert (payload, t, len(kp), filled) == ("f1", 0.1, 0, True)


def _walk_clip(tmp_path: Path, n: int = 20) -> tuple[Path, list[int], ReplayPredictor]:
    """Two people walking; the oracle reads the frame index from a gray block and logs the frames it was run on."""

    def frame(i: int) -> np.ndarray:
        img = np.zeros((96, 256, 3), np.uint8)
        img[:16, :16] = i * 10
        return img

    seen: list[int] = []

    def lookup(img: np.ndarray):
        seen.append(round(float(img[2:14, 2:14].mean()) / 10))
        return _moving_pair(seen[-1])

    return make_clip(tmp_path / "walk.mp4", n, size=(256, 96), frame_fn=frame), seen, ReplayPredictor(lookup)


def _opts(**kw) -> VideoOptions:
    return VideoOptions(**{"resolution": 288, "views": ["Skeleton", "Uncertainty ellipses"], **kw})


def test_keyframes_keep_every_frame_and_mark_the_filled_ones(tmp_path):
    src, seen, predictor = _walk_clip(tmp_path)
    result = run_video(make_replay_service(predictor), src, _opts(keyframes=3), out_dir=tmp_path / "out")
    keys = [0, 3, 6, 9, 12, 15, 18, 19]
    assert seen == keys and result.model_runs == len(keys) and result.frames_done == 20
    out = decode(result.video_path)  # decoded back: the source's frame count and rate
    assert len(out["frames"]) == 20 and out["fps"] == Fraction(10) and result.output_fps == 10
    blocks = [float(f[2:14, 2:14].mean()) for f in out["frames"]]
    assert np.allclose(blocks, np.arange(20) * 10, atol=4)
    want = [MODEL if i in keys else FILLED for i in range(20)]
    lines = [json.loads(line) for line in result.files[1].read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(20)) and [r["source"] for r in lines] == want
    assert list(result.frames["source"]) == want
    assert result.frames["inference_ms"].isna().tolist() == [s == FILLED for s in want]
    # Everybody stays on the filled frames with their ids; the walk is linear, so the fill is on it.
    for r in lines:
        left = min(r["persons"], key=lambda p: p["box_xyxy"][0])
        assert len(r["persons"]) == 2 and left["id"] == min(lines[0]["persons"], key=lambda p: p["box_xyxy"][0])["id"]
        assert abs(left["keypoints"][0]["x"] - (10 + 4 * r["frame"])) < 1.0
        assert abs(left["box_xyxy"][0] - (10 + 4 * r["frame"])) < 1.0  # boxes move between keyframes too
    for path in result.files[2:4]:  # keypoints CSV and angles CSV
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert {int(r["frame"]): r["source"] for r in rows} == dict(enumerate(want))
    conf = confidence_series(pd.read_csv(result.files[3]), lines[0]["persons"][0]["id"])  # the motion panel's points
    assert conf["source"].tolist() == want
    # The ellipses view draws the grown covariance: filled frames' joints are less certain than keyframes'.
    cov = {r["frame"]: r["persons"][0]["keypoints"][0]["covariance"] for r in lines}
    assert np.trace(cov[10]) > np.trace(cov[9]) and np.trace(cov[11]) > np.trace(cov[12])


def test_auto_runs_the_model_on_fewer_frames_for_steady_motion(tmp_path):
    src, seen, predictor = _walk_clip(tmp_path, 24)
    result = run_video(make_replay_service(predictor), src, _opts(keyframes=AUTO), out_dir=tmp_path / "out")
    assert result.frames_done == 24 and seen[0] == 0 and seen[-1] == 23
    assert result.model_runs == len(seen) <= 10, seen  # steady walk: mostly every 3rd-4th frame
    assert np.diff(seen).max() <= 4, seen


def test_interval_1_is_the_every_frame_chain(tmp_path):
    """keyframes=1 gives exactly what tracking → threshold → fixed-lag RTS gives frame by frame (today's output)."""
    src, seen, predictor = _walk_clip(tmp_path, 12)
    opts = _opts(keyframes=1, smoothing=KALMAN, keypoint_threshold=0.3)
    result = run_video(make_replay_service(predictor), src, opts, out_dir=tmp_path / "out")
    assert seen == list(range(12)) and result.model_runs == 12
    tracker, smoother, want = PersonTracker(10.0, opts.threshold), FixedLagSmoother(lag=OFFLINE_LAG), []
    names, angles = KeypointSchema.coco().names, KeypointSchema.coco().joint_angles()
    for i in range(12):
        kp = apply_keypoint_threshold(tracker.update(_moving_pair(i), i / 10), 0.3)
        want += smoother.push(kp, i / 10, i)
    want += smoother.flush()
    expected = [json.loads(json.dumps(frame_record(i, i / 10, kp, names, angles))) for i, kp in want]
    got = [json.loads(line) for line in result.files[1].read_text().splitlines()]
    assert got == expected
