"""The command line: ``rfdetr-demo serve`` (the app), ``rfdetr-demo predict PATH... --out DIR`` (batch mode, below) and
``rfdetr-demo evaluate`` (in its own module); ``python -m rfdetr_demo …`` is the same command.

For people who want the demo's output for a folder of files (to inspect, to score with pycocotools, to feed another
tool) without a browser. It deliberately has no model code of its own: it gets the same process-wide
:class:`~rfdetr_demo.models.service.ModelService` as the app (``app_factory.model_service``), runs each image through
``image_task.run_image`` / ``render_run`` (the Image tab's code path), and writes exactly the UI's downloads (CSV,
JSON, COCO results) plus an annotated JPEG. The model options are the app's own flags and ``RFDETR_DEMO_*``
variables, so a command line that works for ``app.py`` works here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from rfdetr_demo.config import Settings, add_setting_arguments, settings_from_args
from rfdetr_demo.defaults import (
    DEFAULT_KEYPOINT_THRESHOLD,
    DEFAULT_THRESHOLD,
    MAX_IMAGE_SIDE,
    MAX_VIDEO_SECONDS,
    MODEL_WAIT_S,
)
from rfdetr_demo.evaluate.command import add_evaluate_parser, run_evaluate
from rfdetr_demo.image.decode import ImageLoadError
from rfdetr_demo.image.task import render_run, run_image
from rfdetr_demo.models.service import ModelService, ModelUnavailable
from rfdetr_demo.results.exports import safe_stem
from rfdetr_demo.results.render import ALL_VIEWS, VIEW_COMBINED, tile_views
from rfdetr_demo.results.schema import SchemaError
from rfdetr_demo.temporal.keyframes import parse_keyframes
from rfdetr_demo.temporal.stages import DEFAULT_SMOOTHER, SMOOTHING_CHOICES
from rfdetr_demo.video.motion_plots import write_motion_png
from rfdetr_demo.video.pipeline import VideoOptions, run_video

# The app options that decide the model and its inputs; the server options (host, auth, …) mean nothing here.
MODEL_OPTIONS: tuple[str, ...] = (
    "checkpoint",
    "hub_repo",
    "hub_filename",
    "hub_revision",
    "random_weights",
    "device",
    "precision",
    "resolution",
    "keypoint_schema",
    "max_image_side",
    "max_video_seconds",
)

COMBINED_COCO_NAME = "coco_results.json"
SUMMARY_NAME = "summary.json"

EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_DONE = 0, 1, 2


@dataclass
class BatchOptions:
    out_dir: Path
    threshold: float = DEFAULT_THRESHOLD
    keypoint_threshold: float = DEFAULT_KEYPOINT_THRESHOLD
    resolution: int | None = None
    views: tuple[str, ...] = (VIEW_COMBINED,)
    max_image_side: int = MAX_IMAGE_SIDE
    max_video_seconds: float = MAX_VIDEO_SECONDS
    jpeg_quality: int = 90
    smoothing: str = DEFAULT_SMOOTHER
    keyframes: int | str | None = None  # None: auto on a CPU, every frame on a GPU


# -- arguments ---------------------------------------------------------------------------------------------------
def parse_views(text: str) -> tuple[str, ...]:
    """``combined,skeleton`` / ``all``: case-insensitive view names, ``-``/``_`` standing for spaces."""
    if text.strip().lower() == "all":
        return ALL_VIEWS
    by_key = {v.lower(): v for v in ALL_VIEWS}
    chosen = []
    for part in text.split(","):
        key = part.strip().lower().replace("-", " ").replace("_", " ")
        if not key:
            continue
        if key not in by_key:
            raise argparse.ArgumentTypeError(f"unknown view {part.strip()!r}; choose from {', '.join(ALL_VIEWS)}")
        chosen.append(by_key[key])
    if not chosen:
        raise argparse.ArgumentTypeError("no view given")
    return tuple(v for v in ALL_VIEWS if v in chosen)


def _unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def build_parser(prog: str = "python -m rfdetr_demo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="RF-DETR Keypoint demo: the web app (serve), and the model on files without a browser.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # Listed for --help only: main() hands `serve ...` to the app's own option parser (rfdetr_demo.config).
    sub.add_parser(
        "serve",
        add_help=False,
        help=f"Start the web app (same options as app.py; see {prog} serve --help).",
    )
    second = sub.add_parser(
        "random-checkpoint",
        help='Write a second seeded random-weight model, to try "Compare with…" offline.',
        description="Write an untrained model seeded with --seed (drawing people like --random-weights, with other "
        "numbers) in rfdetr's checkpoint format. Serve it beside the random preview: "
        "rfdetr-demo serve --random-weights --checkpoint other=PATH",
    )
    second.add_argument("path", type=Path, metavar="PATH", help="Where to write the .pth file.")
    second.add_argument("--seed", type=int, default=1, help="Seed of the weights (the preview's is 0; default 1).")
    predict = sub.add_parser(
        "predict",
        help="Annotate images, folders and videos and write CSV/JSON/COCO exports.",
        description="Run the demo's model on images, folders of images and videos; write an annotated JPEG and "
        "the UI's downloads (CSV, JSON, COCO results) per image, plus a combined coco_results.json and a "
        "summary.json into --out.",
        epilog="Model options also read RFDETR_DEMO_* environment variables, exactly like app.py.",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="Image or video files, or folders of them.")
    predict.add_argument("--out", required=True, type=Path, help="Output folder (created if missing).")
    predict.add_argument(
        "--threshold", type=_unit_interval, default=DEFAULT_THRESHOLD, help="Minimum person score (0-1)."
    )
    predict.add_argument(
        "--keypoint-threshold",
        type=_unit_interval,
        default=DEFAULT_KEYPOINT_THRESHOLD,
        help="Hide joints below this confidence (0-1).",
    )
    predict.add_argument(
        "--views",
        type=parse_views,
        default=(VIEW_COMBINED,),
        help="Views drawn into the annotated image (tiled when several): comma-separated names from "
        f"{', '.join(ALL_VIEWS)} (spaces may be written as -), or 'all'. Default: Combined.",
    )
    predict.add_argument("--recursive", action="store_true", help="Also look inside sub-folders of folder PATHs.")
    predict.add_argument("--jpeg-quality", type=int, default=90, help="Quality of the annotated JPEGs (1-95).")
    predict.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")
    predict.add_argument(
        "--smoothing", choices=SMOOTHING_CHOICES, default=DEFAULT_SMOOTHER,
        help="Keypoint smoothing over video frames (kalman: the model's covariance, fixed-lag RTS). Default: kalman.",
    )  # fmt: skip
    predict.add_argument(
        "--keyframes", type=parse_keyframes, default=None, metavar="{auto,1..6}",
        help="Run the model on every n-th video frame (1: every frame) or 'auto' (1-4 frames, by motion); the "
        "Kalman smoother fills the frames in between, so the video keeps its frame rate. Default: auto on a CPU, "
        "1 on a GPU.",
    )  # fmt: skip
    add_setting_arguments(predict, MODEL_OPTIONS)
    add_evaluate_parser(sub)
    return parser


# -- one file ----------------------------------------------------------------------------------------------------
def process_image(service: ModelService, path: Path, name: str, options: BatchOptions) -> FileResult:
    """The Image tab's path: decode → one model run → views, CSV/JSON/COCO exports, and the annotated JPEG."""

    run = run_image(service, path, options.threshold, options.resolution, options.max_image_side, source_name=name)
    output = render_run(run, options.keypoint_threshold, list(options.views), out_dir=options.out_dir)
    tiles = [img for img, _caption in output.views]
    annotated = options.out_dir / f"{safe_stem(name)}_annotated.jpg"
    Image.fromarray(tiles[0] if len(tiles) == 1 else tile_views(tiles)).save(
        annotated, format="JPEG", quality=options.jpeg_quality
    )
    return FileResult(
        str(path),
        "image",
        "ok",
        "; ".join(run.notes),
        outputs=[str(annotated), *(str(p) for p in output.files)],
        instances=len(run.shown()),
        inference_ms=round(run.prediction.inference_ms, 1),
    )


