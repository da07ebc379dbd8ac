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
    checkpoint: str | None = None
    hub_repo: str | None = None
    hub_filename: str | None = None
    hub_revision: str | None = None
    random_weights: bool = False
    device: str = "auto"
    precision: str = "auto"
    engine: str = "auto"
    resolution: int | None = None
    keypoint_schema: str | None = None
    max_image_side: int = 4096
    max_video_seconds: float = 60.0
    enable_stream_source: bool = False
    stream_allow_hosts: str = ""
    mcp: bool = False

    def model_spec(self) -> Any:
        from rfdetr_demo.loading import ModelSpec

        return ModelSpec(
            checkpoint=self.checkpoint,
            hub_repo=self.hub_repo,
            hub_filename=self.hub_filename,
            hub_revision=self.hub_revision,
            random_weights=self.random_weights,
            device=self.device,
            precision=self.precision,
            engine=self.engine,
            resolution=self.resolution,
            schema_path=self.keypoint_schema,
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
    "checkpoint": "Local .pth checkpoint, or a Hub reference hf://OWNER/REPO/FILE.pth (default: pretrained preview).",
    "hub_repo": "Hugging Face Hub repo id holding a fine-tuned checkpoint (with --hub-filename).",
    "hub_filename": "File name of the checkpoint inside --hub-repo.",
    "hub_revision": "Branch, tag or commit of --hub-repo.",
    "random_weights": "Use untrained random weights (offline development and UI demos; results are meaningless).",
    "device": "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps.",
    "precision": "auto (fp16 on CUDA, fp32 elsewhere), fp32, fp16 (CUDA only) or bf16.",
    "engine": "auto (OpenVINO on CPU when installed, else torch), torch, or openvino; see docs/speed.md.",
    "resolution": "Default inference resolution (multiple of 24); default: the checkpoint's own (576).",
    "keypoint_schema": "JSON/YAML file with keypoint names and skeleton for fine-tuned checkpoints.",
    "max_image_side": "Images with a longer side are downscaled to this before inference.",
    "max_video_seconds": "Longest video segment processed per request (longer requests get a clear error).",
    "enable_stream_source": "Allow the server to open RTSP/HTTP camera streams (off: it makes the server connect out).",
    "stream_allow_hosts": "Comma-separated hosts stream sources may use (empty: any host once enabled).",
    "mcp": "Also serve the endpoints as an MCP server (needs gradio[mcp]).",
}


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="RF-DETR Keypoint demo: people and their 17 COCO keypoints in the browser (Gradio).",
        epilog=f"Every option can also be set with an environment variable {ENV_PREFIX}<OPTION> "
        f"(e.g. {ENV_PREFIX}RANDOM_WEIGHTS=1, {ENV_PREFIX}PORT=7860); flags win over the environment.",
    )
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{_HELP[f.name]} [env {env_name(f.name)}]"
        if f.type in (bool, "bool"):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings: flags, then ``RFDETR_DEMO_*`` environment variables, then defaults."""
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = args.get(f.name)
        if raw is None and env_name(f.name) in env:
            raw = env[env_name(f.name)]
        if raw is None:
            continue
        values[f.name] = raw if isinstance(raw, bool) else _convert(f.type, str(raw))
    settings = Settings(**values)
    settings.auth_pair  # noqa: B018 - validate early so a typo fails at start, not at login
    return settings
