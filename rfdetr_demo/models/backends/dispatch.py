"""Pick the engine for a loaded rfdetr model: OpenVINO on CPU when installed, CUDA path on GPUs, else torch.

Kept apart from :mod:`rfdetr_demo.models.loading` so the core loader changes by two lines and the choice can be tested
without building a model. Every failure here degrades to plain torch; the reason is logged once and shown on the
page through ``ModelInfo.engine``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from rfdetr_demo.defaults import DEFAULT_RESOLUTION
from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.backends.cuda import CUDAPredictor
from rfdetr_demo.models.predictor import Predictor, RFDETRPredictor

log = logging.getLogger(__name__)

ENGINES = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class EngineChoice:
    predictor: Predictor
    engine: str  # label for the page, e.g. "openvino", "torch", "torch (openvino not installed)"
    precision: str


def validate_engine(engine: str | None) -> str:
    engine = (engine or "auto").strip().lower()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def plan_engine(engine: str, device: str, openvino_installed: bool) -> tuple[str, str | None]:
    """Decide ``(engine, why_not_requested)`` from the request, the device and what is installed (pure logic)."""
    engine = validate_engine(engine)
    if device.startswith("cuda") and engine == "torch":  # the live model as rfdetr runs it: no fp16 views
        return "torch", None
    if device.startswith("cuda"):
        note = "openvino runs on CPU only" if engine == "openvino" else None
        return "torch-cuda", note
    if engine == "torch" or device != "cpu":
        note = "openvino runs on CPU only" if engine == "openvino" else None
        return "torch", note
    if not openvino_installed:
        return "torch", "openvino not installed"
    return "openvino", None


def build_predictor(
    model: Any,
    device: str,
    precision: str,
    engine: str = "auto",
    default_resolution: int = DEFAULT_RESOLUTION,
    cache: Any = None,
) -> EngineChoice:
    """Wrap ``model`` (an ``RFDETR`` instance) in the fastest available engine; never raises for engine trouble."""
    # lazy: read at call time (tests and hosts without OpenVINO swap it)
    from rfdetr_demo.models.backends.openvino import openvino_available

    planned, note = plan_engine(engine, device, openvino_available())
    if note:
        log.warning("engine %r: %s; using %s", engine, note, planned)
    if planned == "openvino":
        try:
            # lazy: read at call time (tests and hosts without OpenVINO swap it)
            from rfdetr_demo.models.backends.openvino import OpenVINOPredictor

            # Other resolutions are exported in the background on first use, served by torch meanwhile.
            predictor = OpenVINOPredictor(model, precision=precision, cache=cache, background=True)
            predictor.prepare(default_resolution)  # export/compile now, while the page says "loading"
            return EngineChoice(predictor, "openvino", predictor.precision)
        except Exception as exc:  # noqa: BLE001 - engine trouble must leave a working torch model
            log.warning("OpenVINO engine failed (%s: %s); using torch", exc.__class__.__name__, exc)
            note = "openvino failed, see log"
        return EngineChoice(RFDETRPredictor(model, device, precision), f"torch ({note})", precision)
    if planned == "torch-cuda":
        cuda = CUDAPredictor(model, device, precision)
        if zerogpu.on_zero_gpu():  # warmed by app_factory.start_models once every model is loaded (workers fork)
            return EngineChoice(cuda, "torch-cuda", precision)
        # never raises: a failed warm-up is not a failed load (fp32 is kept and the label says why)
        return EngineChoice(cuda, "torch-cuda", cuda.warm_up(default_resolution))
    label = "torch" if note is None else f"torch ({note})"
    return EngineChoice(RFDETRPredictor(model, device, precision), label, precision)
