"""Launch settings: every CLI flag has an environment-variable twin (``RFDETR_DEMO_<FLAG>``).

Environment variables matter because Hugging Face Spaces and Docker configure apps through them; flags win over
the environment, and the environment wins over the defaults. Defaults are the safe ones: bind to localhost, no
share link, capped uploads.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from rfdetr_demo.defaults import DEFAULT_RESOLUTION, MAX_IMAGE_SIDE, MAX_VIDEO_SECONDS

ENV_PREFIX = "RFDETR_DEMO_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    auth: str | None = None  # "user:password"
    max_file_size: str = "200mb"
    queue_size: int = 32
    concurrency: int = 1
    checkpoint: str | None = None  # one or more [NAME=]PATH|hf://…, joined by commas (rfdetr_demo.models.catalog)
    hub_repo: str | None = None
    hub_filename: str | None = None
    hub_revision: str | None = None
    random_weights: bool = False
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"
    resolution: int | None = None
    keypoint_schema: str | None = None
    max_image_side: int = MAX_IMAGE_SIDE
    max_video_seconds: float = MAX_VIDEO_SECONDS
    max_eval_images: int = 500
    enable_stream_source: bool = False
    browser_engine: str = "on"  # on | off: offer the Webcam tab's in-browser engine (publishes the weights)
    stream_allow_hosts: str = ""
    mcp: bool = False
    cache_examples: str = "auto"  # auto | lazy | off
    max_temp_gb: float = 5.0  # disk_budget.DEFAULT_MAX_TEMP_GB
    download_grace_s: float = 300.0  # disk_budget.DEFAULT_GRACE_S
    examples_dir: str | None = None  # None: the checkout's examples/ (rfdetr_demo.defaults)
    video_queue: str = "separate"  # separate | shared
    max_sessions: int = 2000
    pretrained: bool = True  # offer the pretrained preview next to the checkpoints
    max_loaded_models: int = 2
    share_dir: str | None = None  # None: a folder of this process's, removed at exit (links last until restart)
    share_max_gb: float = 1.0

    def model_catalog(self) -> list[Any]:
        """Every model this process offers, the default first (see :mod:`rfdetr_demo.models.catalog`)."""
        # lazy: `--help` and settings stay free of torch and rfdetr
        from rfdetr_demo.models.catalog import model_catalog

        return model_catalog(self.base_spec(), self.checkpoint, self.keypoint_schema, self.pretrained)

    def base_spec(self) -> Any:
        """The options every model shares."""
        # lazy: `--help` and settings stay free of torch and rfdetr
        from rfdetr_demo.models.loading import ModelSpec

        return ModelSpec(
            hub_repo=self.hub_repo,
            hub_filename=self.hub_filename,
            hub_revision=self.hub_revision,
            random_weights=self.random_weights,
            device=self.device,
            precision=self.precision,
            engine=self.engine,
            resolution=self.resolution,
        )

    @property
    def auth_pair(self) -> tuple[str, str] | None:
        if not self.auth:
            return None
        user, sep, password = self.auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("auth must look like USER:PASSWORD")
        return user, password


_HELP: dict[str, str] = {
    "host": "Address to bind. Default 127.0.0.1 (this machine only); use 0.0.0.0 in Docker/Spaces.",
    "port": "Port to listen on.",
    "share": "Create a public gradio.live share link (off by default).",
    "auth": "Require a login, given as USER:PASSWORD.",
    "max_file_size": "Largest accepted upload, e.g. 200mb.",
    "queue_size": "Most requests waiting in the queue before new ones are refused.",
    "concurrency": "Image/video requests processed at once (they share one model).",
    "checkpoint": "[NAME=]PATH: a local .pth checkpoint or a Hub reference hf://OWNER/REPO/FILE.pth; repeat it "
    "for several models (the first is the default; the environment variable takes them comma-separated).",
    "hub_repo": "Hugging Face Hub repo id holding a fine-tuned checkpoint (with --hub-filename).",
    "hub_filename": "File name of the checkpoint inside --hub-repo.",
    "hub_revision": "Branch, tag or commit of --hub-repo.",
    "random_weights": "Use untrained random weights (offline development and UI demos; results are meaningless).",
    "device": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.",
    "precision": "auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 (CUDA only) or bf16.",
    "engine": "auto (OpenVINO on CPU when installed, else torch), torch, or openvino; see docs/speed.md.",
    "resolution": f"Default inference resolution (multiple of 24); default: the checkpoint's ({DEFAULT_RESOLUTION}).",
    "keypoint_schema": "JSON/YAML file with keypoint names and skeleton for fine-tuned checkpoints; NAME=FILE for one "
    "model of several (repeatable).",
    "pretrained": "Offer the pretrained preview (or --random-weights) next to the checkpoints; --no-pretrained: only "
    "the checkpoints.",
    "max_loaded_models": "Most models kept in memory at once; the least recently used one is unloaded first "
    "(it reloads on its next request). On ZeroGPU every model stays loaded.",
    "share_dir": "Folder for shared links (the shared photo and its settings). Default: a temporary folder removed "
    "at exit, so links last until a restart; give a lasting folder (e.g. /data/shares on Spaces) to keep them.",
    "share_max_gb": "Disk for shared links; the least recently shared or opened go first.",
    "max_image_side": "Images with a longer side are downscaled to this before inference.",
    "max_video_seconds": "Longest video segment processed per request (longer requests get a clear error).",
    "max_eval_images": "Most annotated images one Evaluate run sends through the model (more get a clear error).",
    "enable_stream_source": "Allow the server to open RTSP/HTTP camera streams (off: it makes the server connect out).",
    "browser_engine": "on: the Webcam tab offers running the model in the visitor's browser (onnxruntime-web; the "
    "ONNX export of the weights is downloadable by every visitor); off: server mode only (private checkpoints).",
    "stream_allow_hosts": "Comma-separated hosts stream sources may use (empty: public addresses only).",
    "mcp": "Also serve the endpoints as an MCP server (needs gradio[mcp]; skipped with a warning otherwise).",
    "cache_examples": "Cache example results: auto (lazily on Hugging Face Spaces, off elsewhere), lazy or off.",
    "max_temp_gb": "Disk for uploads, annotated videos and downloads; oldest are deleted first (never in use).",
    "video_queue": "separate: videos queue in their own group, so images never wait behind a whole video (they take "
    "turns on the model batch by batch); shared: one queue for both, in arrival order.",
    "max_sessions": "Most sessions (browser tabs, API clients) whose state and last outputs Gradio keeps in memory; "
    "the oldest are forgotten first (a forgotten page re-runs the model on its next redraw).",
    "download_grace_s": "Results younger than this are never deleted, even over --max-temp-gb (about to be "
    "downloaded).",
    "examples_dir": "Folder of example images (*.jpg), videos (*.mp4) and the Evaluate sample (keypoints_sample.json) "
    "(default: the checkout's examples/).",
}

# Standard Gradio/Spaces variables used when neither our flag nor our RFDETR_DEMO_* variable is set: Spaces and
# many container platforms set GRADIO_SERVER_NAME=0.0.0.0 and GRADIO_SERVER_PORT, and the app must listen there.
FALLBACK_ENV: dict[str, str] = {"host": "GRADIO_SERVER_NAME", "port": "GRADIO_SERVER_PORT"}

CACHE_EXAMPLE_MODES = ("auto", "lazy", "off")
# Options that may be given several times; their values travel joined by commas, as in the environment.
REPEATABLE = ("checkpoint", "keypoint_schema")
VIDEO_QUEUE_MODES = ("separate", "shared")
BROWSER_ENGINE_MODES = ("on", "off")


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _convert(kind: Any, text: str) -> Any:
    if kind in (bool, "bool"):
        return _parse_bool(text)
    if kind in (int, "int", "int | None"):
        return int(text) if text != "" else None
    if kind in (float, "float"):
        return float(text)
    return text or None if kind == "str | None" else text


def add_setting_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add ``--flag`` options for the named :class:`Settings` fields (all when ``names`` is None).

    Shared by ``app.py`` and the CLI batch mode so both spell the model options the same way.
    """
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{_HELP[f.name]} [env {env_name(f.name)}]"
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.name in REPEATABLE:
            parser.add_argument(
                flag, dest=f.name, action="append", default=None, metavar=f.name.upper(), help=help_text
            )
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def build_parser(prog: str = "app.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="RF-DETR Keypoint demo: people and their 17 COCO keypoints in the browser (Gradio).",
        epilog=f"Every option can also be set with an environment variable {ENV_PREFIX}<OPTION> "
        f"(e.g. {ENV_PREFIX}RANDOM_WEIGHTS=1, {ENV_PREFIX}PORT=7860); flags win over the environment. "
        "GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured when --host / --port and their "
        f"{ENV_PREFIX} variables are not set. Batch mode without the UI: python -m rfdetr_demo predict --help.",
    )
    add_setting_arguments(parser)
    return parser


