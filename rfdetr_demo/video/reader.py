"""Decode a video with PyAV into upright RGB frames, honouring rotation metadata and a segment.

Why PyAV rather than OpenCV: it reads the display matrix phones write instead of rotating the pixels, it gives exact
timestamps for seeking and for the exports, and it reports corrupt or empty files as errors we can explain.
The segment cap is checked against the *requested* range before any work, and again while decoding for files whose
header does not say how long they are, so a long clip is refused with a message and never silently truncated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rfdetr_demo.errors import UserError


def codec_threads() -> int:
    """Codec threads for decode and encode: 1 on small CPUs, else 0 (the codec's automatic choice).

    On a 2-4 core host torch's OpenMP threads already use every core for inference; x264's frame threads and
    the decoder's threads then oversubscribe the CPU and OpenMP stalls waiting for descheduled peers. Measured on 2
    cores (bench/bench_video.py): automatic codec threads made the whole pipeline ~17 % slower than a plain loop.
    """
    return 1 if (os.cpu_count() or 1) <= 4 else 0


class VideoLoadError(UserError):
    """The file cannot be used as a video; the message is meant for the page."""


class VideoTooLongError(UserError):
    """The requested segment is longer than the server allows; the message says how to fix the request."""


@dataclass(frozen=True)
class VideoInfo:
    """What the header says about a clip, with sizes already rotated to how the clip is displayed."""

    width: int
    height: int
    fps: Fraction
    duration: float | None  # seconds; None when the container does not say
    frame_count: int | None  # header's count; None when unknown
    rotation: int  # degrees counter-clockwise applied to decoded frames (0, 90, 180, 270)
    has_audio: bool
    codec: str


@dataclass(frozen=True)
class Segment:
    """A validated [start, end) range in seconds; ``end`` None means the end of the clip."""

    start: float
    end: float | None

    @property
    def length(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class Frame:
    index: int  # index of the frame in the source clip (counted from the clip's first frame)
    timestamp: float  # seconds from the clip's start
    rgb: np.ndarray


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise VideoLoadError(f"Video file not found: {p.name}")
    if p.stat().st_size == 0:
        raise VideoLoadError("The uploaded video file is empty (0 bytes).")
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        # The decoder's own words (an errno, the server's path) go to the log with the cause, not to the visitor.
        raise VideoLoadError(
            f"Could not read {p.name} as a video: it is not a video file, or it is damaged. "
            "Try an MP4, MOV, WebM or MKV file."
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoLoadError("The file has no video track.")
    return container


def _quarter_turns(rotation: float | int | None) -> int:
    """Display rotation (degrees counter-clockwise) → number of np.rot90 quarter turns."""
    return round(float(rotation or 0) / 90.0) % 4


def probe(path: str | Path) -> VideoInfo:
    """Read the header and the first frame (the only reliable source of the rotation), or raise VideoLoadError."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        fps = stream.average_rate or stream.guessed_rate or Fraction(25, 1)
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as exc:
            raise VideoLoadError(f"The video could not be decoded ({exc}).") from exc
        if first is None:
            raise VideoLoadError("The video has no frames.")
        turns = _quarter_turns(getattr(first, "rotation", 0))
        w, h = first.width, first.height
        if turns % 2:
            w, h = h, w
        return VideoInfo(
            width=w,
            height=h,
            fps=Fraction(fps),
            duration=duration,
            frame_count=int(stream.frames) if stream.frames else None,
            rotation=turns * 90,
            has_audio=bool(container.streams.audio),
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def plan_segment(info: VideoInfo, start: float | None, end: float | None, max_seconds: float | None) -> Segment:
    """Validate start/end against the clip and the server cap; raise with a message that says what to change."""
    start = float(start or 0.0)
    end_f = float(end) if end not in (None, "") and float(end) > 0 else None
    if start < 0:
        raise UserError(f"start must be ≥ 0 s, got {start}")
    if info.duration is not None:
        if start >= info.duration:
            raise UserError(f"start ({start:.2f} s) is at or after the end of the clip ({info.duration:.2f} s).")
        if end_f is None or end_f > info.duration:
            end_f = info.duration if end_f is None else min(end_f, info.duration)
    if end_f is not None and end_f <= start:
        raise UserError(f"end ({end_f:.2f} s) must be after start ({start:.2f} s).")
    seg = Segment(start, end_f)
    if max_seconds and seg.length is not None and seg.length > max_seconds + 1e-6:
        raise VideoTooLongError(
            f"The requested segment is {seg.length:.1f} s long, but this server processes at most "
            f"{max_seconds:g} s of video per request. Set start/end to a range of at most {max_seconds:g} s."
        )
    return seg


def expected_frames(info: VideoInfo, seg: Segment) -> int | None:
    """Best estimate of how many frames the segment has (for the progress bar)."""
    if seg.length is None:
        return None
    n = max(1, math.ceil(seg.length * float(info.fps) - 1e-6))
    if info.frame_count and seg.start == 0 and info.duration and seg.end and seg.end >= info.duration - 1e-6:
        n = info.frame_count
    return max(1, n)


def iter_frames(
    path: str | Path, seg: Segment, max_seconds: float | None = None, info: VideoInfo | None = None
) -> Iterator[Frame]:
    """Yield upright RGB frames of the segment with their source index and timestamp.

    ``info`` is the clip's :func:`probe` (probed once per request): its frame rate and rotation are used as they are;
    without it they are read from the stream and each frame.

    Decoding errors after the first frame end the clip with :class:`VideoLoadError` (never a silent cut), and a
    clip that runs past ``start + max_seconds`` without a known length raises :class:`VideoTooLongError`.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        if codec_threads() != 1:
            stream.thread_type = "AUTO"  # frame threads: decoding overlaps itself on machines with cores to spare
        fps = float(info.fps if info is not None else (stream.average_rate or stream.guessed_rate or 25))
        tb = float(stream.time_base) if stream.time_base else 1.0 / fps
        # Timestamps are counted from the stream's own start (some files start at a non-zero pts).
        offset = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        if seg.start > 0:
            container.seek(int((seg.start + offset) / tb), stream=stream, backward=True, any_frame=False)
        counter = 0
        try:
            for frame in container.decode(stream):
                ts = float(frame.pts * tb) - offset if frame.pts is not None else counter / fps
                counter += 1
                if ts < seg.start - 0.5 / fps:
                    continue
                if seg.end is not None and ts >= seg.end - 1e-6:
                    break
                if max_seconds and seg.end is None and ts - seg.start > max_seconds:
                    raise VideoTooLongError(
                        f"The clip is longer than the {max_seconds:g} s this server processes per request. "
                        f"Set an end time to process a shorter range."
                    )
                rgb = frame.to_ndarray(format="rgb24")
                turns = info.rotation // 90 if info is not None else _quarter_turns(getattr(frame, "rotation", 0))
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
                yield Frame(round(ts * fps), ts, rgb)
        except av.error.FFmpegError as exc:
            raise VideoLoadError(f"The video could not be decoded past frame {counter} ({exc}).") from exc
    finally:
        container.close()


# Tell the user when the browser cannot preview an upload that the pipeline will still process.
# Video codecs that current desktop browsers decode (AV1/VP9 on Safari only with recent hardware/OS).
BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})
CODEC_NAMES = {
    "mpeg4": "MPEG-4 Part 2",
    "hevc": "HEVC (H.265)",
    "prores": "Apple ProRes",
    "mjpeg": "Motion JPEG",
    "mpeg2video": "MPEG-2",
    "msmpeg4v3": "MS MPEG-4 (DivX 3)",
    "png": "PNG",
}
PREVIEW_HELP = (
    "Any format FFmpeg reads works. If the preview above says *Video not playable*, your browser cannot show that "
    "codec (e.g. MPEG-4 Part 2); **processing still works** and the annotated video is browser-friendly H.264."
)


def preview_note(path: str | Path | None) -> str:
    """The help line under the input player: the general hint, or a specific one for a codec browsers cannot show."""
    if not path:
        return PREVIEW_HELP
    try:
        codec = probe(path).codec
    except VideoLoadError as exc:
        return f"⚠️ {exc}"
    if codec in BROWSER_CODECS:
        return PREVIEW_HELP
    name = CODEC_NAMES.get(codec, codec)
    return (
        f"ℹ️ This clip is **{name}**, which browsers cannot play, so the preview above shows *Video not playable*. "
        "**Processing still works**: press *Process video*; the annotated result is H.264 and plays here."
    )
