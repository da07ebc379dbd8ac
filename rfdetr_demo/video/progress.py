"""What a video run reports: progress while it runs and the result when it is done (plain data, no Gradio)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pandas as pd

from rfdetr_demo.video.reader import VideoInfo

# Frames through the model before a time-left estimate is shown: the first one carries the start-up cost.
ETA_AFTER_FRAMES = 3


@dataclass(frozen=True)
class ProgressInfo:
    """Frames decoded and through the model stage so far (a smoother may still hold the last few back)."""

    done: int
    total: int | None
    elapsed_s: float
    first_s: float = 0.0  # when the first frame came out of the model stage (start-up ends there)

    @property
    def fps(self) -> float:
        """The rate after the first frame, so start-up does not drag the estimate; 0 until there is one."""
        span = self.elapsed_s - self.first_s
        return (self.done - 1) / span if self.done > 1 and span > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.total is None or self.done < ETA_AFTER_FRAMES or self.fps <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.fps)

    def text(self) -> str:
        total = f"/{self.total}" if self.total is not None else ""
        head = f"{self.done}{total} frames processed"
        if self.eta_s is None:
            return f"{head} · estimating time left…" if self.total is not None else head
        return f"{head} · {self.fps:.1f} frames/s · about {self.eta_s:.0f} s left"


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
    # Start-up (thread and codec start, the first inference batch) is a fixed cost that dominates short clips, so the
    # steady rate is measured after it, on frames coming out of the model stage (a smoother releases its held frames
    # all at once at the end, which would make the rate of writing them meaningless).
    warmup_frames: int = 0  # frames in the first inference batch
    warmup_s: float = 0.0  # from the start until the first batch came out of the model stage
    last_frame_s: float = 0.0  # from the start until the last frame came out of the model stage

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
