"""One model per process, loaded once in the background, shared safely by every request.

Why a service instead of a global model: the web server must start (and show a status) before multi-gigabyte
weights arrive, a failed load must leave the server up with a helpful message, and concurrent requests from the
Image, Video and Webcam tabs must neither load a second copy nor run the network at the same time on shared state.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import supervision as sv

from rfdetr_demo.defaults import DEFAULT_THRESHOLD, PRESET_NOTES, RESOLUTION_PRESETS
from rfdetr_demo.errors import UserError
from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.loading import ModelLoadError
from rfdetr_demo.models.predictor import Predictor, validate_resolution
from rfdetr_demo.results.prediction import ModelInfo, Prediction, normalize
from rfdetr_demo.results.schema import KeypointSchema

log = logging.getLogger(__name__)

Loader = Callable[[], tuple[Predictor, KeypointSchema, ModelInfo]]


class ModelUnavailable(RuntimeError):
    """The model is still loading or failed to load; the message is meant for the page."""


@dataclass(frozen=True)
class ServiceStatus:
    state: str  # "idle" | "loading" | "ready" | "error"
    message: str
    info: ModelInfo | None = None
    error: Exception | None = None  # why the load failed (state "error"); the page shows it via failure_parts


class ModelService(zerogpu.Shared):
    """Loads the model once (in a background thread) and serialises inference on it."""

    def __init__(self, loader: Loader, infer_lock: threading.Lock | None = None) -> None:
        self._loader = loader
        self._state = "idle"
        self._message = ""
        self._predictor: Predictor | None = None
        self._schema: KeypointSchema | None = None
        self._info: ModelInfo | None = None
        self._error: Exception | None = None
        self._state_lock = threading.Lock()
        self._ready = threading.Event()
        # Shared by the services of one device (rfdetr_demo.models.registry): one inference at a time per device.
        self._infer_lock = infer_lock or threading.Lock()
        # Measured latency per resolution from real requests, for the speed/accuracy labels of the presets.
        self.latency = LatencyBook()

    # -- loading -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading in the background (idempotent); the server need not wait."""
        with self._state_lock:
            if self._state != "idle":
                return
            self._state, self._message = "loading", "Loading the model… the first start may download weights."
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        t0 = time.perf_counter()
        try:
            predictor, schema, info = self._loader()
        except Exception as exc:
            log.exception("model load failed")
            with self._state_lock:
                self._state, self._message, self._error = "error", str(exc) or exc.__class__.__name__, exc
            self._ready.set()
            return
        with self._state_lock:
            self._predictor, self._schema, self._info = predictor, schema, info
            self._state = "ready"
            self._message = f"Model ready in {time.perf_counter() - t0:.1f} s."
        log.info("model ready: %s", info.as_dict())
        self._ready.set()

    def unload(self, why: str = "Unloaded to make room; it loads again on its next request.") -> bool:
        """Drop a ready model (requests running on it finish with their own reference); the next use reloads."""
        with self._state_lock:
            if self._state != "ready":
                return False
            self._predictor = self._schema = self._info = None
            self._state, self._message = "idle", why
            self._ready.clear()
        release_gpu_memory()
        return True

    def warm_up(self) -> None:
        """Run the predictor's warm-up (on ZeroGPU: one lease) and put the precision it chose in the page's label.

        Never raises: a failed warm-up is shown in that label (the page must serve, ZeroGPU included).
        """
        predictor, _schema, info = self.wait(0)
        if not hasattr(predictor, "warm_up"):
            return
        try:
            label = str(predictor.warm_up(info.default_resolution))
        except Exception as exc:  # shown on the page; the model still serves
            log.exception("warm-up failed")
            label = f"{info.precision} (warm-up failed: {exc.__class__.__name__}: {exc})"
        with self._state_lock:
            if self._info is info:  # not unloaded or reloaded meanwhile
                self._info = replace(info, precision=label)

    def status(self) -> ServiceStatus:
        with self._state_lock:
            return ServiceStatus(self._state, self._message, self._info, self._error)

    def wait(self, timeout: float | None = None) -> tuple[Predictor, KeypointSchema, ModelInfo]:
        """Block until the model is ready (starting the load if nobody did); raise :class:`ModelUnavailable`."""
        self.start()
        if not self._ready.wait(timeout):
            raise ModelUnavailable("The model is still loading; please try again in a moment.")
        with self._state_lock:
            if self._state == "idle":  # unloaded between becoming ready and this request (several models, LRU)
                raise ModelUnavailable("The model was unloaded to make room for another one; please try again.")
            if self._state != "ready" or self._predictor is None or self._schema is None or self._info is None:
                raise ModelUnavailable(self._unavailable_text())
            return self._predictor, self._schema, self._info

    def _unavailable_text(self) -> str:
        """What a request is told after a failed load: our short explanation and advice, not a raw exception."""
        if isinstance(self._error, ModelLoadError):
            return f"{self._error.summary} {self._error.advice}".strip()
        return f"The model could not be loaded. {self._message}"

    @property
    def schema(self) -> KeypointSchema:
        return self.wait()[1]

    @property
    def info(self) -> ModelInfo:
        return self.wait()[2]

    # -- inference -----------------------------------------------------------------------------------------------
    def predict_batch(
        self,
        images: Sequence[np.ndarray],
        threshold: float = DEFAULT_THRESHOLD,
        resolution: int | None = None,
        timeout: float | None = None,
    ) -> list[Prediction]:
        """Run the model on RGB uint8 images; one :class:`Prediction` per image, background rows dropped."""
        predictor, schema, info = self.wait(timeout)
        res = validate_resolution(resolution or info.default_resolution)
        if not 0.0 <= float(threshold) <= 1.0:
            raise UserError(f"threshold must be within [0, 1], got {threshold}")
        for img in images:
            if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                raise ValueError("images must be RGB uint8 arrays of shape (H, W, 3)")
        if not images:
            return []
        # One ZeroGPU lease unless this request already holds one; a direct call everywhere else.
        raw, elapsed_ms = _infer(self, list(images), float(threshold), res)
        model_info = engine_info(predictor, res, info)
        per_image_ms = elapsed_ms / len(images)
        self.latency.record(res, per_image_ms, model_info.engine)
        return [
            Prediction(
                key_points=normalize(kp, schema.num_keypoints),
                image_size=(int(img.shape[1]), int(img.shape[0])),
                schema=schema,
                threshold=float(threshold),
                resolution=res,
                inference_ms=per_image_ms,
                model_info=model_info,
            )
            for kp, img in zip(raw, images, strict=True)
        ]

    def predict(
        self, image: np.ndarray, threshold: float = DEFAULT_THRESHOLD, resolution: int | None = None
    ) -> Prediction:
        return self.predict_batch([image], threshold, resolution)[0]


