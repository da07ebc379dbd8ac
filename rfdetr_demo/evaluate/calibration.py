"""Is the predicted uncertainty honest? Coverage of the predicted covariance ellipses, and rank correlation.

If a joint's error really is Gaussian with the predicted covariance Σ, its squared Mahalanobis distance
``rᵀ Σ⁻¹ r`` follows a χ² law with 2 degrees of freedom, so the true joint falls inside the k-σ ellipse with
probability ``1 − exp(−k²/2)``: 39.3 % at 1σ and 86.5 % at 2σ. Covering less means the model is over-confident
(ellipses too small), more means under-confident. The rank correlation asks a weaker question that matters in
practice: are the joints the model is unsure about the ones it gets wrong?
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rfdetr_demo.evaluate.metrics import JointErrors

SIGMA_LEVELS: tuple[float, ...] = (1.0, 2.0)
CURVE_RADII = np.round(np.linspace(0.0, 3.0, 31), 2)


def expected_coverage(k: float) -> float:
    """Share of a 2-D Gaussian inside its k-σ ellipse."""
    return 1.0 - math.exp(-(k**2) / 2.0)


def mahalanobis_squared(residual: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d², usable): d² = rᵀ Σ⁻¹ r per joint; joints whose Σ is not positive definite are marked unusable."""
    a, b, c = covariance[:, 0, 0], 0.5 * (covariance[:, 0, 1] + covariance[:, 1, 0]), covariance[:, 1, 1]
    det = a * c - b * b
    usable = (a > 0) & (det > 0) & np.isfinite(det)
    safe = np.where(usable, det, 1.0)
    x, y = residual[:, 0], residual[:, 1]
    d2 = (c * x * x - 2 * b * x * y + a * y * y) / safe
    return np.where(usable, d2, np.nan), usable


def uncertainty_scale(covariance: np.ndarray) -> np.ndarray:
    """One number per joint, in pixels: the geometric mean of the ellipse's axes, det(Σ)^(1/4)."""
    det = covariance[:, 0, 0] * covariance[:, 1, 1] - covariance[:, 0, 1] * covariance[:, 1, 0]
    return np.power(np.clip(det, 0.0, None), 0.25)


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rank correlation (None for fewer than 3 joints or constant input)."""
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return round(float(spearmanr(x, y).statistic), 4)


def _coverage(d2: np.ndarray) -> dict[str, float | None]:
    return {f"{k:g}sigma": (round(float(np.mean(d2 <= k * k)), 4) if len(d2) else None) for k in SIGMA_LEVELS}


def calibration(joints: JointErrors, names: tuple[str, ...]) -> dict[str, Any] | None:
    """Coverage at 1σ / 2σ overall and per keypoint, a coverage curve, and the rank correlation; None without Σ."""
    if joints.covariance is None or not len(joints.keypoint):
        return None
    d2, usable = mahalanobis_squared(joints.residual, joints.covariance)
    kp, d2_ok = joints.keypoint[usable], d2[usable]
    scale, error = uncertainty_scale(joints.covariance[usable]), joints.error[usable]
    per_kp = []
    for j, name in enumerate(names):
        sel = kp == j
        per_kp.append({"keypoint": name, "n": int(sel.sum()), **_coverage(d2_ok[sel])})
    return {
        "joints": int(usable.sum()),
        "unusable_covariances": int((~usable).sum()),
        "expected": {f"{k:g}sigma": round(expected_coverage(k), 4) for k in SIGMA_LEVELS},
        "coverage": _coverage(d2_ok),
        "per_keypoint": per_kp,
        "spearman_uncertainty_vs_error": spearman(scale, error),
        "curve": {
            "k": CURVE_RADII.tolist(),
            "observed": [round(float(np.mean(d2_ok <= r * r)), 4) for r in CURVE_RADII],
            "expected": [round(expected_coverage(float(r)), 4) for r in CURVE_RADII],
        },
    }
