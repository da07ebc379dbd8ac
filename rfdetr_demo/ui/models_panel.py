"""The model picker every tab shares, the page's per-model status line and the ``/models`` API endpoint.

With one model the picker is hidden (the page looks as it always did) but still an input, so the endpoints take
the same ``model`` parameter whatever the server offers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.exports import safe_stem
from rfdetr_demo.image_task import ImageRun
from rfdetr_demo.registry import ModelRegistry
from rfdetr_demo.ui.common import UiContext, bind

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
