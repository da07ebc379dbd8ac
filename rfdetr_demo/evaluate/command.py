"""``python -m rfdetr_demo evaluate --annotations FILE (--images DIR | --results FILE...) --out DIR``.

Prints the metrics table, writes the tab's downloads into ``--out`` and exits non-zero with a one-line reason on bad
input (2), so scripts and CI can gate a checkpoint on it. The model options are the app's own (``--checkpoint``,
``--keypoint-schema``, ``RFDETR_DEMO_*``), and the model loads only when images are to be run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rfdetr_demo.config import Settings, add_setting_arguments, settings_from_args
from rfdetr_demo.defaults import MODEL_WAIT_S
from rfdetr_demo.evaluate.dataset import EvaluationError
from rfdetr_demo.evaluate.pipeline import EvaluationRequest, evaluate
from rfdetr_demo.evaluate.report import text_table, write_outputs
from rfdetr_demo.evaluate.runner import EvaluationCancelled, RunOptions
from rfdetr_demo.models.service import ModelUnavailable
from rfdetr_demo.results.schema import SchemaError, load_schema

EXIT_OK, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 2, 130
MODEL_OPTIONS: tuple[str, ...] = (
    "checkpoint", "hub_repo", "hub_filename", "hub_revision", "random_weights", "device", "precision", "engine",
    "resolution", "keypoint_schema", "max_image_side", "max_eval_images",
)  # fmt: skip


def _unit(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def add_evaluate_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on the CLI's subparsers."""
    p = sub.add_parser(
        "evaluate",
        help="Score the model, or prediction files, on your COCO keypoint annotations.",
        description="COCO keypoint evaluation (pycocotools OKS: AP, AP50, AP75, APm, APl, AR), per-keypoint PCK, "
        "recall/precision at --threshold and covariance calibration. Writes metrics.json, per_image.csv, "
        "the COCO results of a model run and PNG plots into --out; prints the table.",
        epilog="Exit status: 0 done, 2 bad input (one-line reason on stderr). OKS sigmas: COCO's for 17 keypoints, "
        "else the 'sigmas' of --keypoint-schema or of the annotation file's category, else a stated default.",
    )
    p.add_argument("--annotations", required=True, type=Path, help="COCO keypoint annotation file (JSON).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="Folder (or zip) with the annotated images: runs the model.")
    source.add_argument(
        "--results", type=Path, nargs="+", metavar="FILE",
        help="Prediction files (COCO results, or this app's JSON export); one table row each.",
    )  # fmt: skip
    p.add_argument("--out", required=True, type=Path, help="Output folder (created if missing).")
    p.add_argument("--threshold", type=_unit, default=0.5, help="Person score for recall/precision/gallery (0-1).")
    p.add_argument("--batch-size", type=_positive, default=4, help="Images per model call.")
    p.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")
    add_setting_arguments(p, MODEL_OPTIONS)
    return p


def _service_for(settings: Settings) -> Any:
    # lazy: app_factory pulls in Gradio; this needs only its model service
    from rfdetr_demo.app_factory import model_service

    service = model_service(settings)
    info = service.wait(MODEL_WAIT_S)[2]
    if info.random_weights:
        print("warning: random weights: the model is untrained and every result is meaningless.", file=sys.stderr)
    return service


def run_evaluate(args: argparse.Namespace) -> int:
    """The subcommand's body; every expected failure becomes ``error: <reason>`` and exit status 2."""
    from tqdm import tqdm

    bar = None
    try:
        settings = settings_from_args({name: getattr(args, name) for name in MODEL_OPTIONS})
        service = None
        if args.images is not None:
            if not args.images.exists():
                raise EvaluationError(f"images: no such folder: {args.images}")
            service = _service_for(settings)
        request = EvaluationRequest(
            annotations=args.annotations,
            images=[args.images] if args.images is not None else [],
            results=args.results or [],
            options=RunOptions(args.threshold, settings.resolution, args.batch_size, settings.max_image_side),
            max_images=settings.max_eval_images,
            schema=load_schema(settings.keypoint_schema) if settings.keypoint_schema and service is None else None,
        )
        bar = tqdm(desc="evaluate", unit="img", disable=args.no_progress or service is None, file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        evaluation = evaluate(request, service, on_progress=progress)
        bar.close()
        files = write_outputs(evaluation, args.out)
    except (EvaluationError, SchemaError, ModelUnavailable, ValueError) as exc:
        if bar is not None:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (EvaluationCancelled, KeyboardInterrupt):
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    print(text_table(evaluation))
    for note in evaluation.dataset.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {len(files)} files to {args.out}", file=sys.stderr)
    return EXIT_OK
