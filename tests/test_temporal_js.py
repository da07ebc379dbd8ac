"""The in-browser engine's tracker and Kalman filter (``web/src/temporal.js``) against server mode's live chain.

One recorded sequence of detections (COCO ground truth with five overlapping people, moved over 24 frames with noise,
jittered timestamps, a gap, a person who leaves and comes back, a newcomer, hidden joints, an outlier joint and a
low-score box) goes through :class:`rfdetr_demo.temporal.stages.LiveChain` and through the JS port under ``node``
with the manifest's settings (:func:`rfdetr_demo.temporal.stages.live_params`): same ids, same visible and predicted
joints, same smoothed positions (≤ 1e-3 px) and covariances.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.results.prediction import BOXES, CLASS_NAME, COVARIANCE, IDS
from rfdetr_demo.temporal.stages import KALMAN, LiveChain, live_params

TEMPORAL_JS = Path(__file__).resolve().parent.parent / "web" / "src" / "temporal.js"
IMAGE = 197388  # five people, several boxes overlapping
THRESHOLD, KP_THRESHOLD = 0.5, 0.3
NODE = shutil.which("node")
WRIST = 9

RUN_JS = """
import { readFileSync } from "node:fs";
import { LiveChain } from "%s";
const { params, frames, threshold, keypointThreshold } = JSON.parse(readFileSync(process.argv[1], "utf8"));
const chain = new LiveChain(params);
const out = frames.map(({ t, rows }) => {
  const start = performance.now();
  const got = chain.update(rows, t, { threshold, keypointThreshold, smoothing: true });
  return { ms: performance.now() - start, rows: got.map((r) => ({ id: r.id,
    xy: r.points.map((p) => [p.x, p.y]), visible: r.points.map((p) => p.visible),
    predicted: r.points.map((p) => p.predicted), cov: r.points.map((p) => p.cov) })) };
});
console.log(JSON.stringify(out));
"""


def _sequence(truth: sv.KeyPoints, seed: int = 3) -> list[dict]:
    """Frames of decoded rows as the page has them (``decode.js``: score, box, points with x, y, confidence, cov)."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    velocity = rng.uniform(-12, 12, size=(n, 2))  # px per frame; some people cross each other
    t = 5.0
    frames = []
    for f in range(24):
        t += 0.35 if f == 12 else 0.1 + rng.uniform(-0.01, 0.01)  # ~10 fps with jitter, and one gap
        rows = []
        for i in range(n + 1):
            if i == n:  # a newcomer from frame 8, copied from person 0 away from everyone
                if f < 8:
                    continue
                src, shift = 0, np.array([-150.0, 250.0]) + velocity[0] * (f - 8)
            else:
                if i == 1 and f in (5, 6):  # missed for two frames: coasts, keeps its id
                    continue
                if i == 4 and 2 <= f <= 13:  # gone for longer than the lost-track buffer: comes back with a new id
                    continue
                src, shift = i, velocity[i] * f
            xy = truth.xy[src] + shift + rng.normal(0, 2.0, size=(17, 2))
            conf = truth.keypoint_confidence[src].astype(float).copy()
            conf[rng.random(17) < 0.15] = 0.2  # below the keypoint threshold this frame
            if i == 0 and 3 <= f <= 10:
                conf[WRIST] = 0.0  # unseen for 8 frames: predicted for max_coast frames, then dropped
            if i == 2 and f == 15:
                xy[0] += 80  # one outlier joint: gated, down-weighted
            box = truth.data[BOXES][src] + np.tile(shift, 2) + rng.normal(0, 1.5, size=4)
            score = float(truth.detection_confidence[src]) - 0.013 * (i % 3)
            if i == 3 and f % 4 == 1:
                score = 0.41  # under the threshold: ByteTrack's second (low-score) stage
            cov = truth.data[COVARIANCE][src].astype(float) * rng.uniform(0.5, 2.0, size=(17, 1, 1))
            rows.append({
                "score": score, "box": box.tolist(),
                "points": [{"x": float(x), "y": float(y), "confidence": float(c), "cov": cv.tolist()}
                           for (x, y), c, cv in zip(xy, conf, cov, strict=True)],
            })  # fmt: skip
        rows.sort(key=lambda r: -r["score"])
        frames.append({"t": t, "rows": rows})
    return frames


