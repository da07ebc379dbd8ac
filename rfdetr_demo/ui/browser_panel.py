"""The Webcam tab's "Run in this browser" panel: plain HTML wired by ``web/src/page.js`` (no Gradio events).

Why no Gradio events: in this mode the server must receive no frames, so the camera, the model and the drawing
all live in the page; the server only serves the manifest, the model file and the scripts (``browser_routes``).
"""

from __future__ import annotations

import gradio as gr

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.ui.common import UiContext

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
