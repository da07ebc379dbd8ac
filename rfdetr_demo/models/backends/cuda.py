"""GPU path: fp16 through rfdetr's own ``model.inference(...)``, one view per resolution, batched frames.

``model.inference`` fixes one resolution, while the page switches resolution per request, so each resolution gets a
shallow *view* of the model with its own inference copy (``compile=False``: any batch size); the live model is never
modified. At load each mode (``inference`` fp16, ``autocast``, ``plain`` fp32) is timed on a dummy frame and the
fastest kept, since fp16 is not faster on every GPU. Written and tested on CPU only (see docs/speed.md).
"""

from __future__ import annotations

import functools
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
    failures: dict[str, str] | None = None,
) -> tuple[str, dict[str, float]]:
    """Time each candidate ``runs`` times (after one untimed call) and return the fastest by median.

    ``prefer`` wins ties within 3 %, so noise alone never flips the choice away from the intended default. With
    ``failures`` given, a candidate that raises is left out and its error recorded there (so a mode that fails is
    never chosen); when every candidate fails, the last error is raised.
    """
    medians: dict[str, float] = {}
    error: Exception | None = None
    for name, fn in candidates.items():
        try:
            fn()  # first call pays for kernel selection / allocation
            samples = []
            for _ in range(max(1, runs)):
                t0 = timer()
                fn()
                samples.append(timer() - t0)
        except Exception as exc:
            if failures is None:
                raise
            failures[name], error = f"{exc.__class__.__name__}: {exc}", exc
            continue
        medians[name] = statistics.median(samples)
    if not medians and error is not None:
        raise error
    best = min(medians, key=lambda k: medians[k])
    if prefer in medians and medians[prefer] <= medians[best] * 1.03:
        best = prefer
    return best, medians


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]


@functools.cache
def _fp32_outputs() -> type:
    """The :func:`fp32_outputs` module class (made on first use: torch is imported lazily)."""
    import torch
    from torch.utils._pytree import tree_map_only

    class Fp32Outputs(torch.nn.Module):
        def __init__(self, network: Any) -> None:
            super().__init__()
            self.network = network

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            out = self.network(*args, **kwargs)
            return tree_map_only(torch.Tensor, lambda t: t.float() if t.is_floating_point() else t, out)

    return Fp32Outputs


def fp32_outputs(network: Any) -> Any:
    """``network`` (half precision) wrapped so its outputs leave in fp32 and rfdetr's post-processing runs in fp32.

    Why: ``predict`` post-processes in the network's dtype. In fp16, boxes and joints scaled to a > 2k-px photo round
    to 2-4 px (bf16: 16 px), and the covariance fusion's ``clamp(min=1e-12)`` underflows to 0 (log → -inf, NaN
    scores). The cast costs a few hundred kB per frame. A module, so ``parameters()``/``eval()`` still reach it.
    """
    return _fp32_outputs()(network)


def inference_view(rf_model: Any, resolution: int, dtype: Any) -> Any:
    """A shallow copy of the rfdetr model, optimized by rfdetr's ``inference()`` for ``resolution`` and ``dtype``.

    ``inference()`` deep-copies the network, switches it to export mode and casts it; on the copy, the flags it sets
    and the resolution it fixes stay off the live model, which keeps serving every other resolution and can still
    be exported. Its outputs are post-processed in fp32 (:func:`fp32_outputs`).
    """
    view = rfdetr_view(rf_model, resolution=int(resolution), inference_model=None)
    view.inference(compile=False, dtype=dtype)
    view.model.inference_model = fp32_outputs(view.model.inference_model)
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
        self.warmup_failure: str | None = None
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
        A mode that raises is never chosen; if the measurement fails as a whole (every mode failed, or the lease
        could not start), plain fp32 is kept and the label says the warm-up failed. Never raises.
        """
        try:
            mode, medians, failure = _measure_modes(self, resolution, runs, timer)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up is not a failed load: serve fp32, say so
            self._set_mode("plain")
            self.warmup_failure = f"{exc.__class__.__name__}: {exc}"
            log.warning("CUDA warm-up at %d² failed (%s); serving fp32", resolution, self.warmup_failure)
            return f"{self.label} (warm-up failed: {exc.__class__.__name__})"
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

    failures: dict[str, str] = {}
    candidates = {mode: run_in(mode) for mode in MODES}
    best, medians = choose_fastest(candidates, runs=runs, timer=timer, prefer="inference", failures=failures)
    for mode, why in failures.items():
        log.warning("CUDA warm-up: %s failed (%s); not used", mode, why)
    if predictor.view_failure is not None and best == "inference":
        best = "autocast"
    return best, medians, predictor.view_failure or failures.get("inference")
