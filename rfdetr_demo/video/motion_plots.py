"""Motion plots of one video run: joint angles with their 1σ band, a joint's trajectory, mean keypoint confidence.

Every series is read back from the run's own exports (the angles CSV and the keypoints CSV), never recomputed, so
what the Video tab plots and what a user downloads are the same numbers by construction. The data functions are
pure pandas (long format: ``timestamp_s``, a value column, ``series``) so Gradio's ``gr.LinePlot`` draws them as
they are; :func:`write_motion_png` draws the angles of every tracked person into one PNG for the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

MAX_PNG_PERSONS = 6  # beyond this a plot is unreadable; the CSV holds everyone


def read_angles(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def read_keypoints(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def angle_names(angles: pd.DataFrame) -> list[str]:
    """Angle names in CSV order (columns ``<name>_deg``)."""
    return [c[: -len("_deg")] for c in angles.columns if c.endswith("_deg") and not c.endswith("_std_deg")]


def person_ids(angles: pd.DataFrame) -> list[int]:
    """Tracked people, the longest-seen first (the one a user most likely wants)."""
    if angles.empty:
        return []
    counts = angles.groupby("person_id").size().sort_values(ascending=False, kind="stable")
    return [int(i) for i in counts.index]


def angle_series(angles: pd.DataFrame, person_id: int, angle: str) -> pd.DataFrame:
    """``timestamp_s, degrees, series``: the angle and its ±1σ band edges (frames where it is defined)."""
    rows = angles[(angles["person_id"] == person_id) & angles[f"{angle}_deg"].notna()]
    t, deg, std = rows["timestamp_s"], rows[f"{angle}_deg"], rows[f"{angle}_std_deg"]
    parts = [pd.DataFrame({"timestamp_s": t, "degrees": deg, "series": angle})]
    has_std = std.notna()
    for sign, label in ((-1, f"{angle} − 1σ"), (1, f"{angle} + 1σ")):
        parts.append(pd.DataFrame({"timestamp_s": t[has_std], "degrees": (deg + sign * std)[has_std], "series": label}))
    return pd.concat(parts, ignore_index=True)


def trajectory_series(keypoints: pd.DataFrame, person_id: int, joint: str) -> pd.DataFrame:
    """``timestamp_s, pixels, series`` (x and y) of one joint, on the frames where it is shown."""
    rows = keypoints[(keypoints["person_id"] == person_id) & (keypoints["keypoint"] == joint)]
    rows = rows[rows["visible"].astype(str) == "True"]
    return pd.concat(
        [pd.DataFrame({"timestamp_s": rows["timestamp_s"], "pixels": rows[a], "series": f"{joint} {a}"}) for a in "xy"],
        ignore_index=True,
    )


def confidence_series(angles: pd.DataFrame, person_id: int) -> pd.DataFrame:
    """``timestamp_s, mean_confidence, source`` of one person (mean over all its keypoints, hidden ones included).

    ``source`` (``model`` / ``filled``) shows where the keyframes are: a filled frame carries its keyframe's
    confidences (the model did not see it). Older exports without the column count as all ``model``.
    """
    rows = angles[angles["person_id"] == person_id]
    source = rows.get("source", "model")
    return pd.DataFrame(
        {"timestamp_s": rows["timestamp_s"], "mean_confidence": rows["mean_confidence"], "source": source}
    )


def write_motion_png(angles_csv: str | Path, out: str | Path, title: str = "") -> Path | None:
    """One subplot per angle, one line (with a shaded ±1σ band) per tracked person; None when there is nothing."""
    angles = read_angles(angles_csv)
    names = angle_names(angles)
    people = person_ids(angles)[:MAX_PNG_PERSONS]
    if not names or not people:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: the CLI and servers have no display
    import matplotlib.pyplot as plt

    cols = 2 if len(names) > 1 else 1
    rows_n = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 2.4 * rows_n), sharex=True, squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        _plot_angle(ax, angles, people, name)
    for ax in axes.ravel()[len(names) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title or "Joint angles (shaded: ±1σ from the predicted covariance)", fontsize=10)
    fig.supxlabel("time (s)", fontsize=9)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_angle(ax, angles: pd.DataFrame, people: Sequence[int], name: str) -> None:
    for pid in people:
        rows = angles[angles["person_id"] == pid]
        t, deg, std = rows["timestamp_s"], rows[f"{name}_deg"], rows[f"{name}_std_deg"]
        (line,) = ax.plot(t, deg, lw=1.2, label=f"person {pid}")
        ax.fill_between(t, deg - std, deg + std, color=line.get_color(), alpha=0.2, lw=0)
        if "source" in rows and (rows["source"] == "filled").any():  # dots: the keyframes (model runs)
            key = rows["source"] == "model"
            ax.plot(t[key], deg[key], ".", ms=3, color=line.get_color())
    ax.set_title(name.replace("_", " "), fontsize=9)
    ax.set_ylabel("degrees", fontsize=8)
    ax.set_ylim(0, 180)
    ax.tick_params(labelsize=7)
