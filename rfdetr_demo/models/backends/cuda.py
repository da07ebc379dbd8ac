"""GPU path: fp16 through rfdetr's own ``model.inference(...)``, one view per resolution, batched frames.

``model.inference`` fixes one resolution, while the page switches resolution per request, so each resolution gets a
shallow *view* of the model with its own inference copy (``compile=False``: any batch size); the live model is never
modified. At load each mode (``inference`` fp16, ``autocast``, ``plain`` fp32) is timed on a dummy frame and the
fastest kept, since fp16 is not faster on every GPU. Written and tested on CPU only (see docs/speed.md).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import supervision as sv

from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.predictor import RFDETRPredictor, rfdetr_view

log = logging.getLogger(__name__)


def choose_fastest(
    candidates: Mapping[str, Callable[[], object]],
    runs: int = 3,
    timer: Callable[[], float] = time.perf_counter,
    prefer: str | None = None,
) -> tuple[str, dict[str, float]]:
    """Time each candidate ``runs`` times (after one untimed call) and return the fastest by median.

    ``prefer`` wins ties within 3 %, so noise alone never flips the choice away from the intended default.
    """
    medians: dict[str, float] = {}
    for name, fn in candidates.items():
        fn()  # first call pays for kernel selection / allocation
        samples = []
        for _ in range(max(1, runs)):
            t0 = timer()
            fn()
            samples.append(timer() - t0)
        medians[name] = statistics.median(samples)
    best = min(medians, key=lambda k: medians[k])
    if prefer in medians and medians[prefer] <= medians[best] * 1.03:
        best = prefer
    return best, medians


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


def inference_view(rf_model: Any, resolution: int, dtype: Any) -> Any:
    """A shallow copy of the rfdetr model, optimized by rfdetr's ``inference()`` for ``resolution`` and ``dtype``.

    ``inference()`` deep-copies the network, switches it to export mode and casts it; on the copy, the flags it sets
    and the resolution it fixes stay off the live model, which keeps serving every other resolution and can still
    be exported.
    """
    view = rfdetr_view(rf_model, resolution=int(resolution), inference_model=None)
    view.inference(compile=False, dtype=dtype)
    return view


MODES = ("inference", "autocast", "plain")


class CUDAPredictor(RFDETRPredictor, zerogpu.Shared):
    """RFDETRPredictor for CUDA: fp16 ``inference`` views per resolution, fastest mode by measurement, batches."""

    engine = "torch-cuda"

    def __init__(
        self,
        model: Any,
        device: str,
        precision: str = "fp16",
        max_batch: int = 8,
        max_views: int = 4,
        half_dtype: Any = None,
    ) -> None:
        super().__init__(model, device=device, precision=precision)
        import torch

        self.requested_precision = precision
        self.max_batch = max_batch
        self.max_views = max_views
        self.half_dtype = half_dtype or (torch.bfloat16 if precision == "bf16" else torch.float16)
        self.mode = "plain" if precision == "fp32" else "inference"
        self.warmup_ms: dict[str, float] = {}
        self.view_failure: str | None = None
        self._views: OrderedDict[int, Any] = OrderedDict()
        self._views_lock = threading.Lock()

    @property
    def label(self) -> str:
        """Precision as shown on the page, e.g. ``fp16 (model.inference)``."""
        if self.mode == "inference":
            return f"{self.requested_precision} (model.inference)"
        return f"{self.precision} (autocast)" if self.mode == "autocast" else "fp32"

    def _set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.precision = "fp32" if mode == "plain" else self.requested_precision

    def view(self, resolution: int) -> Any:
        """The ``inference`` view for ``resolution`` (made on first use, ~1 s; newest ``max_views`` kept)."""
        with self._views_lock:
            view = self._views.get(resolution)
            if view is None:
                view = self._views[resolution] = inference_view(self.model, resolution, self.half_dtype)
                while len(self._views) > self.max_views:
                    self._views.popitem(last=False)
            else:
                self._views.move_to_end(resolution)
            return view

    def _predict_chunk(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
        if self.mode == "inference":
            import torch

            try:
                view = self.view(resolution)
            except Exception as exc:  # noqa: BLE001 - keep serving with autocast rather than failing requests
                self.view_failure = f"{exc.__class__.__name__}: {exc}"
                log.warning("model.inference view failed at %d² (%s); using fp16 autocast", resolution, exc)
                self._set_mode("autocast")
            else:
                batch = [np.ascontiguousarray(img, dtype=np.uint8) for img in images]
                with torch.inference_mode():
                    out = view.predict(
                        batch, threshold=threshold, shape=(resolution, resolution), include_source_image=False
                    )
                return list(out)
        return RFDETRPredictor.predict(self, images, threshold, resolution)

    def warm_up(self, resolution: int, runs: int = 3, timer: Callable[[], float] = time.perf_counter) -> str:
        """Run dummy frames so the first request doesn't pay CUDA start-up; keep the fastest mode (page label).

        The measurement runs in one GPU lease on ZeroGPU; the choice is applied here (a worker's changes stay there).
        """
        mode, medians, failure = _measure_modes(self, resolution, runs, timer)
        self.view_failure = self.view_failure or failure
        self._set_mode(mode)
        self.warmup_ms = {k: v * 1000.0 for k, v in medians.items()}
        log.info("CUDA warm-up at %d²: %s ms; using %s", resolution, self.warmup_ms, self.label)
        return self.label

    def predict(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
        out: list[sv.KeyPoints] = []
        for chunk in batches(list(images), self.max_batch):
            out.extend(self._predict_chunk(chunk, threshold, resolution))
        return out


def _warm_up_seconds(predictor: CUDAPredictor, resolution: int, runs: int, *_: Any) -> float:
    return zerogpu.estimate_seconds(len(MODES) * (runs + 1), resolution)


@zerogpu.gpu(_warm_up_seconds)
def _measure_modes(
    predictor: CUDAPredictor, resolution: int, runs: int, timer: Callable[[], float]
) -> tuple[str, dict[str, float], str | None]:
    """The fastest mode, the median seconds per mode and why the ``inference`` view failed (if it did)."""
    frame = np.zeros((resolution, resolution, 3), dtype=np.uint8)
    if predictor.requested_precision == "fp32":
        predictor._set_mode("plain")
        predictor._predict_chunk([frame], 0.5, resolution)
        return "plain", {}, None

    def run_in(mode: str) -> Callable[[], object]:
        def call() -> object:
            predictor._set_mode(mode)
            return predictor._predict_chunk([frame], 0.5, resolution)

        return call

    best, medians = choose_fastest({mode: run_in(mode) for mode in MODES}, runs=runs, timer=timer, prefer="inference")
    if predictor.view_failure is not None and best == "inference":
        best = "autocast"
    return best, medians, predictor.view_failure
