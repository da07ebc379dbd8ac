"""Kalman filter and RTS smoother of keypoints: convergence, coasting, reset, covariance, and the smoother's gain."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.temporal.kalman import FixedLagSmoother, KalmanSmoother, process_noise, rts_backward, transition

K = 17


def _pose() -> np.ndarray:
    return np.stack([np.linspace(100, 140, K), np.linspace(50, 230, K)], axis=1)


def _kp(xy: np.ndarray, std: float | np.ndarray = 3.0, visible: np.ndarray | None = None, tid: int = 0):
    std = np.broadcast_to(np.asarray(std, dtype=np.float64), (K,))
    cov = np.zeros((1, K, 2, 2), np.float32)
    cov[0, :, 0, 0] = cov[0, :, 1, 1] = std**2
    return sv.KeyPoints(
        xy=xy[None].astype(np.float32),
        class_id=np.zeros(1, int),
        keypoint_confidence=np.full((1, K), 0.9, np.float32),
        detection_confidence=np.array([0.9], np.float32),
        visible=np.ones((1, K), bool) if visible is None else visible[None],
        data={
            "xyxy": np.array([[90, 40, 150, 240]], np.float32),
            "class_name": np.array(["person"]),
            "covariance": cov,
            "tracker_id": np.array([tid]),
        },
    )


def test_transition_and_noise_are_the_textbook_matrices():
    dt = 0.1
    f = transition(dt, 1)
    assert np.allclose(f[0], [1, 0, dt, 0]) and np.allclose(f[2], [0, 0, 1, 0])
    q = process_noise(dt, 1)
    assert np.allclose(q[[0, 0, 2], [0, 2, 2]], [dt**3 / 3, dt**2 / 2, dt])
    f2 = transition(dt, 2)
    assert np.isclose(f2[0, 4], dt**2 / 2)
    assert np.isclose(process_noise(dt, 2)[0, 0], dt**5 / 20)
    assert np.all(np.linalg.eigvalsh(process_noise(dt, 2)) > -1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_static_noisy_pose_converges(order):
    rng = np.random.default_rng(0)
    truth = _pose()
    kf = KalmanSmoother(order=order)
    est = []
    for i in range(150):
        out = kf.update(_kp(truth + rng.normal(0, 3.0, truth.shape)), i / 30)
        est.append(out.xy[0].astype(np.float64))
    late = np.asarray(est[30:])
    # Unbiased (the time average sits on the truth) and far steadier than one measurement (std 3 px).
    assert np.abs(late.mean(axis=0) - truth).max() < 1.0
    assert late.std(axis=0).mean() < 0.6 * 3.0
    assert np.abs(late - truth).mean() < np.abs(np.asarray(est[:3]) - truth).mean()
    assert not out.data["predicted"].any() and out.visible.all()


def test_covariance_shrinks_under_consistent_measurements():
    kf = KalmanSmoother()
    truth = _pose()
    traces = []
    for i in range(20):
        out = kf.update(_kp(truth, std=4.0), i / 30)
        traces.append(np.trace(out.data["covariance"][0], axis1=1, axis2=2).mean())
    assert np.isclose(traces[0], 2 * 16.0, rtol=1e-3)  # first frame: the measurement's own covariance
    assert all(b <= a + 1e-6 for a, b in itertools.pairwise(traces))
    assert traces[-1] < traces[0] / 2


def test_covariance_is_the_measurement_noise_per_joint():
    """A joint the model is unsure of moves the estimate less: R is the predicted covariance, not a constant."""
    kf = KalmanSmoother()
    truth = _pose()
    std = np.full(K, 2.0)
    std[3] = 20.0
    for i in range(10):
        kf.update(_kp(truth, std=std), i / 30)
    jumped = truth + 3.0  # within the gate of both
    out = kf.update(_kp(jumped, std=std), 10 / 30)
    moved = np.abs(out.xy[0, :, 0] - truth[:, 0])
    assert moved[3] < moved[4] / 1.5 and np.allclose(moved[4], moved[5])


def test_disappearing_joint_is_predicted_then_dropped():
    kf = KalmanSmoother(max_coast=4)
    truth = _pose()
    for i in range(30):  # joint 9 moves right at 60 px/s, everything else stands still
        z = truth.copy()
        z[9, 0] += 2.0 * i
        kf.update(_kp(z, std=1.0), i / 30)
    hidden = np.ones(K, bool)
    hidden[9] = False
    traces, xs = [], []
    for i in range(30, 36):
        out = kf.update(_kp(truth, std=1.0, visible=hidden), i / 30)
        if out.visible[0, 9]:
            assert out.data["predicted"][0, 9]
            traces.append(np.trace(out.data["covariance"][0, 9]))
            xs.append(out.xy[0, 9, 0])
    assert len(traces) == 4  # predicted for max_coast frames, then dropped
    assert all(b > a for a, b in itertools.pairwise(traces))  # growing uncertainty
    assert np.allclose(np.diff(xs), 2.0, atol=0.3)  # it keeps its velocity
    assert not out.visible[0, 9] and out.visible[0, 8]
    back = truth.copy()
    back[9] = [10.0, 10.0]  # a joint that comes back starts where it is measured, not where it was
    out = kf.update(_kp(back, std=1.0), 36 / 30)
    assert out.visible[0, 9] and np.allclose(out.xy[0, 9], [10.0, 10.0], atol=1e-3)


def test_reset_track_starts_fresh():
    kf = KalmanSmoother(max_gap_s=1.0)
    truth = _pose()
    for i in range(20):
        kf.update(_kp(truth), i / 30)
    far = truth + 300.0
    late = kf.update(_kp(far), 20 / 30 + 2.0)  # gone for 2 s: a new track, no memory of the old position
    assert np.allclose(late.xy[0], far, atol=1e-3)
    assert np.isclose(np.trace(late.data["covariance"][0, 0]), 18.0, rtol=1e-3)
    back = kf.update(_kp(truth), 0.0)  # time going backwards (a new clip) also restarts
    assert np.allclose(back.xy[0], truth, atol=1e-3)


def test_untracked_rows_pass_through_and_outliers_are_down_weighted():
    kf = KalmanSmoother()
    truth = _pose()
    kp = _kp(truth)
    kp.data["tracker_id"] = np.array([-1])
    passed = kf.update(kp, 0.0)
    assert np.array_equal(passed.xy, kp.xy) and not passed.data["predicted"].any()
    for i in range(30):
        kf.update(_kp(truth, std=2.0), i / 30)
    z = truth.copy()
    z[5] += 100.0  # a 50-sigma outlier
    out = kf.update(_kp(z, std=2.0), 1.0)
    assert np.abs(out.xy[0, 5] - truth[5]).max() < 10.0


def _moving_sequence(rng: np.random.Generator, n: int = 120):
    t = np.arange(n) / 30
    path = np.stack([200 + 80 * np.sin(2 * np.pi * 0.4 * t), 150 + 50 * np.cos(2 * np.pi * 0.3 * t)], axis=1)
    truth = _pose()[None] + path[:, None, :]
    return t, truth, truth + rng.normal(0, 4.0, truth.shape)


def test_rts_beats_the_causal_filter_on_motion():
    rng = np.random.default_rng(1)
    t, truth, meas = _moving_sequence(rng)
    kf = KalmanSmoother()
    rts = FixedLagSmoother(lag=None)
    lagged = FixedLagSmoother(lag=15)
    causal, full, fixed = [], [], []
    for i in range(len(t)):
        causal.append(kf.update(_kp(meas[i], std=4.0), t[i]).xy[0])
        assert rts.push(_kp(meas[i], std=4.0), t[i], i) == []
        fixed += lagged.push(_kp(meas[i], std=4.0), t[i], i)
    full = rts.flush()
    fixed += lagged.flush()
    assert [p for p, _ in full] == list(range(len(t))) == [p for p, _ in fixed]

    def rmse(est):
        return np.sqrt(np.mean((np.asarray(est)[10:] - truth[10:]) ** 2))

    assert rmse([k.xy[0] for _, k in full]) < 0.8 * rmse(causal)
    assert rmse([k.xy[0] for _, k in fixed]) < 1.05 * rmse([k.xy[0] for _, k in full])
    # Smoothed covariance is never larger than the filtered one.
    assert np.trace(full[60][1].data["covariance"][0, 0]) <= np.trace(
        kf.update(_kp(meas[-1]), 99).data["covariance"][0, 0]
    )


def test_rts_backward_of_a_single_step_is_the_filter():
    kf = KalmanSmoother()
    _, records = kf.filter(_kp(_pose()), 0.0)
    ((x, p),) = rts_backward([records[0]])
    assert np.allclose(x, records[0].x_filt) and np.allclose(p, records[0].p_filt)


def test_a_joint_that_really_moved_is_reacquired_not_ignored():
    """Outliers are down-weighted, but a joint whose measurements stay far away restarts there (lost lock)."""
    kf = KalmanSmoother(max_gated=3)
    truth = _pose()
    for i in range(30):
        kf.update(_kp(truth, std=2.0), i / 30)
    moved = truth.copy()
    moved[5] += 100.0
    errs = [np.abs(kf.update(_kp(moved, std=2.0), (30 + i) / 30).xy[0, 5] - moved[5]).max() for i in range(5)]
    assert errs[0] > 50.0 and errs[3] < 1e-3
