"""Benchmark: plain rfdetr ``predict`` vs the demo's CPU engines, on the same images, in one run.

Reports min/median latency per full prediction (pre-processing + network + rfdetr post-processing), the speed-up
over plain ``predict``, each latency as a multiple of the compute floor (FLOPs of one forward ÷ the matmul peak
measured in this same run), and the largest |difference| of boxes, keypoints and scores against plain ``predict``.

    python bench/bench_backend.py --runs 7 --resolutions 576 384
    python bench/bench_backend.py --device cuda          # GPU: plain vs fp16 autocast vs fp16 model.inference,
                                                         # plus images/s at batch sizes 1-16

Random weights by default (no download); ``--checkpoint`` for real ones. The first call per engine and resolution
(export/compile) is excluded from the timings and reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from rfdetr_demo.image.decode import load_image  # noqa: E402
from rfdetr_demo.models.backends.cache import ExportCache  # noqa: E402
from rfdetr_demo.models.backends.openvino import OpenVINOPredictor, openvino_available  # noqa: E402
from rfdetr_demo.models.predictor import RFDETRPredictor  # noqa: E402


def matmul_peak(dtype_name: str, n: int = 2048, repeats: int = 8, device: str = "cpu") -> float:
    """Best observed GFLOP/s of an n×n matmul with the threads torch uses (the compute ceiling of this host)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    if device.startswith("cuda"):
        n = max(n, 8192)  # small products do not fill a GPU
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    torch.mm(a, b)
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


CPU_ENGINES = ("plain_predict_fp32", "openvino_fp32", "openvino_bf16")
CUDA_ENGINES = ("plain_predict_fp32", "autocast_fp16", "inference_fp16")
PUBLISHED_T4_TENSORRT_FP16_MS = 9.7  # RF-DETR keypoint preview, 576², from the model card


def build_engine(name: str, rf, device: str, cache):
    """One engine by name; ``inference_*`` are the CUDA path's ``model.inference`` views (any device)."""
    import torch

    from rfdetr_demo.models.backends.cuda import CUDAPredictor

    if name == "plain_predict_fp32":
        return RFDETRPredictor(rf, device=device, precision="fp32")
    if name.startswith("autocast_"):
        return RFDETRPredictor(rf, device=device, precision=name.split("_")[1])
    if name.startswith("inference_"):
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[name.split("_")[1]]
        return CUDAPredictor(rf, device=device, precision="fp16", half_dtype=dtype, max_batch=64)
    if name.startswith("openvino_"):
        return OpenVINOPredictor(rf, precision=name.split("_")[1], cache=cache)
    raise SystemExit(f"unknown engine {name!r}")


def floor_kind(name: str) -> str:
    return next((k for k in ("bf16", "fp16") if name.endswith(k)), "fp32")


def throughput(engine, images: list[np.ndarray], batch: int, runs: int, resolution: int) -> float:
    """Images per second for batches of ``batch`` images (cycled from ``images``), median of ``runs``."""
    frames = [images[i % len(images)] for i in range(batch)]
    engine.predict(frames, 0.5, resolution)  # allocation / kernel selection for this batch size
    return batch / statistics.median(time_calls(lambda: engine.predict(frames, 0.5, resolution), runs))


