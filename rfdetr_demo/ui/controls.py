"""The controls every tab shares (thresholds, resolution, views), with one set of defaults and latency labels."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rfdetr_demo.defaults import (
    DEFAULT_KEYPOINT_THRESHOLD,
    DEFAULT_THRESHOLD,
    RESOLUTION_PRESETS,
)
from rfdetr_demo.errors import UserError
from rfdetr_demo.models.predictor import validate_resolution
from rfdetr_demo.models.service import LatencyBook, labelled_resolution_choices
from rfdetr_demo.results.render import ALL_VIEWS, DEFAULT_VIEWS
from rfdetr_demo.ui.handlers import UiContext


def parse_resolution(value: object, default: int | None = None) -> int:
    """Dropdown values may arrive as text from API clients; anything but a multiple of 24 gets a clear error.

    An empty value (a direct call that left the resolution out) means ``default`` when one is given.
    """
    if value in (None, "") and default is not None:
        return validate_resolution(int(default))
    try:
        number = float(str(value).strip())
    except ValueError:
        raise UserError(f"resolution must be a positive multiple of 24, got {value!r}") from None
    if not number.is_integer():
        raise UserError(f"resolution must be a positive multiple of 24, got {value!r}")
    return validate_resolution(int(number))


def resolution_choices(default: int, book: LatencyBook | None = None) -> list[tuple[str, int]]:
    """Presets plus the model default, labelled for speed vs accuracy and, once measured, with the latency here."""
    return labelled_resolution_choices(default, book or LatencyBook(), RESOLUTION_PRESETS)


def refreshed_resolution_choices(default: int, book: LatencyBook, count: int) -> tuple[gr.Dropdown, ...] | Any:
    """Updates for ``count`` resolution dropdowns with labels from the latency measured so far."""
    updates = tuple(gr.Dropdown(choices=resolution_choices(default, book)) for _ in range(count))
    return updates[0] if count == 1 else updates


@dataclass
class Controls:
    threshold: gr.Slider
    keypoint_threshold: gr.Slider
    resolution: gr.Dropdown
    views: gr.CheckboxGroup

    def __iter__(self) -> Iterator[gr.components.Component]:
        """The controls in handler-argument order: threshold, keypoint threshold, resolution, views."""
        return iter((self.threshold, self.keypoint_threshold, self.resolution, self.views))


def make_controls(
    ctx: UiContext,
    default_views: tuple[str, ...] = DEFAULT_VIEWS,
    threshold_info: str = "Minimum person score.",
    views_label: str = "Views (shown side by side)",
    views_info: str = "All views come from the same single inference.",
    elem_prefix: str | None = None,
    keypoint_info: str = "Hides joints below this confidence (display only, no re-run).",
) -> Controls:
    """The four controls every tab shares, built with their final settings (``elem_prefix`` names their ids)."""
    threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, label="Detection threshold", info=threshold_info,
        elem_id=f"{elem_prefix}-threshold" if elem_prefix else None,
    )  # fmt: skip
    keypoint_threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_KEYPOINT_THRESHOLD, step=0.01, label="Keypoint confidence threshold",
        info=keypoint_info,
    )  # fmt: skip
    resolution = resolution_dropdown(
        ctx, "Square side fed to the model (multiple of 24): lower is faster, higher finds smaller people."
    )
    views = gr.CheckboxGroup(
        choices=list(ALL_VIEWS), value=list(default_views), label=views_label, info=views_info,
        elem_id=f"{elem_prefix}-views" if elem_prefix else None,
    )  # fmt: skip
    return Controls(threshold, keypoint_threshold, resolution, views)


# Gradio's slider sends `release` (what the tabs redraw on) when its number box loses focus or is clicked, not on
# Enter and not while a value is typed or pasted: the box showed 0.2 while the views stayed at 0.50. The box's own
# pointerup handler sends it, so Enter, and a pause after typing/pasting/arrow keys, fire that handler. The pause
# keeps a half-typed "0." from becoming a threshold of 0 (which would re-run the model).
NUMBER_BOX_SCRIPT = """
if (!window.rfdetrNumberBoxes) {
  window.rfdetrNumberBoxes = true;
  const pending = new WeakMap();
  const isBox = (el) => el instanceof HTMLInputElement && el.matches("input[data-testid=number-input]");
  const commit = (box) => {
    clearTimeout(pending.get(box));
    box.dispatchEvent(new PointerEvent("pointerup", { bubbles: true }));
  };
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && isBox(e.target)) commit(e.target); }, true);
  document.addEventListener("input", (e) => {
    if (!isBox(e.target)) return;
    clearTimeout(pending.get(e.target));
    pending.set(e.target, setTimeout(() => commit(e.target), PAUSE_MS));
  }, true);
}
"""
NUMBER_BOX_PAUSE_MS = 700


def page_scripts(*scripts: str) -> gr.HTML:
    """Once per page, last (the components before it keep their ids): an empty, hidden block running ``scripts``
    when the page loads, e.g. the number boxes' :data:`NUMBER_BOX_SCRIPT`."""
    return gr.HTML("", js_on_load="\n".join(scripts), elem_id="page-scripts", container=False, padding=False)


def number_box_script() -> str:
    return NUMBER_BOX_SCRIPT.replace("PAUSE_MS", str(NUMBER_BOX_PAUSE_MS))


def resolution_dropdown(ctx: UiContext, info: str) -> gr.Dropdown:
    """A resolution picker with the latency-labelled presets, registered so the page refreshes its labels."""
    resolution = gr.Dropdown(
        choices=resolution_choices(ctx.default_resolution), value=ctx.default_resolution,
        label="Inference resolution", allow_custom_value=True, info=info,
    )  # fmt: skip
    ctx.resolution_dropdowns.append(resolution)
    return resolution
