"""The first GPU run in one command (issue 26): what only a CUDA machine can tell, in under 8 minutes.

    python bench/gpu_check.py                       # the --random-weights model (offline), everything below
    python bench/gpu_check.py --checkpoint X.pth    # a real checkpoint: the fp16 deviation then means something
    python bench/gpu_check.py --json out.json       # also write the figures

On a CUDA machine, in one run: load + warm-up time (and the mode the warm-up chose), the first request; fp16 vs
fp32 keypoint deviation (px) on the COCO photos of examples/; latency at 576² batch 1 per mode (fp16
``model.inference`` view, fp16 autocast, plain fp32) beside the published 9.7 ms (T4, TensorRT FP16, 576²); video
frames/s with the model on every frame and with keyframes (every 3rd, auto); the browser engine's ONNX export on
the GPU host, with requests served meanwhile and the live model left on the GPU; and, where Chromium gets a WebGPU
adapter (Vulkan), the in-browser engine's page and its frames/s.

Without a CUDA device it says "no CUDA device: GPU checks skipped", runs the CPU parts at a small resolution (load,
first request, latency, video every frame vs keyframes; seconds, not minutes) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_video import make_clip  # noqa: E402
from bench.machine import describe  # noqa: E402
from rfdetr_demo.image.decode import load_image  # noqa: E402
from rfdetr_demo.models.loading import ModelSpec, load_rfdetr  # noqa: E402
from rfdetr_demo.models.predictor import RFDETRPredictor  # noqa: E402
from rfdetr_demo.models.service import ModelService  # noqa: E402
from rfdetr_demo.results.render import VIEW_COMBINED  # noqa: E402
from rfdetr_demo.video.pipeline import VideoOptions, run_video  # noqa: E402

EXAMPLES = REPO / "examples"
CLIP = EXAMPLES / "dance_960x540_5f.mp4"
T4_TENSORRT_FP16_MS = 9.7  # the seed's figure: RF-DETR keypoint preview, 576², batch 1, T4, TensorRT FP16
NO_GPU_LINE = "no CUDA device: GPU checks skipped"


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def photos(max_side: int) -> list[np.ndarray]:
    return [load_image(str(p), max_side=max_side).rgb for p in sorted(EXAMPLES.glob("*.jpg"))]


def median_ms(fn: Any, runs: int) -> float:
    fn()  # untimed: kernel selection, the view for this resolution
    samples = [timed(fn)[0] * 1000.0 for _ in range(runs)]
    return statistics.median(samples)


def load(device: str, resolution: int, checkpoint: str | None) -> tuple[ModelService, float, dict[str, Any]]:
    """The app's loader (warm-up included on CUDA): seconds to ready and what it chose."""
    spec = ModelSpec(checkpoint=checkpoint, random_weights=checkpoint is None, device=device, resolution=resolution)
    service = ModelService(lambda: load_rfdetr(spec))
    seconds, _ = timed(lambda: (service.start(), service.wait(900)))
    predictor, _schema, info = service.wait(0)
    return service, seconds, {"label": info.precision, "engine": info.engine,
                              "warmup_ms": getattr(predictor, "warmup_ms", {})}  # fmt: skip


def match_deviation(ref: Any, got: Any) -> list[float]:
    """Per-joint distance (px) between the people of two runs on one photo, matched greedily by box IoU ≥ 0.5."""
    import supervision as sv

    if len(ref) == 0 or len(got) == 0:
        return []
    iou = sv.box_iou_batch(ref.data["xyxy"], got.data["xyxy"])
    out: list[float] = []
    used: set[int] = set()
    for i in np.argsort(-ref.detection_confidence):
        j = next((int(j) for j in np.argsort(-iou[i]) if iou[i, j] >= 0.5 and int(j) not in used), None)
        if j is not None:
            used.add(j)
            out.extend(np.linalg.norm(ref.xy[i] - got.xy[j], axis=-1).tolist())
    return out


def fp16_deviation(predictor: Any, images: list[np.ndarray], resolution: int) -> dict[str, Any]:
    """The fp16 ``model.inference`` view against plain fp32 ``predict`` on the same weights, same photos."""
    fp32 = RFDETRPredictor(predictor.model, predictor.device, "fp32")
    mode = predictor.mode
    predictor._set_mode("inference")
    try:
        dists: list[float] = []
        for img in images:
            (ref,) = fp32.predict([img], 0.5, resolution)
            (got,) = predictor.predict([img], 0.5, resolution)
            dists.extend(match_deviation(ref, got))
    finally:
        predictor._set_mode(mode)
    if not dists:
        return {"joints": 0}
    d = np.asarray(dists)
    return {"joints": int(d.size), "median_px": float(np.median(d)), "p95_px": float(np.percentile(d, 95)),
            "max_px": float(d.max())}  # fmt: skip


