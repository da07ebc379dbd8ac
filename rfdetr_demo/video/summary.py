"""What a video run reports: progress while it runs and the result when it is done (plain data, no Gradio)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pandas as pd

from rfdetr_demo.video.reader import VideoInfo


@dataclass(frozen=True)
class ProgressInfo:
    done: int
    total: int | None
    elapsed_s: float

    @property
    def fps(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.total is None or self.done == 0:
            return None
        return max(0.0, (self.total - self.done) / max(self.fps, 1e-9))

    def text(self) -> str:
        eta = f"{self.eta_s:.0f} s left" if self.eta_s is not None else "time left unknown"
        total = self.total if self.total is not None else "?"
        return f"{self.done}/{total} frames · {self.fps:.1f} frames/s · {eta}"


@dataclass
class VideoResult:
    video_path: Path
    files: list[Path]
    frames: pd.DataFrame  # per-frame summary
    info: VideoInfo
    output_fps: Fraction
    output_size: tuple[int, int]
    frames_done: int
    elapsed_s: float
    inference_ms: float  # mean per model run
    notes: list[str] = field(default_factory=list)
    model_runs: int = 0  # frames the model ran on (keyframes); the others were filled by the smoother
    keyframes: str = "every frame"  # the schedule in words
    # Start-up (thread and codec start, the first inference batch, the first encode) is a fixed cost that dominates
    # short clips, so the steady rate is measured after it: from the last frame of the first batch to the last frame.
    warmup_frames: int = 0  # frames in the first inference batch
    warmup_s: float = 0.0  # from the start until the first batch's last frame was written
    last_frame_s: float = 0.0  # from the start until the last frame was written (exports/remux come after)

    @property
    def fps(self) -> float:
        """Frames per second over the whole run, start-up and finishing included."""
        return self.frames_done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def steady_fps(self) -> float | None:
        """Frames per second after the first batch; None when no frame came after it (too short to say)."""
        frames = self.frames_done - self.warmup_frames
        span = self.last_frame_s - self.warmup_s
        return frames / span if frames > 0 and self.warmup_frames > 0 and span > 0 else None


ProgressCallback = Callable[[ProgressInfo], None]
