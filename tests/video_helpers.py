"""Synthesize small test clips with PyAV (odd sizes, rotation metadata, audio tracks, COCO-image clips)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_clip(
    path: Path,
    frames: int | list[np.ndarray] = 10,
    size: tuple[int, int] = (160, 96),
    fps: int = 10,
    codec: str = "libx264",
    audio: str | None = None,
    rotation: int | None = None,
    frame_fn: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """Write a clip; ``frames`` is a count (gray ramp or ``frame_fn(i)``) or a list of RGB frames."""
    w, h = size
    images = frames if isinstance(frames, list) else None
    n = len(images) if images is not None else int(frames)
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = w, h
    if codec == "libx264":
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
    elif codec == "png":
        stream.pix_fmt = "rgb24"
    if rotation:
        stream.set_display_rotation(rotation)
    a_stream = None
    if audio:
        a_stream = container.add_stream(audio, rate=16000)
        a_stream.layout = "mono"
    for i in range(n):
        if images is not None:
            img = images[i]
        elif frame_fn is not None:
            img = frame_fn(i)
        else:
            img = np.full((h, w, 3), (i * 10) % 255, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
            container.mux(packet)
    if n == 0:
        container.start_encoding()  # write a valid header with a video track but no frames
    for packet in stream.encode():
        container.mux(packet)
    if a_stream is not None:
        total = int(16000 * n / fps)
        step = a_stream.codec_context.frame_size or 1024
        fmt = a_stream.format.name
        for k in range(0, total, step):
            m = min(step, total - k)
            wave = (np.sin(np.arange(k, k + m) / 16000 * 2 * np.pi * 440) * 0.3).astype(np.float32)[None]
            data = wave if fmt in ("fltp", "flt") else (wave * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate = 16000
            frame.pts = k
            frame.time_base = Fraction(1, 16000)
            for packet in a_stream.encode(frame):
                container.mux(packet)
        for packet in a_stream.encode():
            container.mux(packet)
    container.close()
    return path


def decode(path: Path) -> dict:
    """Decode an output file fully: codec, pix_fmt, size, rate, frames (RGB) and audio streams."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        out = {
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "size": (v.width, v.height),
            "fps": Fraction(v.average_rate),
            "audio": [s.codec_context.name for s in c.streams.audio],
            "audio_duration": [float(s.duration * s.time_base) if s.duration else None for s in c.streams.audio],
        }
        out["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return out
