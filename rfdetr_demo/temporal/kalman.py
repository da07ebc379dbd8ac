"""Kalman filtering of keypoints, with the model's own predicted 2×2 covariance per joint as the measurement noise.

A joint the model is sure of pulls the estimate hard and a vague one barely moves it, per joint, frame and direction
(One-Euro only sees the confidence). Own numpy rather than filterpy: that is unmaintained, filters one state vector
at a time and has no batched RTS over masked joints.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import supervision as sv

from rfdetr_demo.results.prediction import BOXES, COVARIANCE, with_arrays
from rfdetr_demo.temporal.tracking import UNCONFIRMED

# Chi-square 2-dof 99 % quantile: a measurement this unlikely under its own covariance is treated as an outlier.
GATE_99 = 9.21


@lru_cache(maxsize=64)  # one per frame interval seen: every person and frame at a steady rate shares it
def transition(dt: float, order: int) -> np.ndarray:
    """State transition ``F`` for state ``[x, y, vx, vy(, ax, ay)]`` over ``dt`` seconds."""
    one = np.eye(order + 1)
    for i in range(order):
        for j in range(i + 1, order + 1):
            one[i, j] = dt ** (j - i) / np.prod(np.arange(1, j - i + 1))
    return _frozen(np.kron(one, np.eye(2)))


@lru_cache(maxsize=64)
def process_noise(dt: float, order: int) -> np.ndarray:
    """Unit-strength discrete white-noise ``Q`` (white acceleration for order 1, white jerk for order 2)."""
    n = order + 1
    one = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            p, q = order - i, order - j  # powers of dt of the states' integrals of the noise
            one[i, j] = dt ** (p + q + 1) / ((p + q + 1) * np.prod(np.arange(1, p + 1)) * np.prod(np.arange(1, q + 1)))
    return _frozen(np.kron(one, np.eye(2)))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False  # cached and shared: nobody may change it in place
    return a


def inv2(m: np.ndarray) -> np.ndarray:
    """Inverse of a stack of 2×2 matrices (closed form; ``np.linalg.inv`` is ~5× slower for tiny matrices)."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    out = np.empty_like(m)
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = d, -b, -c, a
    return out / det[..., None, None]