def release_gpu_memory() -> None:
    """Hand the CUDA blocks an unloaded model's weights held back to the driver (torch keeps them cached).

    Requests still running on that model keep their own reference; only blocks already free are released. A no-op
    where CUDA was never initialised (CPU hosts, and ZeroGPU's main process, whose CUDA lives in its workers).
    """
    import gc
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    gc.collect()  # the network's modules hold reference cycles: free them before asking CUDA to release
    torch.cuda.empty_cache()


def _infer_seconds(service: ModelService, images: list[np.ndarray], threshold: float, resolution: int) -> float:
    return zerogpu.estimate_seconds(len(images), resolution)


@zerogpu.gpu(_infer_seconds)
def _infer(
    service: ModelService, images: list[np.ndarray], threshold: float, resolution: int
) -> tuple[list[sv.KeyPoints], float]:
    """The model call and its time; the lock is taken inside the lease, never held while a lease is awaited."""
    predictor = service.wait(0)[0]
    with service._infer_lock:
        t0 = time.perf_counter()
        raw = predictor.predict(images, threshold, resolution)
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return [zerogpu.cpu_key_points(kp) for kp in raw], elapsed_ms


def engine_info(predictor: Predictor, resolution: int, info: ModelInfo) -> ModelInfo:
    """``info`` with the engine that serves ``resolution`` now (it can differ per resolution while an export runs).

    Engines that build per resolution report it through the optional ``engine_at`` (a label for the page) and
    ``preparing_at`` (whether a faster engine is being built) methods.
    """
    engine, preparing = info.engine, False
    try:
        if hasattr(predictor, "engine_at"):
            engine = str(predictor.engine_at(resolution))
        if hasattr(predictor, "preparing_at"):
            preparing = bool(predictor.preparing_at(resolution))
    except Exception:
        log.debug("engine label failed", exc_info=True)
    return replace(info, engine=engine, preparing=preparing)


# Resolution presets with the latency measured on this machine (speed vs accuracy), Gradio-free.
class LatencyBook:
    """Rolling per-resolution inference latency (ms per image): median of the last ``window`` observations."""

    def __init__(self, window: int = 9) -> None:
        self._samples: dict[int, deque[float]] = {}
        self._engines: dict[int, str] = {}
        self._window = window
        self._lock = threading.Lock()

    def record(self, resolution: int, ms_per_image: float, engine: str | None = None) -> None:
        """Add one observation; a change of ``engine`` at that resolution forgets the older figures.

        Why: a resolution first served by torch while OpenVINO prepares it gets ~1.3x faster once the export is
        ready, and a label that mixed both would be wrong for the next nine requests.
        """
        if not np.isfinite(ms_per_image) or ms_per_image < 0:
            return
        res = int(resolution)
        with self._lock:
            if engine is not None and self._engines.get(res, engine) != engine:
                self._samples.pop(res, None)
            if engine is not None:
                self._engines[res] = engine
            self._samples.setdefault(res, deque(maxlen=self._window)).append(float(ms_per_image))

    def latency_ms(self, resolution: int) -> float | None:
        with self._lock:
            samples = self._samples.get(int(resolution))
            return statistics.median(samples) if samples else None

    def label(self, resolution: int) -> str:
        note = PRESET_NOTES.get(int(resolution))
        ms = self.latency_ms(resolution)
        parts = [f"{int(resolution)}²"]
        if note:
            parts.append(note)
        if ms is not None:
            parts.append(f"~{ms / 1000:.2f} s" if ms >= 100 else f"~{ms:.0f} ms")
        return " · ".join(parts)

    def choices(self, presets: Iterable[int] = RESOLUTION_PRESETS) -> list[tuple[str, int]]:
        """``(label, value)`` pairs for a dropdown/radio: ``("384² · fast · ~0.45 s", 384)``."""
        return [(self.label(r), int(r)) for r in presets]


def labelled_resolution_choices(
    default: int, book: LatencyBook, presets: Iterable[int] = RESOLUTION_PRESETS
) -> list[tuple[str, int]]:
    """Dropdown choices for the presets plus the model's default resolution, each labelled with its latency."""
    return book.choices(sorted(set(presets) | {int(default)}))
