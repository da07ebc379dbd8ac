"""Video throughput: a plain OpenCV loop against our pipeline, on the same clip, model and views, in one run.

Baseline (what a quick script does): ``cv2.VideoCapture`` read → ``model.predict`` → annotate → ``cv2.VideoWriter``
(mp4v, which browsers cannot even play). Ours: ``run_video`` (PyAV decode thread → inference thread → tracking,
render, H.264 encode, JSONL/CSV exports in the caller), which does strictly more work per frame.

Runs are interleaved (baseline, ours, baseline, ours, ...) after a warm-up so machine noise hits both alike;
the ratio of medians is reported.

    python bench/bench_video.py --frames 30 --resolution 288 --repeats 2

``--keyframes`` instead times ``run_video`` on a 10 s, 25 fps clip (the real frames played forwards and backwards)
with the model on every frame, on every 3rd frame and on an auto interval, in one run, and prints each wall time, its
model runs and its ratio to the every-frame run:

    python bench/bench_video.py --keyframes --resolution 288
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfdetr_demo.models.loading import ModelSpec, load_rfdetr  # noqa: E402
from rfdetr_demo.models.service import ModelService  # noqa: E402
from rfdetr_demo.results.prediction import apply_keypoint_threshold, drop_background  # noqa: E402
from rfdetr_demo.results.render import VIEW_COMBINED, render  # noqa: E402
from rfdetr_demo.temporal.tracking import PersonTracker  # noqa: E402
from rfdetr_demo.video.pipeline import VideoOptions, render_frame, run_video  # noqa: E402
from rfdetr_demo.video.reader import Segment, iter_frames, probe  # noqa: E402
from rfdetr_demo.video.writer import VideoWriter  # noqa: E402

SOURCE = REPO / ".." / "shared" / "data" / "video" / "dance_960x540_5f.mp4"


def make_clip(path: Path, frames: int, bounce: bool = False, width: int | None = None, source: Path = SOURCE) -> Path:
    """Loop the 5-frame real clip up to ``frames`` frames (H.264, 960×540 or scaled to ``width``, 25 fps);
    ``bounce``: forwards then backwards (0 1 2 3 4 3 2 1 0 …), so the motion has no jump back to the first frame."""
    with av.open(str(source)) as c:
        size = {} if width is None else {"width": width, "height": round(width * 540 / 960 / 2) * 2}
        src = [f.reformat(**size).to_ndarray(format="rgb24") for f in c.decode(video=0)]
    if bounce:
        src = src + src[-2:0:-1]
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = src[0].shape[1], src[0].shape[0], "yuv420p"
    for i in range(frames):
        for p in stream.encode(av.VideoFrame.from_ndarray(src[i % len(src)], format="rgb24")):
            out.mux(p)
    for p in stream.encode():
        out.mux(p)
    out.close()
    return path


def baseline(predictor, schema, clip: Path, out: Path, threshold: float, kp_thr: float, res: int) -> int:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25
    writer = None
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        kp = predictor.model.predict(rgb, threshold=threshold, shape=(res, res), include_source_image=False)
        kp = apply_keypoint_threshold(drop_background(kp), kp_thr)
        frame = render(rgb, kp, schema, [VIEW_COMBINED])[0]
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        n += 1
    cap.release()
    if writer is not None:
        writer.release()
    return n


STAGES: dict[str, list[float]] = {"decode": [], "infer": [], "track+render": [], "encode": []}


def sequential(service, schema, clip: Path, out: Path, opts: VideoOptions) -> int:
    """Our components (PyAV decode, service, tracking, render, H.264) in one thread: isolates the overlap's effect.

    Also records per-stage seconds per frame, which bound what overlapping can gain (the slowest stage sets the pace).
    """
    info = probe(clip)
    writer = VideoWriter(out, info.fps)
    tracker = PersonTracker(float(info.fps), opts.threshold)
    n = 0
    t = time.perf_counter()
    for f in iter_frames(clip, Segment(0.0, None, 1)):
        t = _lap("decode", t)
        kp = service.predict(f.rgb, opts.threshold, opts.resolution).key_points
        t = _lap("infer", t)
        kp = tracker.update(kp, f.timestamp)
        frame = render_frame(f.rgb, apply_keypoint_threshold(kp, 0.3), schema, [VIEW_COMBINED], "combined")
        t = _lap("track+render", t)
        writer.write(frame)
        t = _lap("encode", t)
        n += 1
    writer.finish()
    return n


def _lap(stage: str, t: float) -> float:
    now = time.perf_counter()
    STAGES[stage].append(now - t)
    return now


def keyframe_runs(service, resolution: int, seconds: float = 10.0, settings: tuple = (1, 3, "auto")) -> None:
    """Every frame vs every 3rd frame vs auto on one clip, in one run (ratios are what count on a shared machine).

    CPU seconds of this process (all its threads) are printed beside the wall time: on a machine shared with other
    jobs the wall time of runs minutes apart follows their load, the CPU time much less.
    """
    tmp = Path(tempfile.mkdtemp(prefix="bench_keyframes_"))
    clip = make_clip(tmp / "clip.mp4", round(25 * seconds), bounce=True)
    times: dict[str, tuple[float, float]] = {}
    for setting in settings:
        opts = VideoOptions(resolution=resolution, views=[VIEW_COMBINED], keyframes=setting, smoothing="kalman",
                            max_seconds=None)  # fmt: skip
        t0, c0 = time.perf_counter(), time.process_time()
        r = run_video(service, clip, opts, out_dir=tmp / f"k{setting}")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        times[str(setting)] = wall, cpu
        out = av.open(str(r.video_path))
        frames, rate = out.streams.video[0].frames, out.streams.video[0].average_rate
        out.close()
        base_wall, base_cpu = times.get("1", (wall, cpu))  # without an every-frame run: ratios to itself
        print(f"keyframes {setting!s:5s}: wall {wall:7.1f} s (ratio {wall / base_wall:.2f}), CPU {cpu:7.1f} s "
              f"(ratio {cpu / base_cpu:.2f}); {r.model_runs} model runs / {r.frames_done} frames "
              f"({r.model_runs / r.frames_done:.2f} per frame), output {frames} frames at {rate} fps",
              flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--resolution", type=int, default=288)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=None, help="pipeline batch (default: 1 on CPU, 8 on GPU)")
    ap.add_argument("--keyframes", action="store_true", help="time every frame vs interval 3 vs auto (10 s clip)")
    ap.add_argument("--settings", default="1,3,auto", help="keyframe settings timed by --keyframes, in order")
    args = ap.parse_args()

    import torch

    spec = ModelSpec(random_weights=True, device=args.device, resolution=args.resolution)
    service = ModelService(lambda: load_rfdetr(spec))
    predictor, schema, info = service.wait(600)
    if args.keyframes:
        from bench.machine import describe

        service.predict(np.zeros((540, 960, 3), np.uint8), 0.5, args.resolution)  # warm-up
        print(f"machine: {describe()}; device {info.device}; clip 10 s, 25 fps, 960x540; resolution {args.resolution}")
        settings = tuple(int(s) if s.isdigit() else s for s in args.settings.split(","))
        keyframe_runs(service, args.resolution, settings=settings)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_video_"))
    clip = make_clip(tmp / "clip.mp4", args.frames)
    opts = VideoOptions(
        threshold=0.5, keypoint_threshold=0.3, resolution=args.resolution, views=[VIEW_COMBINED],
        tracking=True, batch_size=args.batch_size, max_seconds=None,
    )  # fmt: skip

    def run_baseline() -> float:
        t0 = time.perf_counter()
        n = baseline(predictor, schema, clip, tmp / "baseline.mp4", 0.5, 0.3, args.resolution)
        return n / (time.perf_counter() - t0)

    def run_ours() -> float:
        t0 = time.perf_counter()
        r = run_video(service, clip, opts, out_dir=tmp / f"ours_{time.time_ns()}")
        return r.frames_done / (time.perf_counter() - t0)

    def run_sequential() -> float:
        t0 = time.perf_counter()
        n = sequential(service, schema, clip, tmp / f"seq_{time.time_ns()}.mp4", opts)
        return n / (time.perf_counter() - t0)

    # Warm-up (first inferences allocate; not counted).
    for _ in range(2):
        service.predict(np.zeros((540, 960, 3), np.uint8), 0.5, args.resolution)
    base, ours, seq = [], [], []
    for _ in range(args.repeats):
        base.append(run_baseline())
        ours.append(run_ours())
        seq.append(run_sequential())
    b, o, q = statistics.median(base), statistics.median(ours), statistics.median(seq)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"device {info.device}, torch {torch.__version__}")  # fmt: skip
    print(f"clip: {args.frames} frames 960x540, resolution {args.resolution}, views [Combined], tracking on")
    print(f"baseline loop fps per run: {[round(x, 2) for x in base]}  median {b:.2f}")
    print(f"pipeline fps per run:      {[round(x, 2) for x in ours]}  median {o:.2f}")
    print(f"same components, one thread: {[round(x, 2) for x in seq]}  median {q:.2f}")
    print("one-thread stage medians (ms/frame): "
          + ", ".join(f"{k} {1000 * statistics.median(v):.1f}" for k, v in STAGES.items() if v))  # fmt: skip
    print(f"ratio pipeline/baseline: {o / b:.2f}x   pipeline/one-thread: {o / q:.2f}x")


if __name__ == "__main__":
    main()
