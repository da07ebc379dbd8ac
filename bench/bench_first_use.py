"""Benchmark: how long a person waits the first time they pick a resolution OpenVINO has not prepared yet.

Two OpenVINO predictors on the same weights, each with an empty export cache, in one run:

- ``blocking`` (the old behaviour, ``background=False``): the first request exports, compiles and checks the graph,
  then answers; everyone queued behind it waits as long.
- ``background`` (the app's behaviour): the first request is answered by torch while one thread exports; requests
  keep arriving every ``--gap`` seconds and the script records each one's latency and engine until OpenVINO serves.

    python bench/bench_first_use.py --resolution 384

Random weights (no download); the export cost does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from rfdetr_demo.image.decode import load_image  # noqa: E402
from rfdetr_demo.models.backends.cache import ExportCache  # noqa: E402
from rfdetr_demo.models.backends.openvino import OpenVINOPredictor, openvino_available  # noqa: E402


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=384)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between requests in the background run")
    parser.add_argument("--after", type=int, default=3, help="requests to time once OpenVINO serves")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    if not openvino_available():
        sys.exit("openvino is not installed: pip install -r requirements-speed.txt")

    import torch
    from rfdetr import RFDETRKeypointPreview

    torch.manual_seed(0)
    rf = RFDETRKeypointPreview(pretrain_weights=None, device="cpu")
    coco = REPO.parent / "shared" / "data" / "coco"
    image = load_image(str(sorted(coco.glob("*.jpg"))[0]), max_side=640).rgb
    res = args.resolution
    report: dict = {"machine": describe(), "loadavg_at_start": os.getloadavg(), "resolution": res}
    print(json.dumps(report), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        # Baseline: the first request blocks for export + compile + check.
        blocking = OpenVINOPredictor(rf, cache=ExportCache(Path(tmp) / "a"), background=False)
        first_s, _ = timed(lambda: blocking.predict([image], 0.5, res))
        second_s, _ = timed(lambda: blocking.predict([image], 0.5, res))
        report["blocking"] = {"first_request_s": first_s, "next_request_s": second_s}
        print("blocking", json.dumps(report["blocking"]), flush=True)

        # Ours: torch answers while the export runs in the background.
        ov = OpenVINOPredictor(rf, cache=ExportCache(Path(tmp) / "b"), background=True)
        t_start = time.perf_counter()
        requests: list[dict] = []
        served_by_openvino = 0
        while served_by_openvino < args.after:
            at = time.perf_counter() - t_start
            took, _ = timed(lambda: ov.predict([image], 0.5, res))
            engine = ov.engine_at(res)
            # engine_at after the call: a request that started before the graph was ready ran on torch
            ran_on = "openvino" if requests and requests[-1]["engine_after"] == "openvino" else "torch"
            requests.append({"at_s": round(at, 2), "took_s": round(took, 3), "ran_on": ran_on, "engine_after": engine})
            print(json.dumps(requests[-1]), flush=True)
            if ran_on == "openvino":
                served_by_openvino += 1
            if engine.startswith("torch (openvino failed"):
                sys.exit(f"export failed: {ov.failed}")
            time.sleep(args.gap)
        torch_runs = [r["took_s"] for r in requests if r["ran_on"] == "torch"]
        ov_runs = [r["took_s"] for r in requests if r["ran_on"] == "openvino"]
        first_ov = next(r for r in requests if r["ran_on"] == "openvino")
        report["background"] = {
            "first_request_s": requests[0]["took_s"],
            "openvino_serving_after_s": first_ov["at_s"],
            "torch_requests_meanwhile": len(torch_runs),
            "torch_request_s_max": max(torch_runs),
            "openvino_request_s_median": sorted(ov_runs)[len(ov_runs) // 2],
            "requests": requests,
        }
    report["first_answer_speedup"] = report["blocking"]["first_request_s"] / report["background"]["first_request_s"]
    report["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    b, g = report["blocking"], report["background"]
    blocked = f"{b['first_request_s']:.1f} s"
    print(
        f"\n| {res}² first use | first answer | OpenVINO from | slowest request meanwhile | OpenVINO request |\n"
        f"|---|---|---|---|---|\n"
        f"| blocking (old) | {blocked} | {blocked} | {blocked} | {b['next_request_s']:.2f} s |\n"
        f"| background (ours) | {g['first_request_s']:.2f} s | {g['openvino_serving_after_s']:.1f} s | "
        f"{g['torch_request_s_max']:.1f} s | {g['openvino_request_s_median']:.2f} s |"
    )
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
