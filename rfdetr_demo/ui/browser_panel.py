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
from fastapi.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Route

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.errors import UserError
from rfdetr_demo.live.browser_engine import BrowserEngine
from rfdetr_demo.models.predictor import validate_resolution
from rfdetr_demo.ui.handlers import UiContext

BROWSER_RESOLUTIONS = (288, 384, 480, 576)
PAGE_SCRIPT = '<script type="module" src="/browser-engine/web/page.js"></script>'
LABEL = "Run in this browser (no frames leave your device)"


def panel_html(default_resolution: int) -> str:
    choices = sorted({*BROWSER_RESOLUTIONS, default_resolution})
    selected = {r: " selected" if r == default_resolution else "" for r in choices}
    options = "".join(f'<option value="{r}"{selected[r]}>{r}²</option>' for r in choices)
    return f"""
<div id="be-panel">
  <p>The model runs on your device with onnxruntime-web (WebGPU when your browser has it, else WebAssembly):
  the camera picture is never sent to the server. The model file is downloaded once (its size is shown first).</p>
  <label>Resolution <select id="be-resolution">{options}</select></label>
  <label>Person threshold <input id="be-threshold" type="number" min="0" max="1" step="0.05"
    value="{DEFAULT_THRESHOLD}"></label>
  <label>Keypoint threshold <input id="be-kp-threshold" type="number" min="0" max="1" step="0.05"
    value="{DEFAULT_KEYPOINT_THRESHOLD}"></label>
  <label><input id="be-mirror" type="checkbox"> Mirror the view (display only)</label>
  <label><input id="be-smooth" type="checkbox" checked> Smooth joints over time (Kalman filter, as server mode;
    people keep their #id either way)</label>
  <div>
    <button id="be-check" type="button">{LABEL}</button>
    <button id="be-go" type="button" hidden>Download and start</button>
    <button id="be-stop" type="button">Stop</button>
    <button id="be-json" type="button">Download this frame's keypoints (JSON)</button>
  </div>
  <progress id="be-progress" max="1" value="0"></progress>
  <p id="be-status">Not started.</p>
  <p id="be-backend"></p>
  <p id="be-readout"></p>
  <div id="be-stage" style="position:relative;max-width:640px">
    <video id="be-video" muted playsinline style="width:100%;display:block"></video>
    <canvas id="be-canvas" style="position:absolute;left:0;top:0;width:100%;height:100%"></canvas>
  </div>
</div>"""


def build_browser_panel(ctx: UiContext) -> None:
    """An accordion beside server mode; ``--browser-engine off`` (or ``--auth``) leaves it out."""
    with gr.Accordion(LABEL, open=False, elem_id="browser-engine"):
        gr.HTML(panel_html(ctx.default_resolution))


# HTTP routes of the in-browser engine, added to Gradio's FastAPI app (``launch(app_kwargs={"routes": ...})``).
PREFIX = "/browser-engine"
WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
ORT_DIST = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
IMMUTABLE = "public, max-age=31536000, immutable"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_MODULE = re.compile(r"[a-z_]+\.js")


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

    return [
        Route(f"{PREFIX}/manifest", manifest),
        Route(PREFIX + "/model/{digest}.onnx", model_file),
        Route(PREFIX + "/web/{name}", web_module),
        Route(PREFIX + "/ort/{version}/{name}", ort_file),
    ]
