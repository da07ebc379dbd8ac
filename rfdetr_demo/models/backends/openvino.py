"""OpenVINO CPU engine: rfdetr's own export, run by OpenVINO, inside rfdetr's own ``predict``.

Only the network is swapped (on a shallow view of the model, :func:`~rfdetr_demo.models.predictor.rfdetr_view`), so
resizing, post-processing, class names and covariance stay rfdetr's. One export per resolution (the IR bakes the
position embeddings for one shape), cached on disk. ``fp32`` pins f32 math (OpenVINO picks bf16 on CPUs that have
it) and each fresh export is checked against torch before use. Timings: docs/speed.md.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from rfdetr_demo.models.backends.cache import (
    ExportCache,
    cache_key,
    export_model,
    lower_this_threads_priority,
    weights_fingerprint,
)
from rfdetr_demo.models.predictor import RFDETRPredictor, rfdetr_view, validate_resolution

log = logging.getLogger(__name__)

ARTEFACT = "model.xml"
# Largest |difference| in raw outputs (normalised box coordinates, logits, keypoint terms) accepted between a fresh
# fp32 export and torch on the check input; fp32 exports measure ~1e-5, so this only rejects a broken export.
EXPORT_CHECK_TOLERANCE = 1e-3
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken install must also mean "not available", not crash the load
        return False
    return True


def openvino_supports_bf16(core: Any) -> bool:
    """Whether the CPU has native bf16 (AVX512_BF16/AMX); without it bf16 would be emulated and slower."""
    try:
        return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - unknown means no
        return False


def _tool_versions() -> dict[str, str]:
    import openvino
    import rfdetr
    import torch

    return {
        "rfdetr": getattr(rfdetr, "__version__", "?"),
        "openvino": openvino.get_version(),
        "torch": torch.__version__,
    }


class OpenVINOPredictor:
    """A :class:`~rfdetr_demo.models.predictor.Predictor` running the network with OpenVINO on CPU.

    One compiled graph per resolution, from the disk cache when present, else exported. If a resolution cannot be
    exported or compiled, that resolution is served by plain torch and the reason is logged once; ``failed``
    records it.

    ``background=True`` (the app): a request at a resolution with no graph yet is answered by torch at once while
    one worker thread exports and compiles it (a minute or so on a small CPU), instead of holding every user behind the
    export; later requests at that resolution run on OpenVINO. ``background=False`` (benchmarks, library use)
    prepares synchronously on first use. :meth:`engine_at` says which engine served a resolution.
    """

    engine = "openvino"

    def __init__(
        self,
        model: Any,
        precision: str = "fp32",
        cache: ExportCache | None = None,
        core: Any = None,
        max_compiled: int = 4,
        verify_exports: bool = True,
        background: bool = False,
    ) -> None:
        if not openvino_available():
            raise EngineUnavailable("openvino is not installed (pip install -r requirements-speed.txt)")
        import openvino as ov

        if precision not in _OV_PRECISION:
            raise ValueError(f"OpenVINO precision must be one of {sorted(_OV_PRECISION)}, got {precision!r}")
        self.model = model
        self.cache = cache or ExportCache()
        self.core = core or ov.Core()
        if precision == "bf16" and not openvino_supports_bf16(self.core):
            log.warning("this CPU has no native bf16; OpenVINO runs fp32")
            precision = "fp32"
        self.precision = precision
        self.device = "cpu"
        self.max_compiled = max_compiled
        self.verify_exports = verify_exports
        self.background = background
        self.fallback = RFDETRPredictor(model, device="cpu", precision="fp32")
        self.export_count = 0
        self.failed: dict[int, str] = {}
        self._compiled: OrderedDict[int, Any] = OrderedDict()
        self._pending: dict[int, Future[Any]] = {}
        self._fingerprint: str | None = None
        # _state guards the dicts above (held briefly); _run serialises every forward pass (OpenVINO requests are
        # not re-entrant, and torch forwards on the live model must not overlap the export check). Exports hold
        # neither, so requests keep being served while one runs.
        self._state = threading.Lock()
        self._run = threading.RLock()
        self._prepare_locks: dict[int, threading.Lock] = {}
        # Background exports run one at a time: two at once would only split the same cores and double the memory.
        self._export_serial = threading.Lock()
        # No OpenVINO CACHE_DIR: compiling is quick next to an export, and its blobs would grow without bound.

    # -- export + compile ----------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model.model.model.state_dict())
        return self._fingerprint

    def _export(self, resolution: int, out_dir: Path) -> Path:
        path = export_model(self.model, out_dir, resolution, "openvino", openvino_precision="float32")
        with self._state:
            self.export_count += 1
        return path

    def _verify(self, compiled: Any, resolution: int) -> None:
        """Compare a fresh export with the torch forward on one seeded random input; reject a broken export."""
        import torch

        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, resolution, resolution, generator=gen)
        with self._run, torch.inference_mode():
            ref = self.model.model.model.eval()(x)
            got = as_output_dict([compiled(x.numpy())[o] for o in compiled.outputs])
        worst = max(float((got[k] - ref[k].float()).abs().max()) for k in ("pred_boxes", "pred_keypoints"))
        if not np.isfinite(worst) or worst > EXPORT_CHECK_TOLERANCE:
            raise EngineUnavailable(f"OpenVINO export differs from torch by {worst:.3g} at {resolution}²")
        log.info("OpenVINO export at %d² matches torch within %.2g", resolution, worst)

    def _ready(self, resolution: int) -> Any | None:
        with self._state:
            compiled = self._compiled.get(resolution)
            if compiled is not None:
                self._compiled.move_to_end(resolution)
            return compiled

    def prepare(self, resolution: int) -> Any:
        """The compiled graph for ``resolution`` (export → disk cache → compile → check); raises on failure."""
        resolution = validate_resolution(resolution)
        compiled = self._ready(resolution)
        if compiled is not None:
            return compiled
        with self._state:
            gate = self._prepare_locks.setdefault(resolution, threading.Lock())
        with gate:  # one export per resolution even when a request and the worker ask at once
            compiled = self._ready(resolution)
            if compiled is not None:
                return compiled
            compiled, created = self._build(resolution)
            with self._state:
                self._compiled[resolution] = compiled
                while len(self._compiled) > self.max_compiled:
                    self._compiled.popitem(last=False)
            how = "exported" if created else "cached"
            log.info("OpenVINO %s graph ready at %d² (%s)", self.precision, resolution, how)
            return compiled

    def _build(self, resolution: int) -> tuple[Any, bool]:
        versions = _tool_versions()
        key = cache_key(self.fingerprint, resolution, versions)
        meta = {"resolution": resolution, "weights_sha256": self.fingerprint, **versions}
        xml, created = self.cache.get_or_create(key, ARTEFACT, lambda d: self._export(resolution, d), meta)
        # Compiling (all cores) and checking (a torch and an OpenVINO forward) take a few seconds: done holding the
        # run lock, a request waits that long instead of crawling beside them.
        with self._run:
            return self._compile_and_check(xml, created, resolution), created

    def _compile_and_check(self, xml: Path, created: bool, resolution: int) -> Any:
        config = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision]}
        graph = self.core.read_model(str(xml))
        try:
            graph.reshape({graph.inputs[0]: [1, 3, resolution, resolution]})
        except Exception as exc:  # noqa: BLE001 - a dynamic batch axis still works, only a little slower
            log.info("keeping the dynamic batch axis: %s", exc)
        compiled = self.core.compile_model(graph, "CPU", config)
        if self.verify_exports and self.precision == "fp32":
            try:
                self._verify(compiled, resolution)
            except EngineUnavailable:
                if not created:  # a cached export that no longer matches: drop it so the next start re-exports
                    shutil.rmtree(xml.parent, ignore_errors=True)
                raise
        return compiled

    def prepare_in_background(self, resolution: int) -> Future[Any]:
        """Start (or join) the export of ``resolution`` in a background thread; failures land in ``failed``.

        Daemon threads rather than an executor: a server shutting down must not wait a minute for an export.
        """
        resolution = validate_resolution(resolution)
        with self._state:
            future = self._pending.get(resolution)
            if future is not None:
                return future
            future = self._pending[resolution] = Future()
        threading.Thread(
            target=self._prepare_job, args=(resolution, future), name=f"openvino-export-{resolution}", daemon=True
        ).start()
        return future

    def _prepare_job(self, resolution: int, future: Future[Any]) -> None:
        future.set_running_or_notify_cancel()
        lower_this_threads_priority()
        try:
            with self._export_serial:
                compiled = self.prepare(resolution)
        except Exception as exc:  # noqa: BLE001 - recorded for the page; that resolution stays on torch
            self._mark_failed(resolution, exc, "unavailable")
            future.set_exception(exc)
        else:
            future.set_result(compiled)
        finally:
            with self._state:
                self._pending.pop(resolution, None)

    def _mark_failed(self, resolution: int, exc: BaseException, what: str) -> None:
        with self._state:
            self.failed[resolution] = f"{exc.__class__.__name__}: {exc}"
        log.warning("OpenVINO %s at %d², using torch for it: %s", what, resolution, exc)

    def engine_at(self, resolution: int) -> str:
        """Which engine serves ``resolution`` now, worded for the page."""
        with self._state:
            if resolution in self._compiled:
                return "openvino"
            if resolution in self.failed:
                return f"torch (openvino failed at {resolution}²)"
        if self.preparing_at(resolution):
            return f"torch (openvino preparing {resolution}²)"
        return "openvino" if not self.background else "torch"

    def preparing_at(self, resolution: int) -> bool:
        """Whether ``resolution`` is being exported in the background (its requests run on torch meanwhile)."""
        with self._state:
            return resolution in self._pending

    # -- inference -----------------------------------------------------------------------------------------------
    def predict(self, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
        if not images:
            return []
        resolution = validate_resolution(resolution)
        compiled = self._ready(resolution)
        if compiled is None and resolution not in self.failed:
            if self.background:
                self.prepare_in_background(resolution)  # this request runs on torch; later ones on OpenVINO
            else:
                try:
                    compiled = self.prepare(resolution)
                except Exception as exc:  # noqa: BLE001 - any engine failure must degrade to torch, not fail
                    self._mark_failed(resolution, exc, "unavailable")
        if compiled is not None:
            try:
                return self._predict_compiled(compiled, images, threshold, resolution)
            except Exception as exc:  # noqa: BLE001 - retry with torch; if torch fails too, that error surfaces
                self._mark_failed(resolution, exc, "failed")
                with self._state:
                    self._compiled.pop(resolution, None)
        with self._run:
            return self.fallback.predict(images, threshold, resolution)

    def _predict_compiled(
        self, compiled: Any, images: Sequence[np.ndarray], threshold: float, resolution: int
    ) -> list[sv.KeyPoints]:
        import torch

        # Arrays only: a str would make rfdetr open a path or fetch a URL on the user's behalf.
        batch = [np.ascontiguousarray(img, dtype=np.uint8) for img in images]
        # A view, not the live model with its network swapped: a background export deep-copies the live network.
        view = rfdetr_view(self.model, model=compiled_forward_module(compiled))
        with self._run, torch.inference_mode():
            out = view.predict(batch, threshold=threshold, shape=(resolution, resolution), include_source_image=False)
        return list(out)


# The OpenVINO graph as the torch module rfdetr's ``predict`` expects: positional outputs → rfdetr's output dict.
class EngineUnavailable(RuntimeError):
    """OpenVINO is not installed or cannot run this model; callers fall back to torch."""


def as_output_dict(outputs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Map the export's positional outputs (boxes, logits, keypoints) to the names rfdetr's post-processing reads."""
    import torch

    if len(outputs) != 3:
        raise EngineUnavailable(f"expected 3 outputs (boxes, logits, keypoints), got {len(outputs)}")
    boxes, logits, keypoints = outputs
    if boxes.shape[-1] != 4 or keypoints.ndim != 4:
        raise EngineUnavailable(f"unexpected output shapes {[o.shape for o in outputs]}")
    return {
        "pred_boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
        "pred_logits": torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)),
        "pred_keypoints": torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32)),
    }


def compiled_forward_module(compiled: Any) -> Any:
    """An ``nn.Module`` without parameters whose forward runs ``compiled`` (so rfdetr's eval/device checks pass)."""
    from torch import nn

    class OpenVINOForward(nn.Module):
        def forward(self, batch: Any) -> dict[str, Any]:
            data = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
            # The graph is compiled for batch 1 (static shapes run ~8 % faster than a dynamic batch axis, and on
            # CPU a batch costs about the same as its images one by one), so frames go through one at a time.
            parts = [compiled(data[i : i + 1]) for i in range(data.shape[0])]
            return as_output_dict([np.concatenate([p[out] for p in parts]) for out in compiled.outputs])

    return OpenVINOForward().eval()