def kalman_update(
    x: np.ndarray, p: np.ndarray, z: np.ndarray, r: np.ndarray, gate: float | None = GATE_99
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Measurement update of stacked states ``x (K, d)``, ``p (K, d, d)`` with positions ``z (K, 2)``, noise ``r``.

    Returns the new state, covariance and each measurement's squared Mahalanobis distance (the normalised
    innovation). Measurements beyond the gate get their noise inflated by ``d² / gate`` (soft, Huber-like).
    """
    y = z - x[:, :2]
    s = p[:, :2, :2] + r
    d2 = np.einsum("ki,kij,kj->k", y, inv2(s), y)
    if gate is not None:
        inflate = np.maximum(1.0, d2 / gate)
        s = p[:, :2, :2] + r * inflate[:, None, None]
    gain = p[:, :, :2] @ inv2(s)  # (K, d, 2)
    x = x + np.einsum("kij,kj->ki", gain, y)
    p = p - gain @ p[:, :2, :]
    return x, 0.5 * (p + p.transpose(0, 2, 1)), d2


@dataclass
class TrackState:
    """Filter state of one person: per-joint states, covariances, and how long each joint went unmeasured."""

    x: np.ndarray  # (K, d)
    p: np.ndarray  # (K, d, d)
    alive: np.ndarray  # (K,) the joint has a state
    missing: np.ndarray  # (K,) frames since the last measurement
    t: float
    gated: np.ndarray  # (K,) consecutive measurements beyond the gate


@dataclass
class StepRecord:
    """What the RTS smoother needs from one filter step of one track (see :mod:`rfdetr_demo.temporal.kalman`)."""

    x_pred: np.ndarray
    p_pred: np.ndarray
    x_filt: np.ndarray
    p_filt: np.ndarray
    f: np.ndarray  # transition from the previous step to this one
    alive: np.ndarray
    fresh: np.ndarray  # (re)started at this step: the chain to the previous step is broken
    innovation: np.ndarray  # (K,) squared Mahalanobis distance of each measurement to its prediction (NaN: none)


class KalmanSmoother:
    """Causal Kalman filter for every joint of every tracked person (the same interface as ``KeypointSmoother``).

    Each joint is a constant-velocity point (``order=2``: constant acceleration) in pixels, with process noise scaled
    by the person's box diagonal; a person's joints are filtered at once as stacked arrays. A hidden joint is
    predicted, not updated, and dropped after ``max_coast`` frames; an outlier beyond the ``gate`` is down-weighted,
    not rejected; a track unseen for ``max_gap_s`` starts fresh. Outputs carry the filtered covariance in
    ``data["covariance"]`` and mark joints shown from prediction alone in ``data["predicted"]``.
    """

    fills_gaps = True  # predicts every joint, with a covariance, between measurements

    def __init__(
        self,
        order: int = 1,
        accel: float = 0.4,
        max_coast: int = 5,
        max_gap_s: float = 1.0,
        gate: float | None = GATE_99,
        init_speed: float = 0.5,
        max_gated: int = 3,
    ) -> None:
        """``accel``: process noise std in box diagonals per s² (order 1) or per s³ (order 2).

        ``init_speed``: prior std of a new joint's velocity, in box diagonals per second.
        """
        if order not in (1, 2):
            raise ValueError(f"order must be 1 (constant velocity) or 2 (constant acceleration), got {order}")
        self.order, self.accel, self.max_coast = order, accel, max_coast
        self.max_gap_s, self.gate, self.init_speed = max_gap_s, gate, init_speed
        self.max_gated = max_gated
        self.dim = 2 * (order + 1)
        self._tracks: dict[int, TrackState] = {}
        self.last_records: dict[int, StepRecord] = {}  # the latest update's filter steps (their innovations)

    def params(self) -> dict[str, Any]:
        """The settings ``web/src/temporal.js`` runs with (the in-browser engine's manifest carries them)."""
        return {"order": self.order, "accel": self.accel, "max_coast": self.max_coast, "max_gap_s": self.max_gap_s,
                "gate": self.gate, "init_speed": self.init_speed, "max_gated": self.max_gated}  # fmt: skip

    def update(self, key_points: sv.KeyPoints, timestamp: float) -> sv.KeyPoints:
        """Filtered copy (same rows); rows without a tracker id pass through."""
        filtered, self.last_records = self.filter(key_points, timestamp)
        return filtered

    def surprise(self) -> float | None:
        """:func:`motion_surprise` of the last update."""
        return motion_surprise(self.last_records)

    def filter(
        self, key_points: sv.KeyPoints, timestamp: float, filled: bool = False
    ) -> tuple[sv.KeyPoints, dict[int, StepRecord]]:
        """Filtered copy plus, per filtered row, the step record the RTS smoother uses.

        ``filled``: a frame the model skipped (keyframes): every joint is predicted, and the frame does not count
        towards ``max_coast``, which counts model runs without the joint.
        """
        ids = key_points.data.get("tracker_id") if key_points.data else None
        records: dict[int, StepRecord] = {}
        if ids is None or len(key_points) == 0:
            self._expire(timestamp)
            return key_points, records
        n, k = key_points.xy.shape[:2]
        xy = key_points.xy.astype(np.float32).copy()
        vis = key_points.visible if key_points.visible is not None else np.ones((n, k), bool)
        visible = vis.copy()
        cov_in = key_points.data.get(COVARIANCE)
        boxes = np.asarray(key_points.data[BOXES], dtype=np.float64).reshape(n, 4)
        diag = np.maximum(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 1.0)
        cov = np.zeros((n, k, 2, 2), np.float32) if cov_in is None else np.asarray(cov_in, np.float32).copy()
        predicted = np.zeros((n, k), bool)
        for row, tid in enumerate(np.asarray(ids, dtype=int)):
            if tid == UNCONFIRMED:
                continue
            z = xy[row].astype(np.float64)
            r = self._noise(cov_in, row, k, diag[row])
            measured = vis[row] & np.isfinite(z).all(axis=1) & np.isfinite(r).all(axis=(1, 2)) & (not filled)
            rec = self._step(int(tid), z, r, measured, timestamp, diag[row], filled)
            records[row] = rec
            alive = rec.alive
            xy[row, alive] = rec.x_filt[alive, :2]
            cov[row, alive] = rec.p_filt[alive, :2, :2]
            visible[row] = alive
            predicted[row] = alive & ~measured
        self._expire(timestamp)
        data = dict(key_points.data)
        data[COVARIANCE] = cov
        data["predicted"] = predicted
        return with_arrays(key_points, xy=xy, visible=visible, data=data), records

    def _noise(self, cov: np.ndarray | None, row: int, k: int, diag: float) -> np.ndarray:
        if cov is None:  # no covariance from the model: assume 2 % of the person's size
            return np.broadcast_to(np.eye(2) * (0.02 * diag) ** 2, (k, 2, 2)).copy()
        r = np.asarray(cov[row], dtype=np.float64)
        return 0.5 * (r + r.transpose(0, 2, 1)) + np.eye(2) * 1e-3  # symmetric, strictly positive

    def _fresh_state(self, z: np.ndarray, r: np.ndarray, diag: float, joints: np.ndarray, st: TrackState) -> None:
        st.x[joints] = 0.0
        st.x[joints, :2] = z[joints]
        p0 = np.zeros((int(joints.sum()), self.dim, self.dim))
        p0[:, :2, :2] = r[joints]
        rates = (self.init_speed * diag) ** 2, (self.accel * diag) ** 2
        for i in range(1, self.order + 1):
            p0[:, 2 * i, 2 * i] = p0[:, 2 * i + 1, 2 * i + 1] = rates[i - 1]
        st.p[joints] = p0
        st.alive[joints] = True
        st.missing[joints] = 0
        st.gated[joints] = 0

    def _step(
        self, tid: int, z: np.ndarray, r: np.ndarray, measured: np.ndarray, t: float, diag: float, filled: bool
    ) -> StepRecord:
        k, d = len(z), self.dim
        nis = np.full(k, np.nan)
        st = self._tracks.get(tid)
        if st is None or t - st.t > self.max_gap_s or t <= st.t:
            zeros = np.zeros(k, int)
            st = TrackState(np.zeros((k, d)), np.zeros((k, d, d)), zeros.astype(bool), zeros.copy(), t, zeros)
            self._tracks[tid] = st
            self._fresh_state(z, r, diag, measured, st)
            f = np.eye(d)
            x, p = st.x.copy(), st.p.copy()
            return StepRecord(x, p, x.copy(), p.copy(), f, st.alive.copy(), measured.copy(), nis)
        dt = round(t - st.t, 6)  # rounded: frames at a steady rate share the cached matrices
        f = transition(dt, self.order)
        q = process_noise(dt, self.order) * (self.accel * diag) ** 2
        st.x = st.x @ f.T
        st.p = f @ st.p @ f.T + q
        x_pred, p_pred = st.x.copy(), st.p.copy()
        upd = measured & st.alive
        if upd.any():
            st.x[upd], st.p[upd], d2 = kalman_update(st.x[upd], st.p[upd], z[upd], r[upd], self.gate)
            st.gated[upd] = np.where(d2 > (self.gate or np.inf), st.gated[upd] + 1, 0)
            nis[upd] = d2
        st.missing[upd] = 0
        coast = st.alive & ~measured
        st.missing[coast] += 0 if filled else 1
        st.alive[coast & (st.missing > self.max_coast)] = False
        # Lost lock: measurements keep landing beyond the gate, so the joint really went elsewhere. Restart it there.
        st.alive[upd & (st.gated >= self.max_gated)] = False
        fresh = measured & ~st.alive
        self._fresh_state(z, r, diag, fresh, st)
        st.t = t
        return StepRecord(x_pred, p_pred, st.x.copy(), st.p.copy(), f, st.alive.copy(), fresh, nis)

    def _expire(self, t: float) -> None:
        for tid in [i for i, s in self._tracks.items() if t - s.t > self.max_gap_s]:
            del self._tracks[tid]


# Fixed-lag Rauch-Tung-Striebel smoothing of keypoints for offline video, where later frames are known.
def rts_backward(records: list[StepRecord]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Smoothed ``(x, P)`` for each step of one track, oldest first; joints are chained only while alive."""
    x_s, p_s = records[-1].x_filt.copy(), records[-1].p_filt.copy()
    out = [(x_s, p_s)]
    for cur, nxt in zip(reversed(records[:-1]), reversed(records[1:]), strict=True):
        chain = cur.alive & nxt.alive & ~nxt.fresh
        x_new, p_new = cur.x_filt.copy(), cur.p_filt.copy()
        if chain.any():
            pf, pp = cur.p_filt[chain], nxt.p_pred[chain]
            gain = pf @ nxt.f.T @ np.linalg.inv(pp)
            x_new[chain] = cur.x_filt[chain] + np.einsum("kij,kj->ki", gain, x_s[chain] - nxt.x_pred[chain])
            p = pf + gain @ (p_s[chain] - pp) @ gain.transpose(0, 2, 1)
            p_new[chain] = 0.5 * (p + p.transpose(0, 2, 1))
        x_s, p_s = x_new, p_new
        out.append((x_s, p_s))
    return out[::-1]


@dataclass
class _Pending:
    index: int
    payload: Any
    key_points: sv.KeyPoints
    rows: dict[int, int] = field(default_factory=dict)  # row -> tracker id


class FixedLagSmoother:
    """Delays frames by ``lag`` and replaces each filtered joint by its RTS-smoothed estimate."""

    def __init__(self, lag: int | None = 15, **kalman: Any) -> None:
        if lag is not None and lag < 1:
            raise ValueError(f"lag must be at least 1 frame (or None for full RTS), got {lag}")
        self.lag = lag
        self.filter = KalmanSmoother(**kalman)
        self._pending: deque[_Pending] = deque()
        self._history: dict[int, list[tuple[int, StepRecord]]] = {}
        self._count = 0
        self.last_records: dict[int, StepRecord] = {}  # the latest push's filter steps (its innovations: keyframes)

    def surprise(self) -> float | None:
        """:func:`motion_surprise` of the latest push (what an auto keyframe schedule listens to)."""
        return motion_surprise(self.last_records)

    def push(
        self, key_points: sv.KeyPoints, timestamp: float, payload: Any = None, filled: bool = False
    ) -> list[tuple[Any, sv.KeyPoints]]:
        """Filter one frame; return the frames (payload, smoothed keypoints) that are now final, oldest first.

        ``filled``: the model skipped this frame; its rows (people seen on the keyframes) are only predicted here and
        get their positions from the RTS pass once the next keyframe has been filtered.
        """
        filtered, records = self.filter.filter(key_points, timestamp, filled)
        self.last_records = records
        ids = np.asarray(key_points.data.get("tracker_id", []), dtype=int) if key_points.data else np.zeros(0, int)
        item = _Pending(self._count, payload, filtered)
        for row, rec in records.items():
            tid = int(ids[row])
            # A reset track or joint breaks the chain itself (its record is ``fresh``), so history is kept as is.
            self._history.setdefault(tid, []).append((self._count, rec))
            item.rows[row] = tid
        self._pending.append(item)
        self._count += 1
        if self.lag is not None and len(self._pending) > self.lag:
            return self._release(1)
        return []

    def flush(self) -> list[tuple[Any, sv.KeyPoints]]:
        """Release every frame still held (end of the clip)."""
        return self._release(len(self._pending))

    def _release(self, count: int) -> list[tuple[Any, sv.KeyPoints]]:
        batch = [self._pending.popleft() for _ in range(count)]
        first = batch[0].index
        smoothed: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for tid in {t for item in batch for t in item.rows.values()}:
            hist = [(i, r) for i, r in self._history.get(tid, []) if i >= first]
            if hist:
                smoothed[tid] = dict(zip([i for i, _ in hist], rts_backward([r for _, r in hist]), strict=True))
        out = [(item.payload, self._apply(item, smoothed)) for item in batch]
        last = batch[-1].index
        for tid in list(self._history):
            kept = [(i, r) for i, r in self._history[tid] if i > last]
            if kept:
                self._history[tid] = kept
            else:
                del self._history[tid]
        return out

    def _apply(self, item: _Pending, smoothed: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]]) -> sv.KeyPoints:
        kp = item.key_points
        if not item.rows:
            return kp
        xy = kp.xy.copy()
        data = dict(kp.data)
        cov = np.asarray(data["covariance"]).copy()
        for row, tid in item.rows.items():
            est = smoothed.get(tid, {}).get(item.index)
            if est is None:
                continue
            alive = kp.visible[row]
            xy[row, alive] = est[0][alive, :2]
            cov[row, alive] = est[1][alive, :2, :2]
        data["covariance"] = cov
        return with_arrays(kp, xy=xy, data=data)


def motion_surprise(records: dict[int, StepRecord]) -> float | None:
    """The largest per-person mean normalised innovation of one filter step (None when nothing was measured).

    Each joint's squared Mahalanobis distance is capped at the χ² 99 % gate, so one outlier joint cannot decide; the
    most surprising person decides, so one fast mover gets more model runs.
    """
    per_person = []
    for rec in records.values():
        d2 = rec.innovation[np.isfinite(rec.innovation)]
        if len(d2):
            per_person.append(float(np.mean(np.minimum(d2, GATE_99))))
    return max(per_person) if per_person else None