def process_video(service: ModelService, path: Path, name: str, options: BatchOptions) -> FileResult:
    """The Video tab's pipeline: annotated H.264 MP4, per-frame JSONL/CSV, the angles CSV and its PNG plot."""

    video_options = VideoOptions(
        threshold=options.threshold,
        keypoint_threshold=options.keypoint_threshold,
        resolution=options.resolution,
        views=list(options.views),
        max_seconds=options.max_video_seconds,
        smoothing=options.smoothing,
        keyframes=options.keyframes,
    )
    result = run_video(service, path, video_options, out_dir=options.out_dir, source_name=name)
    runs = f"{result.model_runs} model runs for {result.frames_done} frames written ({result.keyframes})"
    angles_csv = result.files[3]
    png = write_motion_png(angles_csv, angles_csv.with_suffix(".png"), title=f"{name}: joint angles (±1σ shaded)")
    return FileResult(
        str(path),
        "video",
        "ok",
        "; ".join([runs, *result.notes]),
        outputs=[str(p) for p in [*result.files, *([png] if png else [])]],
        instances=int(result.frames["persons"].sum()) if "persons" in result.frames else None,
        inference_ms=round(result.inference_ms, 1),
    )


def process_file(service: ModelService, path: Path, name: str, options: BatchOptions) -> FileResult:
    """One input; a failure is recorded for that file only, so one bad file never stops the batch."""

    kind = kind_of(path)
    try:
        if kind == "video":
            return process_video(service, path, name, options)
        return process_image(service, path, name, options)
    except (ImageLoadError, SchemaError, ValueError, OSError) as exc:
        return FileResult(str(path), kind, "error", str(exc) or exc.__class__.__name__)


