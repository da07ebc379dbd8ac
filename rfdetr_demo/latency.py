"""Resolution presets with the latency measured on this machine (speed vs accuracy), Gradio-free.

Why measured and not a table: the same model takes 0.3 s or 3 s per image depending on the host, the engine and
whoever else shares the CPU. The book learns from real requests (``observe``) and can also time one dummy image
per preset on demand (``measure``); the page shows e.g. ``384² · ~0.45 s``.

Hook for the UI: call ``book.observe(prediction)`` after each ``ModelService`` call and fill the resolution
control from ``book.choices()``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from rfdetr_demo.defaults import PRESET_NOTES, RESOLUTION_PRESETS


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

    def observe(self, prediction: Any) -> None:
        """Record a :class:`~rfdetr_demo.result.Prediction` (uses its ``resolution`` and ``inference_ms``)."""
        self.record(prediction.resolution, prediction.inference_ms)

    def latency_ms(self, resolution: int) -> float | None:
        with self._lock:
            samples = self._samples.get(int(resolution))
            return statistics.median(samples) if samples else None

    def table(self, presets: Iterable[int] = RESOLUTION_PRESETS) -> dict[int, float | None]:
        return {r: self.latency_ms(r) for r in presets}

    def measure(
        self,
        predict: Callable[[np.ndarray, int], object],
        presets: Iterable[int] = RESOLUTION_PRESETS,
        runs: int = 2,
        size: tuple[int, int] = (640, 480),
        timer: Callable[[], float] = time.perf_counter,
    ) -> dict[int, float | None]:
        """Time ``predict(image, resolution)`` on a blank frame per preset (first call per preset is a warm-up).

        Blocks for roughly ``(runs + 1) × latency`` per preset: run it once after load, not per request.
        """
        image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        for resolution in presets:
            predict(image, resolution)  # warm-up: first call at a resolution may export/compile
            for _ in range(max(1, runs)):
                t0 = timer()
                predict(image, resolution)
                self.record(resolution, (timer() - t0) * 1000.0)
        return self.table(presets)

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


_shared_book = LatencyBook()


def shared_latency_book() -> LatencyBook:
    """The process-wide book (every tab records into the same one)."""
    return _shared_book


def service_predict_fn(service: Any) -> Callable[[np.ndarray, int], object]:
    """Adapter so ``LatencyBook.measure`` can time a :class:`~rfdetr_demo.service.ModelService`."""
    return lambda image, resolution: service.predict(image, threshold=0.5, resolution=resolution)
