"""The Video tab's motion plots: a tracked person's joint angles (±1σ band), a joint's trajectory, mean confidence.

The plots read the run's own exports back (``*_angles.csv``, ``*_keypoints.csv``, through
:mod:`rfdetr_demo.video.motion_plots`), so the page shows exactly the numbers a user downloads. They are filled
after a run (a ``.then`` of the run event, so the ``/predict_video`` API keeps its outputs) and redrawn when the
person, angle or joint changes, without running the model again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from rfdetr_demo.video import motion_plots as mp

# Empty data with each plot's own columns (a LinePlot whose x/y columns are missing fails in the browser).
NO_ANGLES = pd.DataFrame({"timestamp_s": [], "degrees": [], "series": []})
NO_TRAJECTORY = pd.DataFrame({"timestamp_s": [], "pixels": [], "series": []})
NO_CONFIDENCE = pd.DataFrame({"timestamp_s": [], "mean_confidence": [], "source": pd.Series([], dtype=object)})
NO_DATA = (NO_ANGLES, NO_TRAJECTORY, NO_CONFIDENCE)
NOBODY = "Nobody was tracked in this clip, so there is nothing to plot."
WAITING = "Plots of a tracked person appear here after a run."

# Gradio 6.31's plots declare a Vega-Lite v5.17.0 spec (hard-coded in its frontend) to the Vega-Lite 6 it bundles, so
# vega-embed warns "The input spec uses Vega-Lite v5.17.0, but the current version of Vega-Lite is v6..." once per
# drawing. The spec draws the same under v6; only that one line is dropped from the console (a page script).
QUIET_VEGA_SCHEMA_WARNING = """
if (!window.rfdetrQuietVegaSchema) {
  window.rfdetrQuietVegaSchema = true;
  const warn = console.warn.bind(console);
  const stale = /The input spec uses Vega-Lite v5\.17\.0, but the current version of Vega-Lite is v6/;
  console.warn = (...args) => { if (!args.some((a) => typeof a === "string" && stale.test(a))) warn(...args); };
}
"""


@dataclass
class MotionPanel:
    person: gr.Dropdown
    angle: gr.Dropdown
    joint: gr.Dropdown
    note: gr.Markdown
    angles_plot: gr.LinePlot
    trajectory_plot: gr.LinePlot
    confidence_plot: gr.ScatterPlot

    @property
    def choices(self) -> list[gr.components.Component]:
        return [self.person, self.angle, self.joint]

    @property
    def plots(self) -> list[gr.components.Component]:
        return [self.angles_plot, self.trajectory_plot, self.confidence_plot]


def build_motion_panel() -> MotionPanel:
    """The panel; the plots stay hidden until a run gives them data (an empty Vega plot warns in the console)."""
    with gr.Accordion("Motion: joint angles, trajectory, confidence over time", open=True, elem_id="motion-panel"):
        note = gr.Markdown(WAITING, elem_id="motion-note")
        with gr.Row():
            person = gr.Dropdown([], label="Person (tracker id)", elem_id="motion-person")
            angle = gr.Dropdown([], label="Joint angle", elem_id="motion-angle")
            joint = gr.Dropdown([], label="Joint trajectory", elem_id="motion-joint")
        angles_plot = gr.LinePlot(
            NO_ANGLES, x="timestamp_s", y="degrees", color="series", x_title="time (s)", y_title="degrees",
            label="Joint angle (±1σ from the predicted covariance)", elem_id="motion-angles",
            visible=False,
        )  # fmt: skip
        with gr.Row():
            trajectory_plot = gr.LinePlot(
                NO_TRAJECTORY, x="timestamp_s", y="pixels", color="series", x_title="time (s)", y_title="pixels",
                label="Trajectory (image x and y)", elem_id="motion-trajectory", visible=False,
            )  # fmt: skip
            confidence_plot = gr.LinePlot(
                NO_CONFIDENCE, x="timestamp_s", y="mean_confidence", x_title="time (s)", y_title="mean confidence",
                y_lim=[0, 1], label="Mean keypoint confidence", elem_id="motion-confidence",
                visible=False,
            )  # fmt: skip
    return MotionPanel(person, angle, joint, note, angles_plot, trajectory_plot, confidence_plot)


def _export(files: Sequence[Any] | None, suffix: str) -> Path | None:
    for f in files or ():
        path = Path(getattr(f, "name", None) or str(f))
        if path.name.endswith(suffix) and path.is_file():
            return path
    return None


def _frames(files: Sequence[Any] | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    angles, keypoints = _export(files, "_angles.csv"), _export(files, "_keypoints.csv")
    return (
        mp.read_angles(angles) if angles else None,
        mp.read_keypoints(keypoints) if keypoints else None,
    )


def motion_data(
    files: Sequence[Any] | None, person: int | None, angle: str | None, joint: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The three plots' data for a choice (empty frames where there is nothing to show)."""
    angles, keypoints = _frames(files)
    if angles is None or person is None:
        return NO_DATA
    pid = int(person)
    angle_df = mp.angle_series(angles, pid, angle) if angle in mp.angle_names(angles) else NO_ANGLES
    traj_df = mp.trajectory_series(keypoints, pid, joint) if keypoints is not None and joint else NO_TRAJECTORY
    return angle_df, traj_df, mp.confidence_series(angles, pid)


