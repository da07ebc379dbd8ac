"""The Webcam tab's "Run in this browser" panel: plain HTML wired by ``web/src/page.js`` (no Gradio events).

Why no Gradio events: in this mode the server must receive no frames, so the camera, the model and the drawing
all live in the page; the server only serves the manifest, the model file and the scripts (``browser_routes``).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import BaseRoute, Route

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.errors import UserError
from rfdetr_demo.live.browser_engine import BrowserEngine
from rfdetr_demo.models.predictor import validate_resolution
from rfdetr_demo.ui.handlers import UiContext

BROWSER_RESOLUTIONS = (288, 384, 480, 576)
PAGE_SCRIPT = '<script type="module" src="/browser-engine/web/page.js"></script>'
LABEL = "Run in this browser (no frames leave your device)"


# The panel's inputs look like Gradio's (its theme variables, with fallbacks for the pop-out tab, which has no
# Gradio) with a 1-px border in the blocks' border colour: Gradio's own input border is 0 px wide in this theme and
# its inputs are drawn by a fill that plain inputs on this white panel do not get. Each label stays whole on a
# 390-px phone: label text and input never wrap apart, labels wrap as units.
PANEL_CSS = """<style>
#be-panel .be-row { display: flex; flex-wrap: wrap; gap: var(--size-2, 8px) var(--size-4, 16px); align-items: center; }
#be-panel .be-row label { display: inline-flex; align-items: center; gap: var(--size-2, 8px); white-space: nowrap; }
#be-panel input[type=number], #be-panel select {
  border: 1px solid var(--border-color-primary, #d1d5db); box-shadow: var(--input-shadow, none);
  border-radius: var(--input-radius, 6px); background: var(--input-background-fill, #fff);
  color: var(--body-text-color, inherit); padding: var(--input-padding, 4px 8px); font: inherit; width: 5.5em;
}
#be-panel select { width: auto; }
#be-panel input[type=number]:focus, #be-panel select:focus {
  border-color: var(--input-border-color-focus, #93c5fd); outline: none;
}
</style>"""


def panel_html(default_resolution: int, auto: bool = False) -> str:
    """The panel; ``auto`` (the app's choice) starts at the smallest resolution and says what else would run, else
    ``default_resolution`` is preselected (tests and benches that need one size)."""
    choices = sorted({*BROWSER_RESOLUTIONS, default_resolution})
    selected = {r: " selected" if r == default_resolution and not auto else "" for r in choices}
    options = "".join(f'<option value="{r}"{selected[r]}>{r}²</option>' for r in choices)
    auto_option = f'<option value="auto"{" selected" if auto else ""}>Auto (starts at {choices[0]}²)</option>'
    return f"""{PANEL_CSS}
<div id="be-panel">
  <p>The model runs on your device with onnxruntime-web (WebGPU when your browser has it, else WebAssembly):
  the camera picture is never sent to the server. The model file is downloaded once (its size is shown first).</p>
  <div class="be-row">
  <label>Resolution <select id="be-resolution">{auto_option}{options}</select></label>
  <label>Person threshold <input id="be-threshold" type="number" min="0" max="1" step="0.05"
    value="{DEFAULT_THRESHOLD}"></label>
  <label>Keypoint threshold <input id="be-kp-threshold" type="number" min="0" max="1" step="0.05"
    value="{DEFAULT_KEYPOINT_THRESHOLD}"></label>
  <label><input id="be-mirror" type="checkbox"> Mirror the view (display only)</label>
  <label title="The Kalman filter of server mode, driven by the model's covariance; people keep their #id either way">
    <input id="be-smooth" type="checkbox" checked> Smooth joints over time</label>
  </div>
  <div>
    <button id="be-check" type="button">{LABEL}</button>
    <button id="be-go" type="button" hidden>Download and start</button>
    <button id="be-stop" type="button">Stop</button>
    <button id="be-json" type="button">Download this frame's keypoints (JSON)</button>
  </div>
  <progress id="be-progress" max="1" value="0"></progress>
  <p id="be-status">Not started.</p>
  <p id="be-backend"></p>
  <p id="be-choice"></p>
  <p><a id="be-popout" target="_blank" rel="opener" hidden></a></p>
  <p id="be-readout"></p>
  <div id="be-stage" style="position:relative;max-width:640px">
    <video id="be-video" muted playsinline style="width:100%;display:block"></video>
    <canvas id="be-canvas" style="position:absolute;left:0;top:0;width:100%;height:100%"></canvas>
  </div>
</div>"""


def build_browser_panel(ctx: UiContext) -> None:
    """An accordion beside server mode; ``--browser-engine off`` (or ``--auth``) leaves it out."""
    with gr.Accordion(LABEL, open=False, elem_id="browser-engine"):
        gr.HTML(panel_html(ctx.default_resolution, auto=True))


# HTTP routes of the in-browser engine, added to Gradio's FastAPI app (``launch(app_kwargs={"routes": ...})``).
PREFIX = "/browser-engine"
WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MODULE = re.compile(r"[a-z_]+\.js")
# The pop-out tab's headers: a cross-origin isolated page gets SharedArrayBuffer, hence WASM threads. Everything it
# loads is same-origin, or the CDN's onnxruntime-web files fetched with CORS (jsDelivr allows any origin).
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


@cache
def ort_pin() -> dict[str, Any]:
    """The pinned onnxruntime-web version, CDN and SRI hashes (``web/ort-pin.json``, written by tools/pin_ort.py)."""
    return json.loads((WEB_DIR / "ort-pin.json").read_text())


def ort_source() -> dict[str, Any]:
    """Where the page loads onnxruntime-web from: this server when ``web/node_modules`` has it, else the CDN."""
    pin = ort_pin()
    local = all((ORT_DIST / name).is_file() for name in pin["integrity"])
    base = f"{PREFIX}/ort/{pin['version']}/" if local else pin["cdn"]
    return {"version": pin["version"], "base": base, "local": local, "integrity": pin["integrity"],
            "bytes": pin["bytes"]}  # fmt: skip


def browser_routes(engine: BrowserEngine) -> list[BaseRoute]:
    """The routes for one app (its models: ``engine.registry``)."""

    async def manifest(request: Request) -> JSONResponse:
        try:
            resolution = validate_resolution(int(request.query_params.get("resolution", "")))
        except ValueError as exc:
            raise HTTPException(400, "resolution must be a positive multiple of 24") from exc
        try:
            body = engine.manifest(resolution, PREFIX, request.query_params.get("model") or None)
        except UserError as exc:  # an unknown model name
            raise HTTPException(400, str(exc)) from exc
        body["ort"] = ort_source()
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def model_file(request: Request) -> FileResponse:
        digest = request.path_params["digest"]
        found = engine.file(digest) if _DIGEST.fullmatch(digest) else None
        if found is None:
            raise HTTPException(404, "no such model file")
        return FileResponse(found.path, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})

    async def web_module(request: Request) -> FileResponse:
        name = request.path_params["name"]
        path = WEB_DIR / "src" / name
        if not _MODULE.fullmatch(name) or not path.is_file():
            raise HTTPException(404, "no such module")
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def ort_file(request: Request) -> FileResponse:
        pin = ort_pin()
        name = request.path_params["name"]
        if request.path_params["version"] != pin["version"] or name not in pin["integrity"]:
            raise HTTPException(404, "no such onnxruntime-web file")
        if not (ORT_DIST / name).is_file():
            raise HTTPException(404, "onnxruntime-web is not installed here (cd web && npm ci)")
        kind = "application/wasm" if name.endswith(".wasm") else "text/javascript"
        return FileResponse(ORT_DIST / name, media_type=kind, headers={"Cache-Control": IMMUTABLE})

    async def live(request: Request) -> HTMLResponse:
        """The panel alone in its own tab, cross-origin isolated (the model name comes in the address)."""
        wanted = request.query_params.get("resolution", "auto")
        try:
            engine.registry.resolve(request.query_params.get("model"))
            resolution = BROWSER_RESOLUTIONS[0] if wanted == "auto" else validate_resolution(int(wanted))
        except ValueError as exc:  # an unknown model (UserError, says which exist) or a bad resolution
            detail = str(exc) if isinstance(exc, UserError) else "resolution must be auto or a multiple of 24"
            raise HTTPException(400, detail) from exc
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{LABEL}</title>{PAGE_SCRIPT}</head>"
            '<body style="font-family: system-ui, sans-serif; margin: 16px">'
            f"{panel_html(resolution, auto=wanted == 'auto')}</body></html>"
        )
        return HTMLResponse(page, headers={**ISOLATION, "Cache-Control": "no-cache"})

    return [
        Route(f"{PREFIX}/live", live),
        Route(f"{PREFIX}/manifest", manifest),
        Route(PREFIX + "/model/{digest}.onnx", model_file),
        Route(PREFIX + "/web/{name}", web_module),
        Route(PREFIX + "/ort/{version}/{name}", ort_file),
    ]