# -- the batch ---------------------------------------------------------------------------------------------------
def combined_coco_results(results: Sequence[FileResult]) -> list[dict[str, Any]]:
    """Every image's COCO results in one list (what ``COCO.loadRes`` takes to score the whole folder)."""
    combined: list[dict[str, Any]] = []
    for r in results:
        for out in r.outputs:
            if out.endswith("_coco_results.json"):
                combined += json.loads(Path(out).read_text())
    return combined


def run_batch(
    service: ModelService,
    paths: Sequence[str | Path],
    options: BatchOptions,
    recursive: bool = False,
    progress: bool = True,
    log: TextIO | None = None,
) -> list[FileResult]:
    """Process every input with a progress bar; write the combined COCO results and a summary."""
    from tqdm import tqdm

    log = log or sys.stderr
    inputs, results = collect_inputs(paths, recursive)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    for missing in results:
        print(f"{missing.status}: {missing.path}: {missing.message}", file=log)
    names = StemAllocator()
    bar = tqdm(inputs, desc="predict", unit="file", disable=not progress, file=log)
    for path in bar:
        bar.set_postfix_str(path.name[-40:])
        result = process_file(service, path, names.name_for(path), options)
        if result.status != "ok":
            tqdm.write(f"{result.status}: {path}: {result.message}", file=log)
        results.append(result)
    (options.out_dir / COMBINED_COCO_NAME).write_text(json.dumps(combined_coco_results(results)))
    summary = {
        "model": service.info.as_dict(),
        "settings": {
            "threshold": options.threshold,
            "keypoint_threshold": options.keypoint_threshold,
            "resolution": options.resolution or service.info.default_resolution,
            "views": list(options.views),
        },
        "files": [r.as_dict() for r in results],
    }
    (options.out_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=1))
    return results


def settings_for(args: argparse.Namespace) -> Settings:
    return settings_from_args({name: getattr(args, name) for name in MODEL_OPTIONS})


def console_main() -> int:
    """The ``rfdetr-demo`` console script (installed by ``pip install .``)."""
    return main(prog="rfdetr-demo")


def main(argv: Sequence[str] | None = None, prog: str = "python -m rfdetr_demo") -> int:
    import logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        # lazy: serve imports `spaces` (ZeroGPU) before anything touches CUDA
        from rfdetr_demo.serve import main as serve

        serve(argv[1:], prog=f"{prog} serve")
        return EXIT_OK

    # lazy: app_factory pulls in Gradio; this needs only its model service
    from rfdetr_demo.app_factory import model_service

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return run_evaluate(args)
    if args.command == "random-checkpoint":
        from rfdetr_demo.models.random_weights import write_random_checkpoint

        print(f"wrote {write_random_checkpoint(args.path, args.seed)}", file=sys.stderr)
        return EXIT_OK
    try:
        settings = settings_for(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not 1 <= args.jpeg_quality <= 95:
        parser.error(f"--jpeg-quality must be within 1-95, got {args.jpeg_quality}")
    options = BatchOptions(
        out_dir=args.out,
        threshold=args.threshold,
        keypoint_threshold=args.keypoint_threshold,
        resolution=settings.resolution,
        views=args.views,
        max_image_side=settings.max_image_side,
        max_video_seconds=settings.max_video_seconds,
        jpeg_quality=args.jpeg_quality,
        smoothing=args.smoothing,
        keyframes=args.keyframes,
    )
    service = model_service(settings)
    try:
        info = service.wait(MODEL_WAIT_S)[2]
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    if info.random_weights:
        print("warning: random weights: the model is untrained and every result is meaningless.", file=sys.stderr)
    results = run_batch(service, args.paths, options, args.recursive, progress=not args.no_progress)
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "skipped", "error")}
    print(
        f"{counts['ok']} processed, {counts['skipped']} skipped, {counts['error']} failed → {options.out_dir}",
        file=sys.stderr,
    )
    if counts["ok"] == 0:
        return EXIT_NOTHING_DONE if counts["error"] or not results else EXIT_OK
    return EXIT_SOME_FAILED if counts["error"] else EXIT_OK


# The batch mode's inputs: which files a command line names, and a result record per file.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


@dataclass
class FileResult:
    """What happened to one input; ``status`` is ok, skipped or error."""

    path: str
    kind: str
    status: str
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    instances: int | None = None
    inference_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image"  # explicit files with other suffixes are tried as images (the decoder gives a clear error)


def collect_inputs(paths: Iterable[str | Path], recursive: bool = False) -> tuple[list[Path], list[FileResult]]:
    """Expand folders (known image/video suffixes only, sorted); missing paths become error results."""
    found: list[Path] = []
    missing: list[FileResult] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(FileResult(str(raw), "unknown", "error", "no such file or folder"))
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, missing


class StemAllocator:
    """Output names from input names, unique within one run (two folders may both hold ``img.jpg``)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def name_for(self, path: Path) -> str:
        """A safe file name keeping the input's suffix, e.g. ``000000000785.jpg`` or ``img_2.jpg``."""
        stem = safe_stem(path.name, default="input")
        candidate, n = stem, 1
        while candidate.lower() in self._used:
            n += 1
            candidate = f"{stem}_{n}"
        self._used.add(candidate.lower())
        return candidate + path.suffix.lower()
