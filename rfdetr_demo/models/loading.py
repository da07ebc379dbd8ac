"""Where the weights come from: the pretrained preview checkpoint, a local file, a Hub repo, or random weights.

Loading is kept separate from the service so it can be tested offline (random weights, a checkpoint we write
ourselves) and so every failure turns into one message that tells the person what to do next.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from rfdetr_demo.models.backends.dispatch import build_predictor
from rfdetr_demo.models.predictor import Predictor, pick_device
from rfdetr_demo.models.random_weights import PERSON_CLASSES, rank_if_marked, seed_random_model, seeded
from rfdetr_demo.results.prediction import ModelInfo
from rfdetr_demo.results.schema import KeypointSchema, default_schema, load_schema

log = logging.getLogger(__name__)

PRETRAINED_NAME = "RFDETRKeypointPreview"


class ModelLoadError(RuntimeError):
    """The weights could not be obtained or used; the message says what to do.

    ``summary`` (what failed, one sentence), ``advice`` (what to do) and ``detail`` (the underlying error, e.g. a
    raw ``HTTPSConnectionPool(...)``) let the page show one short line with the details folded away; the message
    itself (logs, CLI) keeps everything.
    """

    def __init__(self, message: str, *, summary: str | None = None, advice: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.summary = summary or message
        self.advice = advice
        self.detail = detail


def is_network_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a failed connection: no internet, DNS failure, refused, timed out."""
    import socket
    import urllib.error

    kinds: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)
    try:
        import requests

        kinds += (requests.ConnectionError, requests.Timeout)
    except ImportError:  # pragma: no cover - requests comes with huggingface_hub and rfdetr
        pass
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def failure_parts(exc: BaseException) -> tuple[str, str, str]:
    """(what failed, what to do, details) of any load failure: ours carry them, others get generic advice."""
    if isinstance(exc, ModelLoadError):
        return exc.summary, exc.advice, exc.detail
    return "The model could not be loaded.", "See the details below and the server log.", _detail(exc)


