"""Benchmark: the Webcam tab's in-browser engine (onnxruntime-web) against server mode, in one run.

The app's ``--random-weights`` model (rfdetr_demo/models/random_weights.py), exported per resolution with rfdetr's
own ONNX export, served by the app's own routes (``rfdetr_demo/ui/browser_panel.py``) and the panel's own page
(``web/src/page.js``), driven in headless Chromium with its fake camera (640×480):

- export time and size of the fp32 file (rfdetr's export) and of the fp16 file (converted from it; only WebGPU
  adapters with shader-f16 get it, so only its size is shown), download time of the fp32 file from localhost (a
  fresh browser profile: nothing cached);
- time from "Download and start" to the first drawn frame (download + camera + onnxruntime-web + session + check);
- ms per frame per stage (pre, model, post, ids + smoothing, draw; medians after the first frame; "ids + smoothing"
  is ``web/src/temporal.js``: the tracker and the Kalman filter, on by default, with the people count it ran on)
  for WASM with 1 thread (the page
  as the app serves it) and with several threads (the same page served cross-origin isolated: COOP + COEP);
- ids + smoothing alone on a recorded 5-person sequence: ``web/src/temporal.js`` under node against server mode's
  ``LiveChain`` (``chain_cost``);
- server mode on the same machine: the live handler (``FrameHandler.process``: model + drawing) on a 640×480 frame;
- requests carrying a body (or not GETs) that the server received while the browser engine ran, i.e. frames sent
  to the server: must be 0 (other GETs, e.g. the favicon, are listed).

``--webgpu``: instead, one frame of COCO photo 196141 through onnxruntime-web's WebGPU backend and through WASM
on the same page (tests/helpers.py JS_WEBGPU_VS_WASM): the adapter (here Chromium's SwiftShader, a CPU), session and
run times, whether the page's own check accepts WebGPU, the largest output differences, and the nodes onnxruntime-web
left on the CPU (its verbose log). A software adapter takes minutes per frame.

    python bench/bench_browser.py            # 288² and 576², 4 timed frames each (the issue's acceptance run)
    python bench/bench_browser.py --resolutions 288 --frames 2   # a quick check
    python bench/bench_browser.py --chain-only   # ids + smoothing alone, JS vs Python (seconds)
    python bench/bench_browser.py --resolutions 288 --webgpu     # WebGPU vs WASM, one frame
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
]  # fmt: skip
PHOTO = REPO.parent / "shared" / "data" / "coco" / "000000196141.jpg"
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def build_service():
    """The app's ``--random-weights`` model (models/random_weights.py: seeded, draws skeletons), on the CPU."""
    from rfdetr_demo.models.loading import ModelSpec, load_rfdetr
    from rfdetr_demo.models.service import ModelService

    spec = ModelSpec(random_weights=True, device="cpu", resolution=288)
    service = ModelService(lambda: load_rfdetr(spec))
    service.start()
    service.wait(300)
    return service


