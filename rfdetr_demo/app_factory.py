"""Wire settings → model service → Blocks, and settings → ``launch()`` keyword arguments."""

from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from rfdetr_demo.config import Settings
from rfdetr_demo.loading import load_rfdetr
from rfdetr_demo.service import ModelService, shared_service


def model_service(settings: Settings) -> ModelService:
    """The process-wide service for these settings (one model per process)."""
    spec = settings.model_spec()
    return shared_service(spec, partial(load_rfdetr, spec))


def create_app(settings: Settings, service: ModelService | None = None) -> gr.Blocks:
    from rfdetr_demo.ui import build_demo

    return build_demo(settings, service or model_service(settings))


def launch_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": settings.share,
        "max_file_size": settings.max_file_size,
        "theme": gr.themes.Soft(),
        "show_error": True,
    }
    if settings.auth_pair:
        kwargs["auth"] = [settings.auth_pair]
    return kwargs