def _detail(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


PRETRAINED_ADVICE = (
    "Start the server with --checkpoint /path/to/rf-detr-keypoint-preview-xlarge.pth (downloaded elsewhere), or "
    "with --random-weights to try the interface."
)


def build_error(spec: ModelSpec, path: str | None, exc: Exception) -> ModelLoadError:
    """The error for a model that could not be built from ``spec``: offline, a bad file, or anything else."""
    if path is None and not spec.random_weights:
        hint = (
            "The default pretrained weights are downloaded on first start; without internet, pass "
            "--checkpoint /path/to/rf-detr-keypoint-preview-xlarge.pth, or --random-weights to try the UI."
        )
        summary = (
            "The pretrained weights could not be downloaded (no connection to the download server)."
            if is_network_error(exc)
            else "The pretrained model could not be built."
        )
        advice = PRETRAINED_ADVICE
    else:
        hint = "Check that the file is a complete RF-DETR keypoint checkpoint (not truncated or from another model)."
        summary, advice = f"The checkpoint {spec.source_label} could not be loaded.", hint
    message = f"Could not load the model from {spec.source_label}: {exc}. {hint}"
    return ModelLoadError(message, summary=summary, advice=advice, detail=_detail(exc))


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which model the process serves."""

    checkpoint: str | None = None  # local path, or "hf://owner/repo/file.pth" / "owner/repo:file.pth"
    hub_repo: str | None = None
    hub_filename: str | None = None
    hub_revision: str | None = None
    random_weights: bool = False
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | fp16 | bf16
    resolution: int | None = None
    schema_path: str | None = None
    engine: str = "auto"  # auto | torch | openvino (see rfdetr_demo.models.backends.dispatch)

    @property
    def source_label(self) -> str:
        if self.random_weights:
            return "random weights (untrained)"
        if self.hub_repo:
            return f"hf://{self.hub_repo}/{self.hub_filename or ''}".rstrip("/")
        if self.checkpoint:
            return self.checkpoint
        return f"{PRETRAINED_NAME} (pretrained)"


def parse_hub_reference(ref: str) -> tuple[str, str] | None:
    """``hf://owner/repo/path/to/file.pth`` or ``owner/repo:file.pth`` → (repo_id, filename)."""
    if ref.startswith("hf://"):
        parts = ref[5:].split("/")
        if len(parts) >= 3:
            return "/".join(parts[:2]), "/".join(parts[2:])
        return None
    if ":" in ref and not os.path.exists(ref):
        repo, filename = ref.split(":", 1)
        if repo.count("/") == 1 and filename:
            return repo, filename
    return None


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` means exact (fp32) on CPU/MPS and fp16 on CUDA."""
    if precision in {"", "auto"}:
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        log.warning("fp16 is only used on CUDA; running fp32 on %s", device)
        return "fp32"
    return precision


def resolve_checkpoint(spec: ModelSpec) -> str | None:
    """Return the local path of the weights (downloading from the Hub when asked), or None for the default."""
    if spec.random_weights:
        return None
    repo, filename = spec.hub_repo, spec.hub_filename
    if not repo and spec.checkpoint:
        parsed = parse_hub_reference(spec.checkpoint)
        if parsed:
            repo, filename = parsed
    if repo:
        if not filename:
            raise ModelLoadError(f"Hub repo {repo!r} given without a file name: pass --hub-filename (e.g. model.pth).")
        try:
            from huggingface_hub import hf_hub_download

            return hf_hub_download(repo_id=repo, filename=filename, revision=spec.hub_revision)
        except Exception as exc:
            advice = (
                "Check the repo id, file name and network; for a private repo set HF_TOKEN; "
                "or download the file and pass --checkpoint /path/to/file.pth."
            )
            raise ModelLoadError(
                f"Could not download {filename!r} from the Hugging Face Hub repo {repo!r}: {exc}. {advice}",
                summary=f"{filename!r} could not be downloaded from the Hugging Face Hub repo {repo!r}.",
                advice=advice,
                detail=_detail(exc),
            ) from exc
    if spec.checkpoint:
        path = Path(spec.checkpoint).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"Checkpoint file not found: {path}. Pass an existing .pth file to --checkpoint.")
        return str(path)
    return None


def planned_resolution(spec: ModelSpec) -> int:
    """The default resolution :func:`load_rfdetr` will give ``spec``, without reading the weights.

    ``--resolution``, else rfdetr's class default: ``RFDETRKeypointPreview(pretrain_weights=...)`` keeps its class
    default whatever resolution the checkpoint was trained at (rfdetr interpolates the position embeddings).
    """
    if spec.resolution:
        return int(spec.resolution)
    from rfdetr.config import RFDETRKeypointPreviewConfig

    return int(RFDETRKeypointPreviewConfig.model_fields["resolution"].default)


def load_rfdetr(spec: ModelSpec) -> tuple[Predictor, KeypointSchema, ModelInfo]:
    """Build the keypoint model described by ``spec``. Slow (seconds) and may download; call it once per process."""
    from rfdetr import RFDETRKeypointPreview

    device = pick_device(spec.device)
    precision = resolve_precision(spec.precision, device)
    path = resolve_checkpoint(spec)
    kwargs: dict[str, object] = {"device": device}
    if spec.random_weights:
        kwargs.update(pretrain_weights=None, num_classes=len(PERSON_CLASSES))  # the checkpoint's class layout
    elif path is not None:
        kwargs["pretrain_weights"] = path
    try:
        with seeded() if spec.random_weights else contextlib.nullcontext():
            model = RFDETRKeypointPreview(**kwargs)
    except Exception as exc:
        raise build_error(spec, path, exc) from exc
    if spec.random_weights:
        seed_random_model(model)
    # A second random model (rfdetr-demo random-checkpoint) keeps its ranked score and its "meaningless" label.
    random_weights = spec.random_weights or (path is not None and rank_if_marked(model))
    cfg = model.model_config
    num_kp = max(list(getattr(cfg, "num_keypoints_per_class", []) or [17]))
    schema = load_schema(spec.schema_path) if spec.schema_path else default_schema(num_kp)
    if not schema.matches(num_kp):
        raise ModelLoadError(
            f"The keypoint schema {spec.schema_path} names {schema.num_keypoints} keypoints but the checkpoint "
            f"predicts {num_kp}. Fix the schema file or drop --keypoint-schema."
        )
    resolution = spec.resolution or int(cfg.resolution)

    engine = spec.engine
    if random_weights and engine == "auto" and not device.startswith("cuda"):
        # Untrained weights are for trying the page: an export (25-90 s per resolution) would not pay for itself.
        # (The CUDA path exports nothing: it keeps its fp16 views.)
        engine = "torch"
    choice = build_predictor(model, device, precision, engine=engine, default_resolution=resolution)
    info = ModelInfo(
        name=PRETRAINED_NAME if path is None else Path(path).name,
        source=spec.source_label,
        device=device,
        precision=choice.precision,
        default_resolution=resolution,
        num_keypoints=num_kp,
        class_names=list(getattr(model, "class_names", []) or []),
        random_weights=random_weights,
        engine=choice.engine,
    )
    return choice.predictor, schema, info
