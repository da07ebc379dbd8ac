"""Benchmark: plain rfdetr ``predict`` vs the demo's CPU engines, on the same images, in one run.

Reports min/median latency per full prediction (pre-processing + network + rfdetr post-processing), the speed-up
over plain ``predict``, each latency as a multiple of the compute floor (FLOPs of one forward ÷ the matmul peak
measured in this same run), and the largest |difference| of boxes, keypoints and scores against plain ``predict``.

    python bench/bench_backend.py --runs 7 --resolutions 576 384

Random weights by default (no download); ``--checkpoint`` for real ones. The first call per engine and resolution
(export/compile) is excluded from the timings and reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfdetr_demo.backends.cache import ExportCache  # noqa: E402
from rfdetr_demo.backends.openvino_backend import OpenVINOPredictor, openvino_available  # noqa: E402
from rfdetr_demo.images import load_image  # noqa: E402
from rfdetr_demo.predictor import RFDETRPredictor  # noqa: E402


def matmul_peak(dtype_name: str, n: int = 2048, repeats: int = 8) -> float:
    """Best observed GFLOP/s of an n×n matmul with the threads torch uses (the compute ceiling of this host)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def forward_gflop(rf, resolution: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module = rf.model.model.eval()
    x = torch.randn(1, 3, resolution, resolution)
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
    from rfdetr_demo.backends.openvino_backend import _as_output_dict

    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
    x = F.normalize(F.resize(t, [resolution, resolution], antialias=False), rf.means, rf.stds)[None]
    with torch.inference_mode():
        ref = rf.model.model.eval()(x)
    compiled = engine.prepare(resolution)
    got = _as_output_dict([compiled(x.numpy())[o] for o in compiled.outputs])
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
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    import torch
    from rfdetr import RFDETRKeypointPreview

    torch.manual_seed(0)  # same random weights every run, so the export cache is reused across runs
    rf = RFDETRKeypointPreview(pretrain_weights=args.checkpoint, device="cpu")
    if args.checkpoint is None:
        from rfdetr_demo.backends.synthetic import fill_zero_keypoint_heads

        fill_zero_keypoint_heads(rf.model.model)  # untrained heads would zero every keypoint: nothing to compare
    coco = REPO.parent / "shared" / "data" / "coco"
    paths = sorted(coco.glob("*.jpg"))[: args.images]
    images = [load_image(str(p), max_side=640).rgb for p in paths]
    if not images:
        images = [np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)]

    peaks = {"fp32": matmul_peak("fp32")}
    if not args.no_bf16:
        peaks["bf16"] = matmul_peak("bf16")
    load = os.getloadavg()
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "loadavg_at_start": load,
        "matmul_peak_gflops": peaks,
        "images": [p.name for p in paths] or ["random 640x480"],
        "image_sizes": [list(im.shape[:2][::-1]) for im in images],
        "runs": args.runs,
        "results": {},
    }
    print(json.dumps({k: report[k] for k in ("machine", "loadavg_at_start", "matmul_peak_gflops")}), flush=True)

    plain = RFDETRPredictor(rf, device="cpu", precision="fp32")
    engines: dict[str, object] = {"plain_predict_fp32": plain}
    if openvino_available():
        cache = ExportCache()
        engines["openvino_fp32"] = OpenVINOPredictor(rf, precision="fp32", cache=cache)
        if not args.no_bf16:
            engines["openvino_bf16"] = OpenVINOPredictor(rf, precision="bf16", cache=cache)
    else:
        print("openvino not installed: only plain predict is timed", flush=True)

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
            floor = floors["bf16" if name.endswith("bf16") else "fp32"]
            entry = {
                "first_call_s": setups[name],
                "min_s": min(samples[name]),
                "median_s": statistics.median(samples[name]),
                "min_x_floor": min(samples[name]) / floor,
                "median_x_floor": statistics.median(samples[name]) / floor,
                "diff_vs_plain": max_differences(firsts[name], refs),
                "raw_diff_vs_torch": raw_output_differences(rf, engines[name], images[0], res),
            }
            row["engines"][name] = entry
            print(res, name, json.dumps(entry), flush=True)
        base = row["engines"]["plain_predict_fp32"]["median_s"]
        for entry in row["engines"].values():
            entry["speedup_median"] = base / entry["median_s"]
        report["results"][str(res)] = row
    report["loadavg_at_end"] = os.getloadavg()
    # Other processes may have shared the CPU while the peak was measured: measure again and keep the best, so the
    # floor is never understated. Floors and ×floor figures are recomputed with the final peak.
    end_peaks = {k: matmul_peak(k) for k in peaks}
    report["matmul_peak_gflops_start_end"] = {k: [peaks[k], end_peaks[k]] for k in peaks}
    peaks = {k: max(peaks[k], end_peaks[k]) for k in peaks}
    report["matmul_peak_gflops"] = peaks
    for row in report["results"].values():
        row["floor_s"] = {k: row["forward_gflop"] / v for k, v in peaks.items()}
        for name, entry in row["engines"].items():
            floor = row["floor_s"]["bf16" if name.endswith("bf16") else "fp32"]
            entry["min_x_floor"] = entry["min_s"] / floor
            entry["median_x_floor"] = entry["median_s"] / floor
    text = json.dumps(report, indent=2)
    print(text)
    print(markdown_table(report))
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