def forward_gflop(rf, resolution: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = rf.model.model.eval()
    x = torch.randn(1, 3, resolution, resolution, device=next(module.parameters()).device)
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:  # FlopCounterMode's module tracker trips over grad-requiring params under no_grad
        p.requires_grad_(False)
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            module(x)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return counter.get_total_flops() / 1e9


def time_calls(fn, runs: int) -> list[float]:
    """Wall-clock seconds of ``runs`` calls."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def max_differences(got, ref) -> dict[str, float]:
    """Largest |difference| after matching rows (top-k order can swap between near-equal scores)."""
    from scipy.optimize import linear_sum_assignment

    worst = {"boxes_px": 0.0, "keypoints_px": 0.0, "scores": 0.0, "keypoint_conf": 0.0, "row_count_diff": 0.0}
    for g, r in zip(got, ref, strict=True):
        worst["row_count_diff"] = max(worst["row_count_diff"], abs(len(g) - len(r)))
        if not len(g) or not len(r):
            continue
        cost = np.abs(g.data["xyxy"][:, None, :] - r.data["xyxy"][None, :, :]).sum(-1)
        cost += 1e3 * (g.class_id[:, None] != r.class_id[None, :])
        gi, ri = linear_sum_assignment(cost)
        worst["boxes_px"] = max(worst["boxes_px"], float(np.abs(g.data["xyxy"][gi] - r.data["xyxy"][ri]).max()))
        worst["keypoints_px"] = max(worst["keypoints_px"], float(np.abs(g.xy[gi] - r.xy[ri]).max()))
        worst["scores"] = max(
            worst["scores"], float(np.abs(g.detection_confidence[gi] - r.detection_confidence[ri]).max())
        )
        worst["keypoint_conf"] = max(
            worst["keypoint_conf"], float(np.abs(g.keypoint_confidence[gi] - r.keypoint_confidence[ri]).max())
        )
    return worst


def raw_output_differences(rf, engine, image: np.ndarray, resolution: int) -> dict[str, float]:
    """Max |difference| of the network's raw outputs vs torch on one real pre-processed image.

    Box and keypoint coordinates are normalised to [0, 1]; the ``_px`` figures scale them by the image's longer
    side. Unlike the post-processed comparison this is not affected by top-k re-ranking of near-equal scores.
    """
    import torch
    import torchvision.transforms.functional as F

    if not hasattr(engine, "prepare"):
        return {}
    from rfdetr_demo.models.backends.openvino import as_output_dict

    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    x = F.normalize(F.resize(t, [resolution, resolution], antialias=False), rf.means, rf.stds)[None]
    with torch.inference_mode():
        ref = rf.model.model.eval()(x)
    compiled = engine.prepare(resolution)
    got = as_output_dict([compiled(x.numpy())[o] for o in compiled.outputs])
    side = max(image.shape[:2])
    kp_xy = (got["pred_keypoints"][..., :2] - ref["pred_keypoints"][..., :2]).abs().max().item()
    return {
        "raw_boxes_px": (got["pred_boxes"] - ref["pred_boxes"]).abs().max().item() * side,
        "raw_keypoints_xy_px": kp_xy * side,
        "raw_keypoint_terms": (got["pred_keypoints"] - ref["pred_keypoints"]).abs().max().item(),
        "raw_logits": (got["pred_logits"] - ref["pred_logits"]).abs().max().item(),
    }


def markdown_table(report: dict) -> str:
    lines = [
        "| res | engine | min s | median s | × plain (median) | median × floor | keypoints Δpx | boxes Δpx | scores Δ "
        "| raw kp xy Δpx |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res, row in report["results"].items():
        for name, e in row["engines"].items():
            d, raw = e["diff_vs_plain"], e.get("raw_diff_vs_torch", {})
            raw_kp = f"{raw['raw_keypoints_xy_px']:.2g}" if raw else "–"
            lines.append(
                f"| {res}² | {name} | {e['min_s']:.3f} | {e['median_s']:.3f} | {e['speedup_median']:.2f}× "
                f"| {e['median_x_floor']:.2f} | {d['keypoints_px']:.2g} | {d['boxes_px']:.2g} | {d['scores']:.2g} "
                f"| {raw_kp} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[576, 384])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--images", type=int, default=2, help="COCO images from ../shared/data (batch of 1 each)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--engines", nargs="+", default=None, help=f"default: {CPU_ENGINES} / on cuda {CUDA_ENGINES}")
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None, help="images/s per batch (cuda: 1-16)")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch
    from rfdetr import RFDETRKeypointPreview

    cuda = args.device.startswith("cuda")
    names = list(args.engines or (CUDA_ENGINES if cuda else CPU_ENGINES))
    if args.no_bf16:
        names = [n for n in names if not n.endswith("bf16")]
    if any(n.startswith("openvino") for n in names) and (cuda or not openvino_available()):
        print("openvino not installed or not a CPU run: OpenVINO engines skipped", flush=True)
        names = [n for n in names if not n.startswith("openvino")]
    if "plain_predict_fp32" not in names:
        names.insert(0, "plain_predict_fp32")  # the baseline every ratio is against
    batch_sizes = args.batch_sizes if args.batch_sizes is not None else ([1, 2, 4, 8, 16] if cuda else [])

    torch.manual_seed(0)  # same random weights every run, so the export cache is reused across runs
    rf = RFDETRKeypointPreview(pretrain_weights=args.checkpoint, device=args.device)
    if args.checkpoint is None:
        from tests.support.synthetic import fill_zero_keypoint_heads

        fill_zero_keypoint_heads(rf.model.model)  # untrained heads would zero every keypoint: nothing to compare
    coco = REPO.parent / "shared" / "data" / "coco"
    paths = sorted(coco.glob("*.jpg"))[: args.images]
    images = [load_image(str(p), max_side=640).rgb for p in paths]
    if not images:
        images = [np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)]

    kinds = sorted({floor_kind(n) for n in names})
    peaks = {k: matmul_peak(k, device=args.device) for k in kinds}
    load = os.getloadavg()
    report: dict = {
        "machine": describe(),
        "device": args.device,
        "loadavg_at_start": load,
        "matmul_peak_gflops": peaks,
        "images": [p.name for p in paths] or ["random 640x480"],
        "image_sizes": [list(im.shape[:2][::-1]) for im in images],
        "runs": args.runs,
        "results": {},
    }
    print(json.dumps({k: report[k] for k in ("machine", "loadavg_at_start", "matmul_peak_gflops")}), flush=True)

    cache = ExportCache()
    engines: dict[str, object] = {name: build_engine(name, rf, args.device, cache) for name in names}
    plain = engines["plain_predict_fp32"]

    for res in args.resolutions:
        gflop = forward_gflop(rf, res)
        floors = {k: gflop / v for k, v in peaks.items()}
        row: dict = {"forward_gflop": gflop, "floor_s": floors, "engines": {}}
        refs = plain.predict(images, 0.0, res)
        firsts, setups = {}, {}
        for name, eng in engines.items():
            t0 = time.perf_counter()
            if hasattr(eng, "prepare"):
                eng.prepare(res)  # export (or disk cache) + compile: excluded from the timings
            firsts[name] = eng.predict(images, 0.0, res)
            setups[name] = time.perf_counter() - t0
        # Round-robin over engines so a burst of load from other processes hits every engine alike.
        samples: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.runs):
            for im in images:
                for name, eng in engines.items():
                    samples[name] += time_calls(lambda im=im, eng=eng, res=res: eng.predict([im], 0.5, res), 1)
        for name in engines:
            floor = floors[floor_kind(name)]
            entry = {
                "first_call_s": setups[name],
                "min_s": min(samples[name]),
                "median_s": statistics.median(samples[name]),
                "min_x_floor": min(samples[name]) / floor,
                "median_x_floor": statistics.median(samples[name]) / floor,
                "diff_vs_plain": max_differences(firsts[name], refs),
                "raw_diff_vs_torch": raw_output_differences(rf, engines[name], images[0], res),
            }
            if batch_sizes and not name.startswith("openvino"):
                entry["images_per_s"] = {
                    str(b): throughput(engines[name], images, b, args.runs, res) for b in batch_sizes
                }
                entry["best_images_per_s"] = max(entry["images_per_s"].values())
            row["engines"][name] = entry
            print(res, name, json.dumps(entry), flush=True)
        base = row["engines"]["plain_predict_fp32"]["median_s"]
        for entry in row["engines"].values():
            entry["speedup_median"] = base / entry["median_s"]
        report["results"][str(res)] = row
    report["loadavg_at_end"] = os.getloadavg()
    # Other processes may have shared the CPU while the peak was measured: measure again and keep the best, so the
    # floor is never understated. Floors and ×floor figures are recomputed with the final peak.
    end_peaks = {k: matmul_peak(k, device=args.device) for k in peaks}
    report["matmul_peak_gflops_start_end"] = {k: [peaks[k], end_peaks[k]] for k in peaks}
    peaks = {k: max(peaks[k], end_peaks[k]) for k in peaks}
    report["matmul_peak_gflops"] = peaks
    for row in report["results"].values():
        row["floor_s"] = {k: row["forward_gflop"] / v for k, v in peaks.items()}
        for name, entry in row["engines"].items():
            floor = row["floor_s"][floor_kind(name)]
            entry["min_x_floor"] = entry["min_s"] / floor
            entry["median_x_floor"] = entry["median_s"] / floor
    text = json.dumps(report, indent=2)
    print(text)
    print(markdown_table(report))
    if batch_sizes:
        print("\n| res | engine | ms/image at batch 1 | images/s by batch size | best images/s |")
        print("|---|---|---|---|---|")
        for res, row in report["results"].items():
            for name, e in row["engines"].items():
                if "images_per_s" in e:
                    per = ", ".join(f"{b}: {v:.1f}" for b, v in e["images_per_s"].items())
                    print(f"| {res}² | {name} | {e['median_s'] * 1000:.1f} | {per} | {e['best_images_per_s']:.1f} |")
        print(f"(published: {PUBLISHED_T4_TENSORRT_FP16_MS} ms per image on a T4 with TensorRT FP16 at 576²)")
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
