"""Wire settings → model service → Blocks, and settings → ``launch()`` keyword arguments."""

from __future__ import annotations

import importlib.util
import logging
from functools import partial
from typing import Any

import gradio as gr

from rfdetr_demo.config import Settings, on_spaces
from rfdetr_demo.defaults import MODEL_WAIT_S
from rfdetr_demo.disk import BUDGET, GB
from rfdetr_demo.live.browser_engine import BrowserEngine, browser_engine_enabled
from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.loading import load_rfdetr, planned_resolution
from rfdetr_demo.models.registry import ModelRegistry, shared_registry
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.ui.styles import APP_CSS

log = logging.getLogger(__name__)


def model_registry(settings: Settings) -> ModelRegistry:
    """The process-wide models for these settings (``--checkpoint`` entries, then the preview).

    On ZeroGPU every model stays loaded (see :func:`start_models`), whatever ``--max-loaded-models`` says.
    """
    catalog = tuple(settings.model_catalog())
    loaders = [(entry.name, partial(load_rfdetr, entry.spec)) for entry in catalog]
    specs = {entry.name: entry.spec for entry in catalog}
    max_loaded = max(settings.max_loaded_models, len(catalog)) if zerogpu.on_zero_gpu() else settings.max_loaded_models
    return shared_registry(
        (catalog, max_loaded),
        lambda: ModelRegistry(loaders, max_loaded, lambda name: planned_resolution(specs[name])),
    )


def start_models(registry: ModelRegistry, timeout: float = MODEL_WAIT_S) -> ModelService:
    """Start the default model's load (in the background) and return its service.

    On ZeroGPU, load every model now, one after another, before the page serves: a GPU worker is a fork of this
    process made at a request and reused, so a model that loads (or unloads) later never reaches a worker that
    already exists.

    A model that fails to load or warm up never stops the start: the page serves and its status line says what
    failed (this runs before ``launch()``, so an exception here would end the Space with no page at all).
    """
    if zerogpu.on_zero_gpu():
        loaded = []
        for name in registry.names:
            log.info("ZeroGPU: loading model %s before serving", name)
            service = registry.service(name)
            try:
                service.wait(timeout)
            except Exception as exc:  # noqa: BLE001 - the status line shows the reason (service.status())
                log.error("ZeroGPU: model %s is not available at start: %s", name, exc)
                continue
            loaded.append(service)
        for service in loaded:  # one lease each, forked only now that every model is here
            service.warm_up()  # never raises: a failure shows in the model's precision label
    return registry.service()


def model_service(settings: Settings) -> ModelService:
    """The process-wide service of the default (first) model; it starts loading when first asked for."""
    return model_registry(settings).service()


def apply_capacity(settings: Settings) -> None:
    """Size the process-wide temp-disk budget from the settings."""

    BUDGET.configure(max_bytes=int(settings.max_temp_gb * GB), grace_s=settings.download_grace_s)


def create_app(
    settings: Settings, service: ModelService | None = None, registry: ModelRegistry | None = None
) -> gr.Blocks:
    """The page; ``service`` alone serves one model (tests), ``registry`` several (default: from the settings)."""
    # lazy: Gradio's page; the CLI's predict/evaluate need only the model service
    from rfdetr_demo.ui import build_demo

    apply_capacity(settings)
    if registry is None and service is None:
        registry = model_registry(settings)
    return build_demo(settings, service or registry.peek(), registry)


def configure_queue(demo: gr.Blocks, settings: Settings) -> gr.Blocks:
    """Bound the waiting line (``--queue-size``) and the requests run at once (``--concurrency``)."""
    return demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)


def mcp_available() -> bool:
    """``gradio[mcp]`` is an optional extra: serve MCP only when its ``mcp`` package is importable."""
    return importlib.util.find_spec("mcp") is not None


# Gradio's "Use via API" page always probes the MCP schema; without an MCP server that probe is a 404 in the browser
# console. Answered in the page instead (the page then shows the Python/JS/cURL tabs, as it does after a 404).
NO_MCP_PROBE = """<script>
(() => {
  const fetch0 = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const url = typeof input === "string" ? input : String((input && input.url) || input);
    if (url.split("?")[0].endsWith("gradio_api/mcp/schema")) {
      return Promise.resolve(new Response("{}", { status: 404, headers: { "Content-Type": "application/json" } }));
    }
    return fetch0(input, init);
  };
})();
</script>"""


def launch_kwargs(
    settings: Settings, service: ModelService | None = None, registry: ModelRegistry | None = None
) -> dict[str, Any]:
    """``launch()`` arguments; with ``service`` (the default model of ``registry``), the in-browser engine's routes
    and page script too."""
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
        # lazy: Gradio's page; the CLI needs only the model service
        from rfdetr_demo.ui.browser_panel import PAGE_SCRIPT, browser_routes

        # Routes given to FastAPI's constructor come before Gradio's own (its catch-all page routes included).
        kwargs["app_kwargs"] = {"routes": browser_routes(BrowserEngine(service, registry=registry))}
        kwargs["head"] = PAGE_SCRIPT
    if settings.auth_pair:
        kwargs["auth"] = [settings.auth_pair]
        kwargs["auth_message"] = "This RF-DETR Keypoint demo requires a login."
    if settings.mcp and mcp_available():
        kwargs["mcp_server"] = True
    else:
        if settings.mcp:
            log.warning('--mcp ignored: the MCP server needs `pip install "gradio[mcp]==%s"`', gr.__version__)
        kwargs["head"] = kwargs.get("head", "") + NO_MCP_PROBE
    return kwargs