def _shown(frame: pd.DataFrame) -> Any:
    """A plot with data, or hidden (an empty Vega plot logs "Infinite extent" warnings)."""
    return gr.update(value=frame, visible=not frame.empty)


def plot_updates(files: Sequence[Any] | None, person: int | None, angle: str | None, joint: str | None) -> list[Any]:
    return [_shown(df) for df in motion_data(files, person, angle, joint)]


def _person_choices(files: Sequence[Any] | None, person: int | None) -> tuple[list[str], list[str]]:
    """Angles measured and joints seen for ``person`` (only what exists, so every choice draws something)."""
    angles, keypoints = _frames(files)
    if angles is None or person is None:
        return [], []
    rows = angles[angles["person_id"] == int(person)]
    names = [n for n in mp.angle_names(angles) if rows[f"{n}_deg"].notna().any()]
    joints: list[str] = []
    if keypoints is not None:
        seen = keypoints[(keypoints["person_id"] == int(person)) & (keypoints["visible"].astype(str) == "True")]
        joints = list(dict.fromkeys(seen["keypoint"]))
    return names, joints


def person_choice(files: Sequence[Any] | None, person: int | None) -> tuple[Any, ...]:
    """A person picked: their angles and joints to choose from, the first ones drawn."""
    names, joints = _person_choices(files, person)
    angle = next((n for n in names if "knee" in n), names[0] if names else None)
    joint = next((j for j in joints if "wrist" in j), joints[0] if joints else None)
    return (
        gr.update(choices=names, value=angle),
        gr.update(choices=joints, value=joint),
        *plot_updates(files, person, angle, joint),
    )


def motion_choices(files: Sequence[Any] | None) -> tuple[Any, ...]:
    """After a run: people (longest-tracked first), their angles and joints, the first choice drawn, and a note."""
    angles, _ = _frames(files)
    people = mp.person_ids(angles) if angles is not None else []
    person = people[0] if people else None
    note = WAITING if angles is None else "" if people else NOBODY
    return (gr.update(choices=people, value=person), *person_choice(files, person), note)


def wire_motion_panel(panel: MotionPanel, files: gr.File, run_event: Any) -> None:
    """Fill the panel after each run; redraw on every choice (no model call, private endpoints)."""
    outputs = [*panel.choices, *panel.plots, panel.note]
    run_event.then(motion_choices, [files], outputs, api_visibility="private", show_progress="hidden")
    panel.person.input(
        person_choice, [files, panel.person], [panel.angle, panel.joint, *panel.plots], api_visibility="private"
    )
    for choice in (panel.angle, panel.joint):
        choice.input(plot_updates, [files, *panel.choices], panel.plots, api_visibility="private")