def mode_latencies(predictor: Any, image: np.ndarray, resolution: int, runs: int) -> dict[str, float]:
    """ms per image at batch 1 for each CUDA mode (the chosen mode is restored)."""
    chosen, out = predictor.mode, {}
    try:
        for mode in ("inference", "autocast", "plain"):
            predictor._set_mode(mode)
            out[mode] = median_ms(lambda: predictor.predict([image], 0.5, resolution), runs)
    finally:
        predictor._set_mode(chosen)
    return out


def video_fps(
    service: ModelService, resolution: int, frames: int, tmp: Path, width: int | None = None
) -> dict[str, dict[str, float]]:
    """frames/s of the whole pipeline (decode, model, tracking, drawing, encode) per keyframe setting."""
    source = make_clip(tmp / "clip.mp4", frames, bounce=True, width=width, source=CLIP)
    out = {}
    for setting in (1, 3, "auto"):
        opts = VideoOptions(resolution=resolution, views=[VIEW_COMBINED], keyframes=setting, max_seconds=None)
        seconds, result = timed(lambda o=opts, s=setting: run_video(service, source, o, out_dir=tmp / f"k{s}"))
        out[str(setting)] = {"fps": result.frames_done / seconds, "model_runs": result.model_runs,
                             "frames": result.frames_done}  # fmt: skip
    return out


def export_on_gpu_host(service: ModelService, resolution: int, image: np.ndarray, tmp: Path) -> dict[str, Any]:
    """The browser engine's export (from a CPU copy) while requests run; the live model must stay on the GPU."""
    from rfdetr_demo.live.browser_engine import BrowserEngine
    from rfdetr_demo.models.backends.cache import ExportCache

    engine = BrowserEngine(service, ExportCache(tmp / "engines"))
    net = service.wait(0)[0].model.model.model
    devices: set[str] = set()
    result: dict[str, Any] = {}

    def export() -> None:
        try:
            result["seconds"], onnx_file = timed(lambda: engine.exports().prepare(resolution))
            result["mb"] = onnx_file.size / 1e6
        except Exception as exc:  # noqa: BLE001 - reported
            result["error"] = f"{exc.__class__.__name__}: {exc}"

    worker = threading.Thread(target=export)
    worker.start()
    served = 0
    while worker.is_alive():
        service.predict(image, 0.5, resolution)
        devices |= {str(p.device) for p in net.parameters()}
        served += 1
    worker.join()
    return {**result, "requests_meanwhile": served, "live_devices": sorted(devices)}


WEBGPU_ARGS = ["--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan,WebGPU", "--use-angle=vulkan",
               "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--no-first-run"]  # fmt: skip


