"""Evaluate: our evaluation (batched model run + COCOeval + report) vs a plain loop, in the same run.

Plain loop = for each image: PIL decode → ``model.predict`` → COCO results; then COCOeval (the script anyone would
write). Ours = :func:`rfdetr_demo.evaluate.pipeline.evaluate` through the app's model service at a batch size,
plus per-keypoint/calibration figures and (``--with-report``) metrics.json/CSV/PNG plots. Both use the same
random-weight ``RFDETRKeypointPreview`` instance (torch engine) at the same resolution and score floor, on the COCO
test images repeated ``--repeat`` times (as distinct image ids). Variants run interleaved, in alternating order;
the ratio is the median of per-run ratios (robust to a load that drifts on a shared machine).

Usage: python -m bench.bench_evaluate [--repeat 4] [--resolution 288] [--runs 3] [--batch-sizes 1 4]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.machine import describe
from rfdetr_demo.evaluate.pipeline import EvaluationRequest, evaluate
from rfdetr_demo.evaluate.report import write_outputs
from rfdetr_demo.evaluate.runner import SCORE_FLOOR, RunOptions
from rfdetr_demo.models.loading import ModelSpec, load_rfdetr
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.results.prediction import drop_background

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco"


def make_dataset(tmp: Path, repeat: int) -> tuple[Path, Path]:
    """The 4 COCO images copied ``repeat`` times under new names and ids, with matching annotations."""
    data = json.loads((COCO / "test_coco.json").read_text())
    images, anns = [], []
    folder = tmp / "images"
    folder.mkdir()
    for r in range(repeat):
        for img in data["images"]:
            new_id = r * 10_000_000 + img["id"]
            name = f"r{r}_{img['file_name']}"
            shutil.copy(COCO / img["file_name"], folder / name)
            images.append({**img, "id": new_id, "file_name": name})
            anns += [{**a, "id": r * 10_000_000 + a["id"], "image_id": new_id}
                     for a in data["annotations"] if a["image_id"] == img["id"]]  # fmt: skip
    path = tmp / "annotations.json"
    path.write_text(json.dumps({**data, "images": images, "annotations": anns}))
    return path, folder


def plain_loop(model, ann_path: Path, folder: Path, resolution: int) -> float:
    """Per-image predict, COCO results by hand, COCOeval; returns AP."""
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(ann_path))
    results = []
    for img in gt.dataset["images"]:
        rgb = np.asarray(Image.open(folder / img["file_name"]).convert("RGB"))
        kp = drop_background(model.predict(rgb, threshold=SCORE_FLOOR, shape=(resolution, resolution)))
        for i in range(len(kp)):
            flat = np.column_stack([kp.xy[i], np.full(len(kp.xy[i]), 2)]).ravel().tolist()
            results.append({"image_id": img["id"], "category_id": 1, "keypoints": flat,
                            "score": float(kp.detection_confidence[i])})  # fmt: skip
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def ours(service, ann_path: Path, folder: Path, resolution: int, batch: int, report_dir: Path | None) -> float:
    request = EvaluationRequest(ann_path, images=[folder], options=RunOptions(0.5, resolution, batch))
    evaluation = evaluate(request, service)
    if report_dir is not None:
        write_outputs(evaluation, report_dir)
    return float(evaluation.first.stats["AP"] or 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=4, help="copies of the 4 COCO images (distinct ids)")
    ap.add_argument("--resolution", type=int, default=288)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--with-report", action="store_true", help="also write metrics.json, CSV and PNG plots")
    args = ap.parse_args()
    predictor, schema, info = load_rfdetr(ModelSpec(random_weights=True, device="cpu", engine="torch"))
    service = ModelService(lambda: (predictor, schema, info))
    service.start()
    service.wait(600)
    model = predictor.model
    with tempfile.TemporaryDirectory() as tmp:
        ann, folder = make_dataset(Path(tmp), args.repeat)
        n = 4 * args.repeat
        model.predict(np.zeros((64, 64, 3), np.uint8), threshold=0.5, shape=(args.resolution,) * 2)  # warm-up
        names = ["plain loop", *(f"ours, batch {b}" for b in args.batch_sizes)]
        times: dict[str, list[float]] = {name: [] for name in names}
        aps: dict[str, float] = {}
        for r in range(args.runs):
            # Alternate the order so a drifting load on a shared machine does not favour one side.
            for name in names if r % 2 == 0 else names[::-1]:
                t0 = time.perf_counter()
                if name == "plain loop":
                    aps[name] = plain_loop(model, ann, folder, args.resolution)
                else:
                    b = int(name.rsplit(" ", 1)[1])
                    report = Path(tmp) / f"report_{b}" if args.with_report else None
                    aps[name] = ours(service, ann, folder, args.resolution, b, report)
                times[name].append(time.perf_counter() - t0)
    print(describe())
    print(f"{n} images at {args.resolution}², {args.runs} runs (order alternating); AP: {aps}")
    print("| variant | s per run | median s | images/s | vs plain loop (median of paired runs) |")
    print("|---|---|---:|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        paired = statistics.median(p / t for p, t in zip(times["plain loop"], ts, strict=True))
        runs = ", ".join(f"{t:.2f}" for t in ts)
        print(f"| {name} | {runs} | {med:.2f} | {n / med:.2f} | {paired:.2f}× |")


if __name__ == "__main__":
    main()
