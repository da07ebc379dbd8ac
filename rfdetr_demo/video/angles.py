"""Joint angles with a ±1σ band from the model's per-joint covariance, and the per-person motion rows.

The σ is first-order (delta-method) propagation of the three joints' 2×2 covariances, assuming independent errors:
honest while the spread is small next to the limbs. :func:`motion_rows` feeds both the angles CSV and the motion
plots, so they always show the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import supervision as sv

from rfdetr_demo.results.prediction import COVARIANCE, IDS
from rfdetr_demo.results.schema import Angle

MIN_LIMB_PX = 1e-3


def joint_angles(
    xy: np.ndarray, cov: np.ndarray | None, visible: np.ndarray, angles: Sequence[Angle]
) -> tuple[np.ndarray, np.ndarray]:
    """Angles in degrees ``(N, A)`` and their 1σ in degrees (NaN without covariance, hidden joint or no limb).

    At joint B between A and C: ``θ = |atan2(u × v, u · v)|`` with ``u = A − B``, ``v = C − B``, and
    ``Var θ = Σ_j g_jᵀ Σ_j g_j`` with ``∂θ/∂A = −s·u⊥/|u|²``, ``∂θ/∂C = s·v⊥/|v|²``, ``∂θ/∂B = −(∂θ/∂A + ∂θ/∂C)``
    (``u⊥ = (−u_y, u_x)``, ``s`` the sign of the signed angle).
    """
    n = len(xy)
    deg = np.full((n, len(angles)), np.nan)
    std = np.full((n, len(angles)), np.nan)
    for col, (_, (ia, ib, ic)) in enumerate(angles):
        a, b, c = (np.asarray(xy[:, i], dtype=np.float64) for i in (ia, ib, ic))
        u, v = a - b, c - b
        nu, nv = np.sum(u * u, axis=1), np.sum(v * v, axis=1)
        ok = visible[:, ia] & visible[:, ib] & visible[:, ic] & (nu > MIN_LIMB_PX) & (nv > MIN_LIMB_PX)
        ok &= np.isfinite(u).all(axis=1) & np.isfinite(v).all(axis=1)
        signed = np.arctan2(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0], np.sum(u * v, axis=1))
        deg[ok, col] = np.degrees(np.abs(signed[ok]))
        if cov is None:
            continue
        s = np.where(signed >= 0, 1.0, -1.0)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            g_a = -s * np.stack([-u[:, 1], u[:, 0]], axis=1) / nu[:, None]
            g_c = s * np.stack([-v[:, 1], v[:, 0]], axis=1) / nv[:, None]
        g_b = -(g_a + g_c)
        var = sum(
            np.einsum("ni,nij,nj->n", g, np.asarray(cov[:, j], dtype=np.float64), g)
            for g, j in ((g_a, ia), (g_b, ib), (g_c, ic))
        )
        good = ok & np.isfinite(var) & (var >= 0)
        std[good, col] = np.degrees(np.sqrt(var[good]))
    return deg, std


def angle_columns(angles: Sequence[Angle]) -> list[str]:
    """CSV/table column names: ``<angle>_deg`` and ``<angle>_std_deg`` per angle."""
    return [c for name, _ in angles for c in (f"{name}_deg", f"{name}_std_deg")]


def motion_rows(frame_index: int, timestamp: float, kp: sv.KeyPoints, angles: Sequence[Angle]) -> list[dict[str, Any]]:
    """One row per person: frame, time, id, mean keypoint confidence, then every angle and its std (rounded)."""
    if len(kp) == 0:
        return []
    deg, std = joint_angles(kp.xy, kp.data.get(COVARIANCE), kp.visible, angles)
    conf = np.asarray(kp.keypoint_confidence, dtype=np.float64).mean(axis=1)
    rows = []
    for i, pid in enumerate(np.asarray(kp.data[IDS], dtype=int)):
        row: dict[str, Any] = {
            "frame": int(frame_index),
            "timestamp_s": round(float(timestamp), 4),
            "person_id": int(pid),
            "mean_confidence": _num(conf[i]),
        }
        for col, (name, _) in enumerate(angles):
            row[f"{name}_deg"] = _num(deg[i, col], 2)
            row[f"{name}_std_deg"] = _num(std[i, col], 2)
        rows.append(row)
    return rows


def _num(v: float, digits: int = 4) -> float | None:
    return round(float(v), digits) if np.isfinite(v) else None