def webgpu_page(service: ModelService, resolution: int, cache_root: Path, frames: int = 20) -> dict[str, Any]:
    """The in-browser engine's page in headless Chromium on the GPU (WebGPU via Vulkan), where it gets an adapter.

    ``cache_root``: the export cache the export check filled (the fp32 file is not made twice)."""
    from playwright.sync_api import sync_playwright

    from bench.bench_browser import serve
    from rfdetr_demo.live.browser_engine import BrowserEngine
    from rfdetr_demo.models.backends.cache import ExportCache
    from tests.helpers import CHROMIUM

    with sync_playwright() as playwright:
        engine = BrowserEngine(service, ExportCache(cache_root))
        server, url = serve(engine, resolution, isolated=False, seen=[])
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(url)
            adapter = page.evaluate(
                "async () => { if (!navigator.gpu) return null; const a = await navigator.gpu.requestAdapter();"
                " if (!a) return null; const i = a.info || {};"
                " return {name: [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'adapter',"
                " fallback: Boolean(a.isFallbackAdapter || i.isFallbackAdapter)}; }"
            )
            if not adapter:
                return {"skipped": "Chromium got no WebGPU adapter here (Vulkan driver or flags)"}
            if adapter["fallback"] or "swiftshader" in adapter["name"].lower():
                return {"skipped": f"only a software WebGPU adapter ({adapter['name']}): no GPU figure"}
            engine.exports().prepare(resolution)  # the export is timed in its own check
            page.click("#be-check")
            page.wait_for_selector("#be-go:not([hidden])", timeout=120_000)
            page.click("#be-go")
            page.wait_for_function(f"() => window.__browserEngine.frames >= {frames + 1}", timeout=120_000,
                                   polling=500)  # fmt: skip
            state = page.evaluate(
                "() => ({history: window.__browserEngine.history, backend: document.getElementById('be-backend')"
                ".textContent})"
            )
        finally:
            browser.close()
            server.should_exit = True
    later = state["history"][1:] or state["history"]
    total = statistics.median(sum(h[k] for k in ("pre", "model", "post", "draw")) for h in later)
    return {"adapter": adapter["name"], "backend": state["backend"], "ms_per_frame": total, "fps": 1000.0 / total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="a checkpoint file (default: --random-weights)")
    parser.add_argument("--resolution", type=int, default=576, help="GPU resolution (the 9.7 ms figure is at 576²)")
    parser.add_argument("--cpu-resolution", type=int, default=96, help="resolution of the CPU parts without CUDA")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per latency figure on the GPU")
    parser.add_argument("--clip-frames", type=int, default=150, help="frames of the GPU video check (25 fps)")
    parser.add_argument("--no-webgpu", action="store_true", help="skip the WebGPU page")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch

    print(f"machine: {describe()}", flush=True)
    gpu = torch.cuda.is_available()
    figures: dict[str, Any] = {"machine": describe(), "gpu": gpu}
    if not gpu:
        print(f"{NO_GPU_LINE} (fp16 vs fp32, latency per CUDA mode, export on the GPU host, WebGPU page); "
              f"the CPU parts at {args.cpu_resolution}²:", flush=True)  # fmt: skip
    device, res = ("cuda", args.resolution) if gpu else ("cpu", args.cpu_resolution)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        service, load_s, chosen = load(device, res, args.checkpoint)
        figures["load"] = {"seconds": load_s, **chosen}
        print(
            f"load + warm-up: {load_s:.1f} s; engine {chosen['engine']}, precision {chosen['label']}, "
            f"warm-up ms per mode { ({k: round(v, 1) for k, v in chosen['warmup_ms'].items()}) }",
            flush=True,
        )
        images = photos(1280 if gpu else 320)
        first_s, _ = timed(lambda: service.predict(images[0], 0.5, res))
        figures["first_request_s"] = first_s
        print(f"first request ({images[0].shape[1]}×{images[0].shape[0]} photo, {res}²): {first_s * 1000:.0f} ms")
        predictor = service.wait(0)[0]
        if gpu and hasattr(predictor, "mode"):
            figures["fp16_vs_fp32"] = dev = fp16_deviation(predictor, images, res)
            print(f"fp16 vs fp32 keypoints on {len(images)} COCO photos: {dev}", flush=True)
            figures["latency_ms"] = lat = mode_latencies(predictor, images[0], res, args.runs)
            print(f"latency at {res}² batch 1 (ms, median of {args.runs}): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in lat.items())
                  + f"; published T4 TensorRT FP16 at 576²: {T4_TENSORRT_FP16_MS} ms", flush=True)  # fmt: skip
        else:
            runs = 2 if not gpu else args.runs
            figures["latency_ms"] = {"plain": median_ms(lambda: service.predict(images[0], 0.5, res), runs)}
            print(f"latency at {res}² batch 1: {figures['latency_ms']['plain']:.0f} ms (median of {runs})")
        frames, width = (args.clip_frames, None) if gpu else (8, 320)
        figures["video"] = vid = video_fps(service, res, frames, tmp, width)
        print(
            f"video, {frames} frames ({width or 960} px wide) at {res}²: "
            + ", ".join(f"keyframes {k}: {v['fps']:.1f} fps ({v['model_runs']} model runs)" for k, v in vid.items()),
            flush=True,
        )
        if gpu:
            figures["export"] = exp = export_on_gpu_host(service, res, images[0], tmp)
            print(f"browser export at {res}² on the GPU host: {exp}", flush=True)
            if not args.no_webgpu:
                try:
                    figures["webgpu"] = web = webgpu_page(service, res, tmp / "engines")
                except Exception as exc:  # noqa: BLE001 - the page is the last, optional part
                    figures["webgpu"] = web = {"error": f"{exc.__class__.__name__}: {exc}"}
                print(f"WebGPU page: {web}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
