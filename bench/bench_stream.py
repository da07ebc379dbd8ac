"""Live-stream benchmark: does the webcam path keep up without a backlog?

A producer thread offers 640x480 frames (from the shared dance clip, mirrored like a browser webcam) at a fixed rate
(default 30 fps) for a fixed time; the consumer is the real :class:`FrameHandler` (un-mirror → model → two views
tiled) with the real RF-DETR Keypoint model (random weights, so no download) at 288. Reported: achieved fps, p50/p95
end-to-end latency (frame offered → annotated tile ready), model latency, and p95 / model (goal ≤ 1.5).

Baseline in the same run: a FIFO consumer that processes every offered frame in order (what a naive queue does),
for a shorter time. Its latency grows with the run length; latest-frame-wins keeps it flat.

    python bench/bench_stream.py --seconds 20 --fifo-seconds 8 --resolution 288
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfdetr_demo.live.frame_handler import FrameHandler, FrameOptions  # noqa: E402
from rfdetr_demo.models.service import ModelService  # noqa: E402
from rfdetr_demo.results.render import VIEW_COMBINED, VIEW_HALO  # noqa: E402

CLIP = REPO / ".." / "shared" / "data" / "video" / "dance_960x540_5f.mp4"
COCO_JSON = REPO / ".." / "shared" / "data" / "coco" / "test_coco.json"


def webcam_frames(size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """The clip's frames at webcam size, mirrored as Gradio's webcam sends them."""
    import av

    with av.open(str(CLIP)) as container:
        decoded = container.decode(video=0)
        frames = [f.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray() for f in decoded]
    return [np.ascontiguousarray(f[:, ::-1]) for f in frames]


def sleeping_service(seconds: float, resolution: int) -> ModelService:
    """A model stand-in with a fixed latency that returns a real annotated COCO person scaled to the frame."""
    from rfdetr_demo.results.prediction import ModelInfo
    from rfdetr_demo.results.schema import KeypointSchema
    from tests.support.replay import ReplayPredictor, load_coco_truth, scale_keypoints

    truth = next(t for t in load_coco_truth(COCO_JSON).values() if len(t.key_points))

    def lookup(img: np.ndarray):
        time.sleep(seconds)
        return scale_keypoints(truth.key_points, img.shape[1] / truth.width, img.shape[0] / truth.height)

    info = ModelInfo(
        name=f"sleep {seconds * 1000:.0f} ms stand-in", source="COCO ground truth", device="cpu", precision="fp32",
        default_resolution=resolution, num_keypoints=17, class_names=["person"],
    )  # fmt: skip
    return ModelService(lambda: (ReplayPredictor(lookup), KeypointSchema.coco(), info))


def produce(offer, frames: list[np.ndarray], fps: float, seconds: float, stop: threading.Event) -> int:
    """Offer frames on a fixed schedule (not drifting with sleep jitter); return how many were offered."""
    period = 1.0 / fps
    start = time.perf_counter()
    n = 0
    while not stop.is_set():
        due = start + n * period
        if due - start >= seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        offer(frames[n % len(frames)], time.perf_counter())
        n += 1
    return n


def summarize(
    e2e: list[float], model: list[float], render: list[float], done_times: list[float], offered: int, seconds: float
) -> dict:
    e2e_a, model_a, render_a = np.array(e2e), np.array(model), np.array(render)
    waited = e2e_a - model_a - render_a  # time the frame sat before the model took it (backlog shows up here)
    span = done_times[-1] - done_times[0] if len(done_times) > 1 else float("nan")
    return {
        "frames_offered": offered,
        "frames_processed": len(e2e),
        "frames_not_processed": offered - len(e2e),  # skipped (latest-wins) or still queued (FIFO)
        "achieved_fps": round((len(done_times) - 1) / span, 2) if len(done_times) > 1 else 0.0,
        "e2e_p50_ms": round(float(np.percentile(e2e_a, 50)), 1),
        "e2e_p95_ms": round(float(np.percentile(e2e_a, 95)), 1),
        "e2e_max_ms": round(float(e2e_a.max()), 1),
        "model_p50_ms": round(float(np.percentile(model_a, 50)), 1),
        "render_p50_ms": round(float(np.percentile(render_a, 50)), 1),
        "waited_p50_ms": round(float(np.percentile(waited, 50)), 1),
        "waited_p95_ms": round(float(np.percentile(waited, 95)), 1),
        "p95_over_model": round(float(np.percentile(e2e_a, 95) / np.percentile(model_a, 50)), 2),
        "seconds": seconds,
    }


def run_latest(service: ModelService, frames, options: FrameOptions, fps: float, seconds: float) -> dict:
    handler = FrameHandler(service)
    stop = threading.Event()
    offered = [0]
    producer = threading.Thread(
        target=lambda: offered.__setitem__(0, produce(handler.submit, frames, fps, seconds, stop)), daemon=True
    )
    e2e, model, render, done = [], [], [], []
    producer.start()
    while producer.is_alive() or handler.slot.offered > handler.slot.taken + handler.slot.dropped:
        result = handler.process_latest(options, timeout=0.2)
        if result is None or result.prediction is None:
            continue
        e2e.append(result.e2e_ms)
        model.append(result.model_ms)
        render.append(result.render_ms)
        done.append(time.perf_counter())
    producer.join()
    out = summarize(e2e, model, render, done, offered[0], seconds)
    out["policy"] = "latest-frame-wins (FrameHandler)"
    return out


def run_fifo(service: ModelService, frames, options: FrameOptions, fps: float, seconds: float) -> dict:
    """Baseline: every frame queued and processed in order (processing stops when the offering stops)."""
    handler = FrameHandler(service)
    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    offered = [0]
    producer = threading.Thread(
        target=lambda: offered.__setitem__(0, produce(lambda f, t: q.put((f, t)), frames, fps, seconds, stop)),
        daemon=True,
    )
    e2e, model, render, done = [], [], [], []
    producer.start()
    while producer.is_alive():
        try:
            frame, t = q.get(timeout=0.2)
        except queue.Empty:
            continue
        result = handler.process(frame, options, offered_at=t)
        e2e.append(result.e2e_ms)
        model.append(result.model_ms)
        render.append(result.render_ms)
        done.append(time.perf_counter())
    out = summarize(e2e, model, render, done, offered[0], seconds)
    out["policy"] = "FIFO queue (baseline)"
    out["frames_still_queued_at_end"] = q.qsize()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fifo-seconds", type=float, default=8.0, help="0 skips the FIFO baseline")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--resolution", type=int, default=288)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--sleep-model-ms", type=float, default=0.0,
        help="instead of the network, a stand-in that sleeps this long and returns a real COCO person: isolates "
        "the scheduling (backlog) behaviour from CPU contention",
    )  # fmt: skip
    args = parser.parse_args()

    if args.sleep_model_ms > 0:
        service = sleeping_service(args.sleep_model_ms / 1000.0, args.resolution)
    else:
        from rfdetr_demo.models.loading import ModelSpec, load_rfdetr

        spec = ModelSpec(random_weights=True, device=args.device, resolution=args.resolution)
        service = ModelService(lambda: load_rfdetr(spec))
    service.start()
    t0 = time.perf_counter()
    service.wait(600)
    load_s = time.perf_counter() - t0
    frames = webcam_frames()
    # The UI's default threshold. Random weights then find nobody, so drawing is cheap here; the stand-in run
    # (--sleep-model-ms) draws a real COCO person and measures drawing cost.
    options = FrameOptions(
        threshold=args.threshold, keypoint_threshold=0.0, resolution=args.resolution, views=(VIEW_COMBINED, VIEW_HALO),
        mirrored_input=True, mirror_display=True,
    )  # fmt: skip
    for f in frames[:2]:  # warm-up (first calls allocate)
        FrameHandler(service).process(f, options)

    results = {
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "model": service.info.as_dict(),
        "model_load_s": round(load_s, 1),
        "offered_fps": args.fps,
        "frame_size": "640x480 (mirrored, like a webcam)",
        "views": list(options.views),
        "latest": run_latest(service, frames, options, args.fps, args.seconds),
    }
    if args.fifo_seconds > 0:
        results["fifo"] = run_fifo(service, frames, options, args.fps, args.fifo_seconds)
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
