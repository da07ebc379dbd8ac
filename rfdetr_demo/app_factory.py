"""Wire settings → model service → Blocks, and settings → ``launch()`` keyword arguments."""

from __future__ import annotations

import importlib.util
import logging
from functools import partial
from typing import Any

import gradio as gr

from rfdetr_demo.browser_engine import BrowserEngine, browser_engine_enabled
from rfdetr_demo.config import Settings, on_spaces
from rfdetr_demo.loading import load_rfdetr
from rfdetr_demo.service import ModelService, shared_service
from rfdetr_demo.ui.styles import APP_CSS

log = logging.getLogger(__name__)


def model_service(settings: Settings) -> ModelService:
    """The process-wide service for these settings (one model per process)."""
    spec = settings.model_spec()
    return shared_service(spec, partial(load_rfdetr, spec))


def apply_capacity(settings: Settings) -> None:
    """Size the process-wide temp-disk budget from the settings."""
    from rfdetr_demo.disk_budget import BUDGET, GB

    BUDGET.configure(max_bytes=int(settings.max_temp_gb * GB), grace_s=settings.download_grace_s)


def create_app(settings: Settings, service: ModelService | None = None) -> gr.Blocks:
    from rfdetr_demo.ui import build_demo

    apply_capacity(settings)
    return build_demo(settings, service or model_service(settings))


def configure_queue(demo: gr.Blocks, settings: Settings) -> gr.Blocks:
    """Bound the waiting line (``--queue-size``) and the requests run at once (``--concurrency``)."""
    return demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)


def mcp_available() -> bool:
    """``gradio[mcp]`` is an optional extra: serve MCP only when its ``mcp`` package is importable."""
    return importlib.util.find_spec("mcp") is not None


def launch_kwargs(settings: Settings, service: ModelService | None = None) -> dict[str, Any]:
    """``launch()`` arguments; with ``service``, the in-browser engine's routes and page script too."""
    kwargs: dict[str, Any] = {
        "server_name": settings.host,
        "server_port": settings.port,
        # Spaces already gives the app a public URL (Gradio would only warn there).
        "share": settings.share and not on_spaces(),
        "max_file_size": settings.max_file_size,
        "theme": gr.themes.Soft(),
        "css": APP_CSS,
        "show_error": True,
        # Gradio keeps every session's state and a copy of its last inputs and outputs; bound how many sessions.
        "state_session_capacity": settings.max_sessions,
    }
    if service is not None and browser_engine_enabled(settings):
        from rfdetr_demo.ui.browser_panel import PAGE_SCRIPT
        from rfdetr_demo.ui.browser_routes import browser_routes

        # Routes given to FastAPI's constructor come before Gradio's own (its catch-all page routes included).
        kwargs["app_kwargs"] = {"routes": browser_routes(BrowserEngine(service))}
        kwargs["head"] = PAGE_SCRIPT
    if settings.auth_pair:
        kwargs["auth"] = [settings.auth_pair]
        kwargs["auth_message"] = "This RF-DETR Keypoint demo requires a login."
    if settings.mcp:
        if mcp_available():
            kwargs["mcp_server"] = True
        else:
            log.warning('--mcp ignored: the MCP server needs `pip install "gradio[mcp]==%s"`', gr.__version__)
    return kwargs
