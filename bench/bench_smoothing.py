"""Keypoint smoothing against known truth: raw / One-Euro / Kalman (causal) / fixed-lag RTS / full RTS, one run.

Sequences are built from the real COCO person-keypoint ground truth in ``../shared/data/coco``: each labelled pose is
moved, scaled and slightly rotated along smooth random paths (30 fps, 300 frames), and with ``--articulation DEG``
its arms and legs also swing about shoulders, elbows, hips and knees. Measurements add Gaussian noise drawn from a
known covariance that differs per joint (COCO OKS sigmas × person size), varies over time in size, elongation and
orientation, and is handed to the smoothers exactly as the model's ``data["covariance"]`` would be. Joints go
through low-confidence episodes, during which some measurements are outliers (4–12 σ off; the covariance does not
know). The app's keypoint threshold (0.3) hides low-confidence joints from the Kalman filter (it predicts them);
One-Euro sees every joint and weights it by confidence, as the app runs it.

Metrics over every labelled joint in every frame (a joint a smoother has dropped counts with the raw measurement):
RMSE to the truth (px), 95th-percentile error, lag (frames of delay at the peak of the position cross-correlation,
least-squares sub-frame shift) and jitter (mean |second difference| in px/frame², the truth's own shown for scale).

    python bench/bench_smoothing.py --seed 0
    python bench/bench_smoothing.py --seed 1 --articulation 25
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import supervision as sv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfdetr_demo.results.schema import COCO_OKS_SIGMAS  # noqa: E402
from rfdetr_demo.temporal.kalman import FixedLagSmoother, KalmanSmoother, motion_surprise  # noqa: E402
from rfdetr_demo.temporal.keyframes import AUTO, KeyframeFiller, KeyframeSchedule  # noqa: E402
from rfdetr_demo.temporal.one_euro import KeypointSmoother  # noqa: E402
from rfdetr_demo.temporal.stages import OFFLINE_LAG, make_smoother  # noqa: E402
from rfdetr_demo.temporal.tracking import PersonTracker  # noqa: E402
from tests.support.replay import load_coco_truth  # noqa: E402

COCO_JSON = REPO / ".." / "shared" / "data" / "coco" / "test_coco.json"
FPS, FRAMES, FRAME_SIZE = 30.0, 300, (1280, 720)
KEYPOINT_THRESHOLD = 0.3
# (pivot, moved joints) per limb, COCO indices: upper arm about the shoulder, forearm about the elbow, likewise legs.
LIMBS = ((5, (7, 9)), (7, (9,)), (6, (8, 10)), (8, (10,)), (11, (13, 15)), (13, (15,)), (12, (14, 16)), (14, (16,)))


@dataclass
class Sequence:
    truth: np.ndarray  # (T, K, 2)
    labelled: np.ndarray  # (K,) the COCO annotation has this joint
    meas: np.ndarray  # (T, K, 2)
    cov: np.ndarray  # (T, K, 2, 2)
    conf: np.ndarray  # (T, K)
    boxes: np.ndarray  # (T, 4)


def smooth_path(rng: np.random.Generator, t: np.ndarray, amplitude: float, fmax: float = 0.6) -> np.ndarray:
    """A smooth random signal: three sinusoids of random frequency (0.05..fmax Hz), phase and share of amplitude."""
    out = np.zeros_like(t)
    for w in rng.dirichlet(np.ones(3)):
        out += amplitude * w * np.sin(2 * np.pi * rng.uniform(0.05, fmax) * t + rng.uniform(0, 2 * np.pi))
    return out


def wave(rng: np.random.Generator, t: np.ndarray, fmax: float) -> np.ndarray:
    """One sinusoid in [-1, 1] of random frequency (0.05..fmax Hz) and phase."""
    return np.sin(2 * np.pi * rng.uniform(0.05, fmax) * t + rng.uniform(0, 2 * np.pi))


def rotate(points: np.ndarray, pivot: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    d = points - pivot
    return pivot + np.stack([c * d[..., 0] - s * d[..., 1], s * d[..., 0] + c * d[..., 1]], axis=-1)


def make_sequence(rng: np.random.Generator, pose: np.ndarray, labelled: np.ndarray, articulation: float) -> Sequence:
    t = np.arange(FRAMES) / FPS
    k = len(pose)
    centre = pose[labelled].mean(axis=0)
    height = np.ptp(pose[labelled, 1]) or 1.0
    base = (pose - centre) * (rng.uniform(200, 450) / height)  # a person 200..450 px tall
    local = np.repeat(base[None], FRAMES, axis=0)
    for pivot, moved in LIMBS:
        if articulation > 0:
            ang = np.deg2rad(smooth_path(rng, t, articulation, fmax=1.0))
            local[:, list(moved)] = rotate(local[:, list(moved)], local[:, pivot : pivot + 1], ang)
    # The whole person drifts at walking-to-running pace (<= 0.3 Hz sways of up to 250 px); limbs swing faster.
    scale = 1.0 + smooth_path(rng, t, 0.15, fmax=0.3)
    theta = np.deg2rad(smooth_path(rng, t, 8.0, fmax=0.3))
    shift = np.stack(
        [FRAME_SIZE[0] / 2 + smooth_path(rng, t, 250.0, 0.3), FRAME_SIZE[1] / 2 + smooth_path(rng, t, 80.0, 0.3)], 1
    )
    truth = rotate(local * scale[:, None, None], np.zeros((1, 1, 2)), theta) + shift[:, None, :]
    lo, hi = truth[:, labelled].min(axis=1), truth[:, labelled].max(axis=1)
    pad = 0.1 * (hi - lo)
    boxes = np.concatenate([lo - pad, hi + pad], axis=1)
    size = np.sqrt(np.prod(hi - lo, axis=1))  # sqrt(box area), the OKS scale
    # Per-joint, time-varying noise: size (x0.5..x1.5 around 0.5·σ_k·scale), elongation (1..2.5) and orientation.
    sig = np.asarray(COCO_OKS_SIGMAS)[None, :] * size[:, None] * 0.5
    mult = np.stack(
        [1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 6.3)) for _ in range(k)], 1
    )
    elong = np.stack(
        [1.75 + 0.75 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3)) for _ in range(k)], 1
    )
    orient = rng.uniform(0, np.pi, k)[None, :] + np.stack([smooth_path(rng, t, 1.0) for _ in range(k)], 1)
    std = sig * mult
    c, s = np.cos(orient), np.sin(orient)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, K, 2, 2)
    axes = np.stack([std * np.sqrt(elong), std / np.sqrt(elong)], -1)  # (T, K, 2)
    chol = rot * axes[..., None, :]
    cov = chol @ chol.transpose(0, 1, 3, 2)
    meas = truth + np.einsum("tkij,tkj->tki", chol, rng.standard_normal((FRAMES, k, 2)))
    conf = rng.uniform(0.6, 0.95, (FRAMES, k))
    for j in range(k):  # low-confidence episodes (~1 start per joint every 3 s), some frames outliers
        for start in np.flatnonzero(rng.random(FRAMES) < 1 / 90):
            span = slice(start, start + int(rng.integers(3, 16)))
            conf[span, j] = rng.uniform(0.05, 0.45, conf[span, j].shape)
            out = np.flatnonzero(rng.random(conf[span, j].size) < 0.3) + start
            out = out[out < FRAMES]
            ang = rng.uniform(0, 2 * np.pi, len(out))
            mag = rng.uniform(4, 12, len(out)) * std[out, j]
            meas[out, j] = truth[out, j] + mag[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1)
    return Sequence(truth, labelled, meas, cov.astype(np.float32), conf.astype(np.float32), boxes.astype(np.float32))


def frame_keypoints(seq: Sequence, i: int, all_visible: bool) -> sv.KeyPoints:
    vis = np.ones(len(seq.labelled), bool) if all_visible else seq.conf[i] >= KEYPOINT_THRESHOLD
    return sv.KeyPoints(
        xy=seq.meas[i][None].astype(np.float32),
        class_id=np.zeros(1, int),
        keypoint_confidence=seq.conf[i][None],
        detection_confidence=np.array([0.9], np.float32),
        visible=(vis & seq.labelled)[None],
        data={"xyxy": seq.boxes[i][None], "covariance": seq.cov[i][None], "tracker_id": np.array([1])},
    )


def keyframe_estimate(seq: Sequence, setting: int | str) -> tuple[np.ndarray, int]:
    """Model on keyframes only (fixed interval or auto), every frame from the fixed-lag RTS, as the Video tab runs it.

    Returns the (T, K, 2) estimate and the number of model runs. A joint the smoother dropped on a filled frame counts
    with the last keyframe's raw measurement (all a viewer would have without the smoother).
    """
    schedule, filler = KeyframeSchedule(setting), KeyframeFiller()
    sm = FixedLagSmoother(lag=OFFLINE_LAG)
    fallback = seq.meas.copy()
    done: list = []
    runs, last_key = 0, 0
    for i in range(FRAMES):
        if schedule.next_is_keyframe(last=i == FRAMES - 1):
            runs, last_key = runs + 1, i
            items = filler.key(i, i / FPS, frame_keypoints(seq, i, False))
        else:
            fallback[i] = seq.meas[last_key]
            items = filler.skip(i, i / FPS)
        for payload, t, kp, filled in items:
            done += sm.push(kp, t, payload, filled=filled)
            if not filled:
                schedule.observe(motion_surprise(sm.last_records))
    for payload, t, kp, filled in filler.flush():
        done += sm.push(kp, t, payload, filled=filled)
    done += sm.flush()
    out = fallback
    for i, kp in done:
        shown = kp.visible[0]
        out[i, shown] = kp.xy[0, shown]
    return out, runs


def estimate(seq: Sequence, method: str) -> tuple[np.ndarray, float]:
    """Estimated (T, K, 2) track and seconds spent in the smoother."""
    if method == "raw":
        return seq.meas.copy(), 0.0
    out = seq.meas.copy()
    t0 = time.perf_counter()
    if method in ("rts", "fixed-lag"):
        sm = FixedLagSmoother(lag=None if method == "rts" else OFFLINE_LAG)
        done = []
        for i in range(FRAMES):
            done += sm.push(frame_keypoints(seq, i, False), i / FPS, i)
        done += sm.flush()
        results = dict(done)
    else:
        sm = KeypointSmoother() if method == "one-euro" else KalmanSmoother(order=2 if method == "kalman-ca" else 1)
        results = {i: sm.update(frame_keypoints(seq, i, method == "one-euro"), i / FPS) for i in range(FRAMES)}
    spent = time.perf_counter() - t0
    for i, kp in results.items():
        shown = kp.visible[0] if method != "one-euro" else np.ones(len(seq.labelled), bool)
        out[i, shown] = kp.xy[0, shown]  # a dropped joint counts with its raw measurement
    return out, spent


def shifted(x: np.ndarray, d: float) -> np.ndarray:
    """``x`` delayed by ``d`` frames (linear interpolation along axis 0, edges held)."""
    t = np.arange(len(x), dtype=np.float64)
    flat = x.reshape(len(x), -1)
    return np.stack([np.interp(t - d, t, col) for col in flat.T], axis=1).reshape(x.shape)


def lag_frames(truth: list[np.ndarray], est: list[np.ndarray], iterations: int = 6) -> float:
    """Delay ``d`` (frames, sub-frame) that best aligns the estimate with the truth: argmin Σ|e(t) − x(t − d)|².

    This is the peak of the (energy-normalised) cross-correlation of estimate and truth, found by Gauss-Newton on
    the shift rather than read off a correlation curve: smooth paths have broad correlation peaks, whose sampled
    maximum is swayed by window edges (positions) or by noise (velocities); the least-squares shift is not.
    """
    d = 0.0
    for _ in range(iterations):
        num = den = 0.0
        for tr, es in zip(truth, est, strict=True):
            xs = shifted(tr, d)
            v = np.gradient(xs, axis=0)
            num += float(np.sum((es - xs) * v))
            den += float(np.sum(v * v))
        d -= num / den
    return d


def metrics(seqs: list[Sequence], est: list[np.ndarray]) -> dict[str, float]:
    pairs = [(s.truth[:, s.labelled], e[:, s.labelled]) for s, e in zip(seqs, est, strict=True)]
    err = np.concatenate([np.linalg.norm(e - tr, axis=-1).ravel() for tr, e in pairs])
    jitter = np.concatenate([np.linalg.norm(np.diff(e, 2, axis=0), axis=-1).ravel() for _, e in pairs])
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "p95": float(np.percentile(err, 95)),
        "lag": lag_frames([tr for tr, _ in pairs], [e for _, e in pairs]),
        "jitter": float(jitter.mean()),
    }


def poses(min_labelled: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for truth in load_coco_truth(COCO_JSON).values():
        for row in range(len(truth.key_points)):
            vis = truth.key_points.visible[row]
            if vis.sum() >= min_labelled:
                out.append((truth.key_points.xy[row].astype(np.float64), vis.copy()))
    return out


METHODS = ("raw", "one-euro", "kalman", "kalman-ca", "fixed-lag", "rts")
KEYFRAMES: tuple[int | str, ...] = (1, 2, 3, 4, AUTO)


def live_cost(frames: int = 300) -> str:
    """The webcam path's added work per frame (ByteTrack ids + causal smoother) on the COCO image with most people."""
    truth = max(load_coco_truth(COCO_JSON).values(), key=lambda t: len(t.key_points)).key_points
    rng = np.random.default_rng(0)
    parts = []
    for name in ("one-euro", "kalman"):
        tracker, smoother = PersonTracker(30.0, 0.5), make_smoother(name)
        times = []
        for i in range(frames):
            kp = sv.KeyPoints(
                xy=(truth.xy + rng.normal(0, 2, truth.xy.shape)).astype(np.float32), class_id=truth.class_id,
                keypoint_confidence=truth.keypoint_confidence, detection_confidence=truth.detection_confidence,
                visible=truth.visible, data=dict(truth.data),
            )  # fmt: skip
            t0 = time.perf_counter()
            smoother.update(tracker.update(kp, i / FPS), i / FPS)
            times.append(time.perf_counter() - t0)
        parts.append(f"{name} {1000 * np.median(times):.2f} ms")
    return f"live (tracking + causal smoother, {len(truth)} people, median per frame): " + ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sequences", type=int, default=8, help="sequences per run (poses drawn from the COCO truth)")
    ap.add_argument("--articulation", type=float, default=0.0, help="limb swing amplitude in degrees (0: rigid pose)")
    ap.add_argument("--keyframes-only", action="store_true", help="only raw and the keyframe rows (faster)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    library = poses()
    seqs = [
        make_sequence(rng, *library[int(rng.integers(len(library)))], args.articulation) for _ in range(args.sequences)
    ]
    truth_jitter = metrics(seqs, [s.truth for s in seqs])["jitter"]
    print(
        f"{args.sequences} sequences x {FRAMES} frames at {FPS:.0f} fps from {len(library)} COCO poses, "
        f"seed {args.seed}, articulation {args.articulation:g} deg; truth jitter {truth_jitter:.2f} px/frame^2"
    )
    results = {}
    print(f"{'method':10s} {'rmse px':>8s} {'p95 px':>8s} {'lag fr':>7s} {'jitter':>7s} {'ms/frame':>9s}")
    for m in ("raw",) if args.keyframes_only else METHODS:
        runs = [estimate(s, m) for s in seqs]
        results[m] = r = metrics(seqs, [e for e, _ in runs])
        ms = 1000 * sum(s for _, s in runs) / (FRAMES * len(seqs))
        print(f"{m:10s} {r['rmse']:8.2f} {r['p95']:8.2f} {r['lag']:7.2f} {r['jitter']:7.2f} {ms:9.3f}")
    raw = results["raw"]["rmse"]
    print(f"{'keyframes':10s} {'rmse px':>8s} {'/raw':>6s} {'p95 px':>8s} {'lag fr':>7s} {'runs/frame':>10s}")
    for setting in KEYFRAMES:
        runs = [keyframe_estimate(s, setting) for s in seqs]
        r = metrics(seqs, [e for e, _ in runs])
        per_frame = sum(n for _, n in runs) / (FRAMES * len(seqs))
        ratio = r["rmse"] / raw
        print(f"{setting!s:10s} {r['rmse']:8.2f} {ratio:6.2f} {r['p95']:8.2f} {r['lag']:7.2f} {per_frame:10.2f}")
    if args.keyframes_only:
        return
    print(live_cost())
    kal = results["kalman"]
    print(
        f"smoothing: kalman/raw rmse {kal['rmse'] / results['raw']['rmse']:.2f}, "
        f"kalman/one-euro rmse {kal['rmse'] / results['one-euro']['rmse']:.2f}, kalman lag {kal['lag']:.2f} frames"
    )


if __name__ == "__main__":
    main()
