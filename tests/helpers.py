"""Small helpers shared by the server and browser tests: a free loopback port and Chromium's launch settings."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

# Debian's chromium (apt-get install chromium); Playwright's own browser download is not available offline. Found
# the way .ci/run finds it: CHROMIUM_PATH, else `command -v chromium`.
CHROMIUM = (
    os.environ.get("CHROMIUM_PATH")
    or shutil.which("chromium")
    or shutil.which("chromium-browser")
    or "/usr/bin/chromium"
)
# Without the background-networking flags Chromium keeps trying (and failing) to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_replay_app(coco_json, settings=None, predictor=None) -> Iterator[tuple[str, object]]:
    """The real Blocks app, launched on loopback with the app's own queue and launch settings, around the replay model.

    Yields ``(url, predictor)``; the predictor's ``calls`` tell whether a UI action ran the model. ``predictor``: a
    replay predictor prepared by the test (e.g. one held behind a gate); default, a fresh one on ``coco_json``.
    """
    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs
    from rfdetr_demo.config import Settings
    from tests.conftest import make_replay_service
    from tests.support.replay import ReplayPredictor

    predictor = predictor or ReplayPredictor.from_coco(coco_json)
    settings = replace(settings or Settings(), port=free_port())
    service = make_replay_service(predictor)
    demo = create_app(settings, service=service)
    configure_queue(demo, settings)
    kwargs = {k: v for k, v in launch_kwargs(settings, service).items() if k != "share"}
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    try:
        yield f"http://127.0.0.1:{settings.port}/", predictor
    finally:
        demo.close()


def run_concurrently(fn: Callable[[], object], n: int, timeout_s: float) -> tuple[list[object], list[BaseException]]:
    """Call ``fn`` from ``n`` threads at once; return what they returned and what they raised."""
    results: list[object] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(fn())
        except Exception as exc:  # noqa: BLE001 - handed back to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return results, errors


# WebGPU in headless Chromium without a GPU: Chromium's bundled SwiftShader (Vulkan on the CPU) is the adapter, a
# "fallback adapter" (adapter.info: vendor "google", architecture "swiftshader"). Mesa's lavapipe, when installed,
# is loaded by the GPU process but never served (checked with VK_ICD_FILENAMES pointing at it and at nothing).
WEBGPU_ARGS = [*CHROMIUM_ARGS, "--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"]

# The test server's /photo.png as the page's model input at ``res`` (needs ``preprocess``, ``manifestRes``, ``res``):
# ``m`` (the manifest), ``bitmap`` and ``input`` for the rest of a script.
JS_PHOTO_INPUT = """  const m = await (await fetch(`/browser-engine/manifest?resolution=${manifestRes}`)).json();
  const bitmap = await createImageBitmap(await (await fetch('/photo.png')).blob());
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const input = preprocess(pixels, bitmap.width, bitmap.height, res, m.decode.mean, m.decode.std);
"""

# One frame through WebGPU and WASM with the page's own modules; rows compared with the page's check (rowsAgree,
# TOLERANCE), raw output differences and the adapter. With ``verbose``, onnxruntime-web logs its node placements to
# the console while the WebGPU session is made (read with :func:`nodes_on_cpu`).
JS_WEBGPU_VS_WASM = (
    """async ({manifestRes, file, res}) => {
  const engine = await import('/browser-engine/web/engine.js');
  const { preprocess, decode } = await import('/browser-engine/web/decode.js');
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) return { adapter: null };
"""
    + JS_PHOTO_INPUT
    + """  const bytes = await engine.download(file.url, file.bytes, () => {});
  const time = async (f) => { const t = performance.now(); const v = await f(); return [v, performance.now() - t]; };
  const gpu = await engine.loadOrt(m.ort, true);
  gpu.env.logLevel = 'verbose';
  const [gpuSession, sessionMs] = await time(() => engine.createSession(gpu, bytes, 'webgpu', { logSeverityLevel: 0 }));
  gpu.env.logLevel = 'warning';
  const [gpuOut, gpuMs] = await time(() => engine.runSession(gpu, gpuSession, input.slice(), res));
  const cpu = await engine.loadOrt(m.ort, false);
  const cpuSession = await engine.createSession(cpu, bytes, 'wasm');
  const [cpuOut, wasmMs] = await time(() => engine.runSession(cpu, cpuSession, input.slice(), res));
  const maxDiff = (a, b) => a.reduce((d, x, i) => Math.max(d, Math.abs(x - b[i])), 0);
  const rows = (out) => decode(out, m.decode, bitmap.width, bitmap.height, 0);
  return {
    adapter: { vendor: adapter.info.vendor, architecture: adapter.info.architecture,
               description: adapter.info.description, fallback: adapter.info.isFallbackAdapter ?? null },
    sessionMs, gpuMs, wasmMs, rows: rows(cpuOut).length,
    agree: engine.rowsAgree(rows(gpuOut), rows(cpuOut), engine.TOLERANCE),
    diff: Object.fromEntries(['dets', 'labels', 'keypoints'].map((k) => [k, maxDiff(gpuOut[k].data, cpuOut[k].data)])),
  };
}"""
)


def nodes_on_cpu(console: list[str]) -> list[str] | None:
    """The nodes onnxruntime's verbose log lists under "placed on [CPUExecutionProvider]" ("Op (name)"), [] when it
    placed every node elsewhere, None when the log has no placements (verbose logging did not reach the console)."""
    text = "\n".join(console)
    if "Node placements" not in text:
        return None
    block = (
        text.split("placed on [CPUExecutionProvider]")[1].split("placed on [")[0]
        if "[CPUExecutionProvider]" in text
        else ""
    )
    return re.findall(r"\]\s+(\w+ \([^)]*\))\s*$", block, flags=re.M)


def webgpu_vs_wasm(playwright, url: str, onnx_file, manifest_res: int, res: int, timeout_ms: int) -> tuple[dict, list]:
    """:data:`JS_WEBGPU_VS_WASM` in a Chromium with a WebGPU adapter (:data:`WEBGPU_ARGS`) on the engine's test page
    at ``url``: the page's result and its console (for :func:`nodes_on_cpu`)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS, headless=True)
    console: list[str] = []
    try:
        page = browser.new_page()
        page.on("console", lambda message: console.append(message.text))
        page.goto(url)
        page.set_default_timeout(timeout_ms)
        file = {"url": f"/browser-engine/model/{onnx_file.sha256}.onnx", "bytes": onnx_file.size}
        got = page.evaluate(JS_WEBGPU_VS_WASM, {"manifestRes": manifest_res, "file": file, "res": res})
    finally:
        browser.close()
    return got, console
