"""Resolution presets with the latency measured on this machine (speed vs accuracy), Gradio-free.

Measured, not tabulated: the same model is ten times faster or slower depending on the host, the engine and who
else shares the CPU. The service records every request here; the page shows ``384² · ~0.45 s``.
"""

from __future__ import annotations

import statistics
import threading
from collections import deque
from collections.abc import Iterable

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