def settings_from_args(args: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings from parsed flags (missing or None: not given), then the environment, then defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = args.get(f.name)
        if isinstance(raw, (list, tuple)):
            raw = ",".join(str(r) for r in raw)
        if raw is None and env_name(f.name) in env:
            raw = env[env_name(f.name)]
        if raw is None and f.name in FALLBACK_ENV and env.get(FALLBACK_ENV[f.name]):
            raw = env[FALLBACK_ENV[f.name]]
        if raw is None:
            continue
        try:
            values[f.name] = raw if isinstance(raw, bool) else _convert(f.type, str(raw))
        except ValueError as exc:
            raise ValueError(f"invalid value for --{f.name.replace('_', '-')}: {exc}") from exc
    settings = Settings(**values)
    validate_settings(settings)
    return settings


def validate_settings(settings: Settings) -> None:
    """Fail at start, with the option's name, rather than at the first login or request."""
    settings.auth_pair  # noqa: B018 - a malformed USER:PASSWORD raises here
    if not 0 < settings.port < 65536:
        raise ValueError(f"--port must be within 1-65535, got {settings.port}")
    if settings.queue_size < 1:
        raise ValueError(f"--queue-size must be at least 1, got {settings.queue_size}")
    if settings.max_sessions < 1:
        raise ValueError(f"--max-sessions must be at least 1, got {settings.max_sessions}")
    if settings.concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {settings.concurrency}")
    if settings.max_video_seconds <= 0:
        raise ValueError(f"--max-video-seconds must be positive, got {settings.max_video_seconds}")
    if settings.max_eval_images < 1:
        raise ValueError(f"--max-eval-images must be at least 1, got {settings.max_eval_images}")
    for name in ("max_temp_gb", "download_grace_s", "share_max_gb"):
        if getattr(settings, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must not be negative, got {getattr(settings, name)}")
    if settings.max_loaded_models < 1:
        raise ValueError(f"--max-loaded-models must be at least 1, got {settings.max_loaded_models}")
    settings.model_catalog()  # a duplicate name or a schema for no model fails here, with the option's name
    if settings.video_queue not in VIDEO_QUEUE_MODES:
        raise ValueError(f"--video-queue must be one of {VIDEO_QUEUE_MODES}, got {settings.video_queue!r}")
    if settings.cache_examples not in CACHE_EXAMPLE_MODES:
        raise ValueError(f"--cache-examples must be one of {CACHE_EXAMPLE_MODES}, got {settings.cache_examples!r}")
    if settings.browser_engine not in BROWSER_ENGINE_MODES:
        raise ValueError(f"--browser-engine must be one of {BROWSER_ENGINE_MODES}, got {settings.browser_engine!r}")


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, prog: str = "app.py"
) -> Settings:
    """Resolve settings: flags, then ``RFDETR_DEMO_*`` environment variables, then defaults."""
    return settings_from_args(vars(build_parser(prog).parse_args(argv)), environ)


def on_spaces(environ: Mapping[str, str] | None = None) -> bool:
    """True on Hugging Face Spaces (which sets ``SYSTEM=spaces``)."""
    env = os.environ if environ is None else environ
    return env.get("SYSTEM") == "spaces"
