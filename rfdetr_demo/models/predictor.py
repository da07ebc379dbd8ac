"""Predictors: the one seam between the app and whatever runs the network.

Everything above this module (service, tabs, CLI) talks to a :class:`Predictor`: RGB uint8 arrays in, raw
``sv.KeyPoints`` out. The real one wraps ``rfdetr``; tests use the replay oracle in :mod:`tests.support.replay`, and
faster engines can slot in without touching the UI.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import supervision as sv

from rfdetr_demo.errors import UserError

log = logging.getLogger(__name__)

# RF-DETR keypoint models use patch size 12 and 2 windows: inference sides must be multiples of 24.
RESOLUTION_BLOCK = 24


class Predictor(Protocol):
    """Runs the network on a batch of RGB uint8 images (H, W, 3)."""

    def predict(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]: ...


def rfdetr_view(rf_model: Any, **context: Any) -> Any:
    """A shallow copy of an rfdetr model whose model context (``rf_model.model``) has ``context`` attributes replaced.

    Why: engines run rfdetr's own ``predict`` (pre-processing, post-processing, class naming) with another network
    or a fixed resolution. Changing those on the live model would leak into every other request and into exports
    made meanwhile; the copy shares everything else, so ``predict`` behaves exactly as on the original.
    """
    view = copy.copy(rf_model)
    view.model = copy.copy(rf_model.model)
    for name, value in context.items():
        setattr(view.model, name, value)
    return view


def validate_resolution(resolution: int) -> int:
    """Check that an inference side length is usable by the model (positive multiple of 24)."""
    if isinstance(resolution, bool) or int(resolution) != resolution:
        raise UserError(f"resolution must be an integer, got {resolution!r}")
    resolution = int(resolution)
    if resolution <= 0 or resolution % RESOLUTION_BLOCK:
        raise UserError(f"resolution must be a positive multiple of {RESOLUTION_BLOCK}, got {resolution}")
    return resolution


def pick_device(requested: str = "auto") -> str:
    """CUDA, then Apple MPS, then CPU, unless a device was requested explicitly."""
    import torch

    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class RFDETRPredictor:
    """Wraps an ``rfdetr`` keypoint model: plain ``predict``, optionally under autocast.

    Autocast keeps every resolution working on the live model; the CUDA path
    (:mod:`rfdetr_demo.models.backends.cuda`) adds fp16 ``model.inference(...)`` views, one per resolution.
    """

    def __init__(self, model: Any, device: str, precision: str = "fp32") -> None:
        self.model = model
        self.device = device
        self.precision = precision

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.device.startswith("cuda") and self.precision in {"fp16", "bf16"}:
            dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
            return torch.autocast(device_type="cuda", dtype=dtype)
        if self.device == "cpu" and self.precision == "bf16":
            return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def predict(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
        import torch

        if not images:
            return []
        # Arrays only: a str would make rfdetr open a path or fetch a URL on the user's behalf.
        batch = [np.ascontiguousarray(img, dtype=np.uint8) for img in images]
        with torch.inference_mode(), self._autocast():
            out = self.model.predict(
                batch, threshold=threshold, shape=(resolution, resolution), include_source_image=False
            )
        return list(out)
