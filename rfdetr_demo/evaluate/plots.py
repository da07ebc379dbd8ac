"""PNG plots for the report: per-keypoint PCK bars and the calibration of the predicted covariance.

Matplotlib images rather than Gradio plot components: the same file is shown in the tab, offered as a download
and written by the CLI, so every surface shows the same picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rfdetr_demo.evaluate.calibration import expected_coverage
from rfdetr_demo.evaluate.pipeline import Evaluation

COLORS = ("#4287f5", "#f58230", "#3cc85a", "#a351fb", "#e6194b", "#808080")


def _figure(width: float, height: float):
    """A pyplot-free figure: pyplot's global state is not safe in server threads, a plain Figure is."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def per_keypoint_plot(evaluation: Evaluation, path: Path) -> Path:
    """PCK@0.1 (solid) and PCK@0.05 (hatched) per keypoint, one colour per prediction set."""
    names = evaluation.dataset.schema.names
    k, n_sets = len(names), len(evaluation.scores)
    fig = _figure(min(14.0, max(6.0, 0.45 * k * n_sets + 2)), 4.4)
    ax = fig.subplots()
    x = np.arange(k)
    width = 0.8 / n_sets
    for i, score in enumerate(evaluation.scores):
        pck10 = [r["PCK@0.1"] or 0.0 for r in score.per_keypoint]
        pck05 = [r["PCK@0.05"] or 0.0 for r in score.per_keypoint]
        offset = x - 0.4 + width * (i + 0.5)
        color = COLORS[i % len(COLORS)]
        ax.bar(offset, pck10, width, color=color, alpha=0.45, label=f"{score.name} · PCK@0.1")
        ax.bar(offset, pck05, width, color=color, label=f"{score.name} · PCK@0.05")
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 1.3)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("share of labelled joints")
    ax.set_title("Per-keypoint PCK (fraction of the box diagonal), on COCOeval's OKS-0.5 matches")
    ax.legend(fontsize=7, loc="upper center", ncol=min(4, 2 * n_sets), frameon=False)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def calibration_plot(evaluation: Evaluation, path: Path) -> Path | None:
    """Observed vs expected coverage of the k-σ ellipses, plus per-keypoint 1σ/2σ coverage; None without Σ."""
    scored = [s for s in evaluation.scores if s.calibration]
    if not scored:
        return None
    names = evaluation.dataset.schema.names
    fig = _figure(12, 4.4)
    curve, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    radii = np.linspace(0, 3, 61)
    curve.plot(radii, [expected_coverage(r) for r in radii], "k--", label="calibrated 2-D Gaussian")
    for i, s in enumerate(scored):
        c = s.calibration["curve"]
        curve.plot(c["k"], c["observed"], color=COLORS[i % len(COLORS)], label=s.name)
    curve.set_xlabel("ellipse size k (σ)")
    curve.set_ylabel("share of labelled joints inside")
    curve.set_title("Coverage of the predicted k-σ ellipses")
    curve.legend(fontsize=8)
    curve.grid(alpha=0.3)
    first = scored[0].calibration["per_keypoint"]
    x = np.arange(len(names))
    bars.bar(x - 0.2, [r["1sigma"] or 0.0 for r in first], 0.4, color="#3cc85a", label="inside 1σ")
    bars.bar(x + 0.2, [r["2sigma"] or 0.0 for r in first], 0.4, color="#e6194b", label="inside 2σ")
    bars.axhline(expected_coverage(1.0), color="#3cc85a", ls="--", lw=1)
    bars.axhline(expected_coverage(2.0), color="#e6194b", ls="--", lw=1)
    bars.set_xticks(x, [n.replace("_", " ") for n in names], rotation=45, ha="right", fontsize=8)
    bars.set_ylim(0, 1.05)
    bars.set_title(f"Per keypoint ({scored[0].name}); dashed: 39.3 % / 86.5 %")
    bars.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
