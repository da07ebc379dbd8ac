"""Where the OpenVINO fp32 forward spends its time, per operation type (OpenVINO's own performance counters).

Why: to tell how far the exact CPU engine is from the hardware limit. If the matrix products already run near the
measured matmul peak, the remaining time is in layout changes and element-wise work, and no engine setting will
make the exact path much faster.

    python bench/profile_openvino.py --resolution 576

Uses the same seeded random weights as bench/bench_backend.py, so its export cache is reused.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from rfdetr_demo.models.backends.cache import ExportCache  # noqa: E402
from rfdetr_demo.models.backends.openvino import OpenVINOPredictor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=576)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()

    import openvino as ov
    import torch
    from rfdetr import RFDETRKeypointPreview

    from tests.support.synthetic import fill_zero_keypoint_heads

    torch.manual_seed(0)
    rf = RFDETRKeypointPreview(pretrain_weights=None, device="cpu")
    fill_zero_keypoint_heads(rf.model.model)
    res = args.resolution
    engine = OpenVINOPredictor(rf, precision="fp32", cache=ExportCache())
    engine.prepare(res)  # export (or disk cache) + check
    xml = next(p for p in ExportCache().root.glob(f"*-r{res}-*/model.xml"))

    core = ov.Core()
    graph = core.read_model(str(xml))
    graph.reshape({graph.inputs[0]: [1, 3, res, res]})
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((1, 3, res, res)).astype(np.float32)
    request.infer({0: x})
    # FLOPs of every MatMul in the graph (OpenVINO runs them as FullyConnected), by node name.
    matmul_flop: dict[str, float] = {}
    for op in graph.get_ordered_ops():
        if op.get_type_name() == "MatMul" and op.get_output_partial_shape(0).is_static:
            a = list(op.get_input_partial_shape(0).to_shape())
            k = a[-2] if op.get_attributes().get("transpose_a") else a[-1]
            matmul_flop[op.get_friendly_name()] = 2.0 * float(np.prod(op.get_output_shape(0))) * k
    totals: collections.Counter[tuple[str, str]] = collections.Counter()
    fc_ms = 0.0
    fc_flop = 0.0
    per_run = []
    for _ in range(args.runs):
        request.infer({0: x})
        run: collections.Counter[tuple[str, str]] = collections.Counter()
        for info in request.profiling_info:
            ms = info.real_time.total_seconds() * 1000.0
            run[(info.node_type, info.exec_type)] += ms
            if info.node_type == "FullyConnected" and info.node_name in matmul_flop:
                fc_ms += ms
                fc_flop += matmul_flop[info.node_name]
        per_run.append(sum(run.values()))
        totals.update(run)
    total = sum(totals.values()) / args.runs
    print(describe())
    print(f"\n{res}²: {total:.0f} ms per forward (sum of OpenVINO node times, mean of {args.runs} runs)\n")
    print("| operation | kernel | ms | share |\n|---|---|---:|---:|")
    for (node, kernel), ms in totals.most_common(args.top):
        print(f"| {node} | {kernel} | {ms / args.runs:.1f} | {ms / args.runs / total:.1%} |")
    from bench.bench_backend import matmul_peak

    peak = matmul_peak("fp32")
    if fc_ms:
        rate = fc_flop / (fc_ms / 1000.0) / 1e9
        print(
            f"\nFullyConnected layers matched to their MatMul: {fc_flop / args.runs / 1e9:.1f} GFLOP in "
            f"{fc_ms / args.runs:.0f} ms per forward = {rate:.0f} GFLOP/s; torch 2048² fp32 matmul peak measured now: "
            f"{peak:.0f} GFLOP/s ({rate / peak:.0%} of it)."
        )


if __name__ == "__main__":
    main()