def _keypoints(rows: list[dict]) -> sv.KeyPoints:
    n = len(rows)
    conf = np.array([[p["confidence"] for p in r["points"]] for r in rows], np.float32).reshape(n, 17)
    return sv.KeyPoints(
        xy=np.array([[[p["x"], p["y"]] for p in r["points"]] for r in rows], np.float32).reshape(n, 17, 2),
        class_id=np.zeros(n, int),
        keypoint_confidence=conf,
        detection_confidence=np.array([r["score"] for r in rows], np.float32),
        visible=conf > 0,  # decode.js: a joint without confidence is not shown
        data={
            BOXES: np.array([r["box"] for r in rows], np.float32).reshape(n, 4),
            COVARIANCE: np.array([[p["cov"] for p in r["points"]] for r in rows], np.float32).reshape(n, 17, 2, 2),
            CLASS_NAME: np.array(["person"] * n, dtype=object),
            IDS: np.arange(n),
        },
    )


def _run_js(tmp_path: Path, frames: list[dict]) -> list[dict]:
    if NODE is None:
        pytest.skip("node is not installed (.ci/run installs nodejs)")
    data = tmp_path / "frames.json"
    data.write_text(json.dumps({"params": live_params(), "frames": frames, "threshold": THRESHOLD,
                                "keypointThreshold": KP_THRESHOLD}))  # fmt: skip
    script = RUN_JS % TEMPORAL_JS.as_uri()
    done = subprocess.run([NODE, "--input-type=module", "-e", script, str(data)], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_js_port_gives_server_modes_ids_and_smoothed_joints(coco_truth, tmp_path) -> None:
    frames = _sequence(coco_truth[IMAGE].key_points)
    js = _run_js(tmp_path, frames)
    chain = LiveChain(KALMAN, THRESHOLD)
    ids_seen: set[int] = set()
    moved = 0.0
    for f, (frame, got) in enumerate(zip(frames, js, strict=True)):
        want = chain.update(_keypoints(frame["rows"]), frame["t"], KP_THRESHOLD)
        assert want is not None
        ids = [int(i) for i in want.data[IDS]]
        assert [r["id"] for r in got["rows"]] == ids, f"frame {f}"
        ids_seen |= set(ids)
        for row, r in enumerate(got["rows"]):
            visible = np.array(r["visible"])
            np.testing.assert_array_equal(visible, want.visible[row], err_msg=f"frame {f} row {row}")
            np.testing.assert_array_equal(r["predicted"], want.data["predicted"][row])
            xy = np.array(r["xy"], float)
            np.testing.assert_allclose(xy[visible], want.xy[row][visible], atol=1e-3, rtol=0)
            cov = np.array(r["cov"], float)[visible]
            np.testing.assert_allclose(cov, want.data[COVARIANCE][row][visible], rtol=1e-4, atol=1e-3)
            raw = np.array([[p["x"], p["y"]] for p in frame["rows"][row]["points"]])
            moved = max(moved, float(np.abs(xy[visible] - raw[visible]).max(initial=0.0)))
    # The sequence exercised what it is for: every person kept one id (the newcomer got the next one, the one gone
    # too long a new one), the filter moved joints (it is not a pass-through), and the unseen wrist coasted for
    # max_coast frames, then disappeared.
    assert ids_seen == {0, 1, 2, 3, 4, 5, 6}
    assert moved > 1.0
    coast = live_params()["kalman"]["max_coast"]
    wrist = [next(r for r in g["rows"] if r["id"] == 0) for g in js[3:11]]
    assert [r["predicted"][WRIST] for r in wrist] == [True] * coast + [False] * (8 - coast)
    assert [r["visible"][WRIST] for r in wrist] == [True] * coast + [False] * (8 - coast)


def test_the_live_chain_follows_a_changed_person_threshold(coco_truth) -> None:
    """The page's port applies the person threshold of each frame; server mode's chain follows it too instead of
    keeping the one it was built with (a slider moved mid-stream would otherwise leave new people without an id)."""
    truth = coco_truth[IMAGE].key_points
    low = sv.KeyPoints(
        xy=truth.xy, class_id=truth.class_id, keypoint_confidence=truth.keypoint_confidence,
        detection_confidence=np.full(len(truth), 0.3, dtype=np.float32), visible=truth.visible, data=dict(truth.data),
    )  # fmt: skip
    built_at_half = LiveChain(KALMAN, 0.5).update(low, 0.0, KP_THRESHOLD)
    assert set(np.asarray(built_at_half.data[IDS]).tolist()) == {-1}  # below its activation: no track
    followed = LiveChain(KALMAN, 0.5).update(low, 0.0, KP_THRESHOLD, threshold=0.2)
    ids = np.asarray(followed.data[IDS]).tolist()
    assert -1 not in ids and len(set(ids)) == len(truth)