def serve(engine, resolution: int, isolated: bool, seen: list):
    """The engine's routes plus a page holding the panel; with ``isolated``, COOP/COEP on every response."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse

    from rfdetr_demo.ui.browser_panel import PAGE_SCRIPT, browser_routes, panel_html
    from tests.helpers import free_port

    app = FastAPI(routes=browser_routes(engine))

    @app.middleware("http")
    async def record(request: Request, call_next):
        seen.append((request.method, request.url.path, len(await request.body())))
        response = await call_next(request)
        if isolated:
            response.headers.update(ISOLATION)
        return response

    @app.get("/photo.png")
    def photo() -> FileResponse:
        return FileResponse(PHOTO, media_type="image/jpeg")

    @app.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse(f"<html><head>{PAGE_SCRIPT}</head><body>{panel_html(resolution)}</body></html>")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}/"


def run_page(playwright, url: str, frames: int) -> dict:
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
    try:
        page = browser.new_page()
        page.goto(url)
        page.click("#be-check")
        page.wait_for_selector("#be-go:not([hidden])", timeout=600_000)
        page.click("#be-go")
        page.wait_for_function(f"() => window.__browserEngine.frames >= {frames + 1}", timeout=1_800_000,
                               polling=500)  # fmt: skip
        state = page.evaluate(
            "() => { const s = window.__browserEngine; return {history: s.history, firstFrameMs: s.firstFrameMs, "
            "downloadMs: s.downloadMs, isolated: crossOriginIsolated, threads: document.getElementById('be-backend')"
            ".textContent, nThreads: s.threads, resolution: s.manifest.resolution}; }"
        )
    finally:
        browser.close()
    later = state["history"][1:] or state["history"]
    med = {k: statistics.median(h[k] for h in later) for k in ("pre", "model", "post", "smooth", "draw")}
    people = statistics.median(h["people"] for h in later)
    return {**state, "median": med, "total": sum(med.values()), "people": people}


def run_webgpu(playwright, url: str, onnx_file, resolution: int) -> dict:
    """One frame on WebGPU and on WASM in the same page; the nodes left on the CPU from the verbose log."""
    from tests.helpers import nodes_on_cpu, webgpu_vs_wasm

    got, console = webgpu_vs_wasm(playwright, url, onnx_file, resolution, resolution, timeout_ms=3_600_000)
    return {**got, "cpu_nodes": nodes_on_cpu(console)}


def expected(path: str, allowed: set[str]) -> bool:
    """The page itself, or a GET under /browser-engine/<manifest|model|web|ort>."""
    parts = path.split("/")
    return path == "/" or (len(parts) > 2 and parts[1] == "browser-engine" and parts[2] in allowed)


def server_mode_ms(service, resolution: int, repeats: int = 3) -> tuple[float, float]:
    import numpy as np

    from rfdetr_demo.live.frame_handler import FrameHandler, FrameOptions
    from rfdetr_demo.results.render import VIEW_COMBINED, VIEW_HALO

    frame = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    handler = FrameHandler(service)
    options = FrameOptions(resolution=resolution, views=(VIEW_COMBINED, VIEW_HALO))
    handler.process(frame, options)  # warm-up
    runs = [handler.process(frame, options) for _ in range(repeats)]
    return statistics.median(r.model_ms for r in runs), statistics.median(r.e2e_ms for r in runs)


def chain_cost(repeats: int = 50) -> str:
    """ids + smoothing alone: tests/test_temporal_js.py's sequence (5-6 COCO people, 24 frames) repeated, through
    ``web/src/temporal.js`` under node and through server mode's ``LiveChain``; median ms per frame of each (50
    repeats: the JIT is warm, as after a few seconds of a live page)."""
    import json
    import subprocess

    from rfdetr_demo.temporal.stages import KALMAN, LiveChain, live_params
    from tests.support.replay import load_coco_truth
    from tests.test_temporal_js import IMAGE, KP_THRESHOLD, RUN_JS, TEMPORAL_JS, THRESHOLD, _keypoints, _sequence

    coco = REPO.parent / "shared" / "data" / "coco" / "test_coco.json"
    one = _sequence(load_coco_truth(coco)[IMAGE].key_points)
    frames = [{**f, "t": f["t"] + 10.0 * r} for r in range(repeats) for f in one]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "frames.json"
        data.write_text(json.dumps({"params": live_params(), "frames": frames, "threshold": THRESHOLD,
                                    "keypointThreshold": KP_THRESHOLD}))  # fmt: skip
        out = subprocess.run(["node", "--input-type=module", "-e", RUN_JS % TEMPORAL_JS.as_uri(), str(data)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    js_ms = statistics.median(f["ms"] for f in json.loads(out))
    chain, py_ms = LiveChain(KALMAN, THRESHOLD), []
    for f in frames:
        kp = _keypoints(f["rows"])
        t0 = time.perf_counter()
        chain.update(kp, f["t"], KP_THRESHOLD)
        py_ms.append(1000 * (time.perf_counter() - t0))
    people = statistics.median(len(f["rows"]) for f in frames)
    return (
        f"ids + smoothing alone ({people:.0f} people, {len(frames)} frames, median per frame): "
        f"web/src/temporal.js under node {js_ms:.2f} ms, server mode's LiveChain {statistics.median(py_ms):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[288, 576])
    parser.add_argument("--frames", type=int, default=4, help="frames timed per configuration after the first")
    parser.add_argument("--chain-only", action="store_true", help="only the ids + smoothing line (seconds, no browser)")
    parser.add_argument("--webgpu", action="store_true", help="WebGPU vs WASM on one frame instead")
    args = parser.parse_args()
    if args.chain_only:
        print(f"machine: {describe()}; load average {os.getloadavg()}")
        print(chain_cost())
        return
    from playwright.sync_api import sync_playwright

    from rfdetr_demo.live.browser_engine import BrowserEngine
    from rfdetr_demo.models.backends.cache import ExportCache

    print(f"machine: {describe()}; load average {os.getloadavg()}")
    print(chain_cost())
    service = build_service()
    allowed = {"manifest", "model", "web", "ort"}
    rows = []
    with tempfile.TemporaryDirectory() as cache_dir, sync_playwright() as playwright:
        engine = BrowserEngine(service, ExportCache(cache_dir))
        for res in args.resolutions:
            t0 = time.perf_counter()
            onnx_file = engine.exports().prepare(res)
            t1 = time.perf_counter()
            fp16_file = engine.exports().prepare(res, "fp16")
            export_s, fp16_s = t1 - t0, time.perf_counter() - t1
            print(f"{res}²: fp32 export {export_s:.0f} s, {onnx_file.size / 1e6:.0f} MB; "
                  f"fp16 conversion {fp16_s:.0f} s, {fp16_file.size / 1e6:.0f} MB")  # fmt: skip
            if args.webgpu:
                server, url = serve(engine, res, False, [])
                try:
                    got = run_webgpu(playwright, url, onnx_file, res)
                finally:
                    server.should_exit = True
                print(f"{res}² WebGPU vs WASM: {got}")
                continue
            model_ms, e2e_ms = server_mode_ms(service, res)
            for isolated in (False, True):
                seen: list = []
                server, url = serve(engine, res, isolated, seen)
                try:
                    got = run_page(playwright, url, args.frames)
                finally:
                    server.should_exit = True
                frames_sent = sum(1 for m, _p, size in seen if m != "GET" or size)
                others = sorted({p for m, p, size in seen if m == "GET" and not size and not expected(p, allowed)})
                if others:
                    print(f"other GETs without a body (not frames): {others}")
                sizes = (onnx_file.size, fp16_file.size)
                rows.append((res, export_s, sizes, isolated, got, model_ms, e2e_ms, frames_sent))
                print(f"{res}² isolated={isolated}: {got}, server {model_ms:.0f}/{e2e_ms:.0f} ms, sent {frames_sent}")
    print(f"load average at the end: {os.getloadavg()}")
    if not rows:  # --webgpu: its lines above are the result
        return
    print(
        "\n| res | page | backend | threads | MB fp32 / fp16 | export s | download s | first frame s | pre | model | "
        "post | ids + smoothing (people) | draw | browser ms/frame | server ms/frame (model / +drawing) | "
        "browser ÷ server | frames sent |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for _res, export_s, (size, size16), isolated, got, model_ms, e2e_ms, sent in rows:
        m = got["median"]
        backend = got["threads"].removeprefix("Running on ").split(",")[0].replace(" (", " ")  # "WASM fp32"
        print(f"| {got['resolution']}² | {'isolated' if isolated else 'as served'} | {backend} | {got['nThreads']} | "
              f"{size / 1e6:.0f} / {size16 / 1e6:.0f} | {export_s:.0f} | {got['downloadMs'] / 1e3:.1f} | "
              f"{got['firstFrameMs'] / 1e3:.1f} | "
              f"{m['pre']:.0f} | {m['model']:.0f} | {m['post']:.0f} | {m['smooth']:.1f} ({got['people']:.0f}) | "
              f"{m['draw']:.0f} | {got['total']:.0f} | "
              f"{model_ms:.0f} / {e2e_ms:.0f} | {got['total'] / e2e_ms:.2f} | {sent} |")  # fmt: skip


if __name__ == "__main__":
    main()
