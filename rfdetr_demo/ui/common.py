"""Controls and helpers shared by the Image, Video and Webcam tabs.

One place defines the threshold sliders, resolution choices and view picker so every tab offers the same options
with the same defaults, and one function turns our exceptions into ``gr.Error`` messages for the page.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gradio as gr

from rfdetr_demo.images import ImageLoadError
from rfdetr_demo.latency import LatencyBook, labelled_resolution_choices
from rfdetr_demo.render import ALL_VIEWS, DEFAULT_VIEWS
from rfdetr_demo.schema import SchemaError
from rfdetr_demo.service import ModelUnavailable

log = logging.getLogger(__name__)

RESOLUTION_PRESETS: tuple[int, ...] = (288, 384, 480, 576, 672, 768)
DEFAULT_THRESHOLD = 0.5
DEFAULT_KEYPOINT_THRESHOLD = 0.3
# How long a request waits for a model that is still loading before it gives up with a message.
MODEL_WAIT_S = 600.0

F = TypeVar("F", bound=Callable[..., Any])

USER_ERRORS = (ImageLoadError, ModelUnavailable, SchemaError, ValueError)


def user_errors(fn: F) -> F:
    """Show expected failures as a clear ``gr.Error`` and unexpected ones as a short message (logged in full).

    Either way the exception stays inside this request: the server keeps serving everyone else.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            raise gr.Error(str(exc), title="Cannot process this input") from exc
        except Exception as exc:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(f"Unexpected error ({exc.__class__.__name__}: {exc}). The server is still running.") from exc

    return wrapper  # type: ignore[return-value]


def parse_resolution(value: object) -> int:
    """Dropdown values may arrive as text from API clients; anything but a multiple of 24 gets a clear error."""
    from rfdetr_demo.predictor import validate_resolution

    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"resolution must be a positive multiple of 24, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"resolution must be a positive multiple of 24, got {value!r}")
    return validate_resolution(int(number))


def resolution_choices(default: int, book: LatencyBook | None = None) -> list[tuple[str, int]]:
    """Presets plus the model default, labelled for speed vs accuracy and, once measured, with the latency here."""
    return labelled_resolution_choices(default, book or LatencyBook(), RESOLUTION_PRESETS)


# Every resolution dropdown built for the current page, so the page can refresh their latency labels.
_resolution_dropdowns: list[gr.Dropdown] = []


def begin_page() -> list[gr.Dropdown]:
    """Start collecting the resolution dropdowns of a page being built; returns the list they are added to."""
    _resolution_dropdowns.clear()
    return _resolution_dropdowns


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


def make_controls(
    default_resolution: int,
    default_views: tuple[str, ...] = DEFAULT_VIEWS,
    threshold_info: str = "Minimum person score.",
) -> Controls:
    threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, label="Detection threshold", info=threshold_info,
    )  # fmt: skip
    keypoint_threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_KEYPOINT_THRESHOLD, step=0.01, label="Keypoint confidence threshold",
        info="Hides joints below this confidence (display only, no re-run).",
    )  # fmt: skip
    resolution = gr.Dropdown(
        choices=resolution_choices(default_resolution), value=default_resolution, label="Inference resolution",
        allow_custom_value=True,
        info="Square side fed to the model (multiple of 24): lower is faster, higher finds smaller people.",
    )  # fmt: skip
    views = gr.CheckboxGroup(
        choices=list(ALL_VIEWS), value=list(default_views), label="Views (shown side by side)",
        info="All views come from the same single inference.",
    )  # fmt: skip
    _resolution_dropdowns.append(resolution)
    return Controls(threshold, keypoint_threshold, resolution, views)
