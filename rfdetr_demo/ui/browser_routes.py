"""HTTP routes of the in-browser engine, added to Gradio's FastAPI app (``launch(app_kwargs={"routes": ...})``).

* ``/browser-engine/manifest?resolution=N&model=NAME``: the model's URL, size and SHA-256, rfdetr's decode
  constants and the keypoint schema (JSON; starts the load and the export on first request; no model: the default).
* ``/browser-engine/model/<sha256>.onnx``: the export, content-addressed, so it is cached as immutable; Starlette's
  ``FileResponse`` gives Content-Length, ETag and range requests (a resumed or partial download).
* ``/browser-engine/web/<file>.js``: the page's own modules (``web/src``).
* ``/browser-engine/ort/<version>/<file>``: onnxruntime-web from ``web/node_modules`` when ``npm ci`` ran; without it
  the page uses the CDN (``web/ort-pin.json``), with the same Subresource Integrity hashes either way.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Route

from rfdetr_demo.browser_engine import BrowserEngine
from rfdetr_demo.errors import UserError
from rfdetr_demo.predictor import validate_resolution

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
