"""The model picker every tab shares, the page's per-model status line and the ``/models`` API endpoint.

With one model the picker is hidden (the page looks as it always did) but still an input, so the endpoints take
the same ``model`` parameter whatever the server offers.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.image.task import ImageRun
from rfdetr_demo.models.loading import failure_parts
from rfdetr_demo.models.registry import ModelRegistry
from rfdetr_demo.models.service import ServiceStatus
from rfdetr_demo.results.exports import safe_stem
from rfdetr_demo.ui.handlers import UiContext, bind

STATE_ICONS = {"ready": "✅", "loading": "⏳", "error": "❌", "not loaded": "💤"}
MODELS_POLL_S = 2.0


def _registry(ctx: UiContext) -> ModelRegistry:
    assert ctx.registry is not None
    return ctx.registry


def model_dropdown(ctx: UiContext, elem_id: str, label: str = "Model", multiselect: bool = False) -> gr.Dropdown:
    """A picker of the server's models (hidden when there is only one); the default model is picked."""
    registry = _registry(ctx)
    return gr.Dropdown(
        choices=registry.names, value=[registry.default] if multiselect else registry.default, label=label,
        elem_id=elem_id, multiselect=multiselect,
        visible=len(registry) > 1, info="Models load on first use; see the model line at the top.",
    )  # fmt: skip


def download_stem(ctx: UiContext, run: ImageRun, always: bool = False) -> str | None:
    """``photo_<model>`` for a run's downloads when the server offers several models (None: the photo's name)."""
    if len(_registry(ctx)) < 2 and not always:
        return None
    return f"{Path(run.source_name or 'keypoints').stem}_{safe_stem(run.prediction.model_info.name)}"


def list_models(ctx: UiContext) -> list[dict[str, Any]]:
    """The models this server offers (the first is the default): name, keypoints, classes, resolution, status.

    Returns:
        One entry per model: ``name``, ``num_keypoints`` and ``classes`` (null/empty until the model was loaded
        once), ``default_resolution`` and ``status`` ("ready", "loading", "not loaded" or "error") with its
        ``message``.
    """
    return [row.as_dict() for row in _registry(ctx).rows()]


def models_markdown(ctx: UiContext) -> str:
    """One line: each model with its state (empty with a single model: the status line says it all)."""
    registry = _registry(ctx)
    if len(registry) < 2:
        return ""
    parts = []
    for row in registry.rows():
        k = f" · K={row.num_keypoints}" if row.num_keypoints else ""
        parts.append(f"{STATE_ICONS.get(row.state, '')} **{row.name}** ({row.state}{k})")
    return f"**Models** (at most {registry.max_loaded} in memory): " + " · ".join(parts)


def build_models_panel(ctx: UiContext) -> None:
    """The per-model line (polled) and the hidden ``/models`` endpoint."""
    line = gr.Markdown(models_markdown(ctx), elem_id="models-status", visible=len(_registry(ctx)) > 1)
    if len(_registry(ctx)) > 1:
        gr.Timer(MODELS_POLL_S).tick(
            bind(models_markdown, ctx), None, line, api_visibility="private", queue=False, show_progress="hidden"
        )
    api_button = gr.Button("models", visible=False)
    api_button.click(bind(list_models, ctx), None, gr.JSON(visible=False), api_name="models", queue=False)


# The page's model status line: loading, ready (what runs where), or failed (one sentence, details folded away).
def status_markdown(status: ServiceStatus) -> str:
    """One line for the page header (two with the random-weights warning)."""
    if status.state == "ready" and status.info is not None:
        i = status.info
        text = (
            f"**Model:** {i.name} · **source:** {i.source} · **device:** {i.device} · "
            f"**precision:** {i.precision} · **engine:** {i.engine} · **default resolution:** "
            f"{i.default_resolution}² · **keypoints:** {i.num_keypoints}"
        )
        if i.random_weights:
            text = (
                "⚠️ **Random weights: the model is untrained and every result is meaningless.** "
                "This mode only demonstrates the interface.\n\n" + text
            )
        return text
    if status.state == "error":
        return failure_markdown(status)
    return f"⏳ {status.message or 'Loading the model…'}"


def failure_markdown(status: ServiceStatus) -> str:
    """What failed and what to do in one line; the raw error (a URL, a traceback line) in a closed ``<details>``."""
    if status.error is None:
        summary, advice, detail = "The model could not be loaded.", "See the server log.", status.message
    else:
        summary, advice, detail = failure_parts(status.error)
    line = f"❌ **{summary}** {_flags_as_code(advice)}".rstrip()
    if not detail:
        return line
    # HTML-escaped inside <pre>: the detail is an exception text, never markup.
    return f"{line}\n\n<details><summary>Details</summary><pre>{html.escape(detail)}</pre></details>"


def _flags_as_code(text: str) -> str:
    """``--checkpoint /path/x.pth`` → code, so a visitor sees the exact option to pass (advice is plain text)."""
    return re.sub(r"(--[a-z][a-z-]*(?: /\S+)?)", r"`\1`", text)
