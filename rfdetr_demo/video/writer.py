"""Write browser-playable H.264 MP4 with PyAV, then mux the source's audio track back in.

Chromium plays MP4 only with H.264 (or AV1) video in yuv420p at even dimensions; Gradio re-encodes anything else
with ffmpeg (slow, and not installed everywhere), so we produce exactly that. libx264 ships in the PyAV wheels.

Frames are encoded to a hidden ``.partial`` file; :meth:`VideoWriter.finish` remuxes it (plus the source audio,
packet copy, trimmed to the processed segment) into the final path with the index at the front (``faststart``,
so playback starts before the download ends). A cancelled or failed run never leaves a file at the final path,
so a partial output cannot be served as if complete.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rfdetr_demo.video.reader import codec_threads

log = logging.getLogger(__name__)

# Audio codecs an MP4 can carry that Chromium also plays: copied as they are; others are re-encoded to AAC.
COPYABLE_AUDIO = {"aac", "mp3", "opus", "flac", "alac"}


def even_frame(rgb: np.ndarray) -> np.ndarray:
    """Pad an odd width/height by one replicated pixel: yuv420p subsamples chroma 2×2, so x264 needs even sizes.

    Padding (rather than cropping or scaling) keeps every source pixel exactly where the keypoints say it is.
    """
    h, w = rgb.shape[:2]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return rgb
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")


class VideoWriter:
    """H.264/yuv420p MP4 at a constant frame rate; the size is fixed by the first frame (padded to even)."""

    def __init__(self, path: str | Path, fps: Fraction | float, crf: int = 23, preset: str | None = None) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.stem}.partial.mp4")
        self.fps = Fraction(fps).limit_denominator(100000)
        self.crf = crf
        # Small CPUs spend their cores on inference: "superfast" encodes 960x540 in ~15 ms instead of ~25 ms
        # ("veryfast") for a ~17 % larger file; hosts with cores to spare keep the smaller "veryfast" output.
        self.preset = preset or ("superfast" if codec_threads() == 1 else "veryfast")
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the encoded video
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    def _open(self, width: int, height: int) -> None:
        self._container = av.open(str(self.partial), mode="w", format="mp4")
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset, "threads": str(codec_threads())}
        self._stream = stream
        self.size = (width, height)

    def write(self, rgb: np.ndarray) -> None:
        rgb = even_frame(rgb)
        h, w = rgb.shape[:2]
        if self._container is None:
            self._open(w, h)
        if self.size != (w, h):
            raise ValueError(f"frame size changed from {self.size} to {(w, h)}")
        assert self._container is not None and self._stream is not None
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1) / self.fps
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _close_partial(self) -> None:
        if self._container is None or self._stream is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def abort(self) -> None:
        """Stop and delete everything written (cancel or error)."""
        try:
            if self._container is not None:
                self._container.close()
        except Exception:
            log.debug("closing partial video failed", exc_info=True)
        self._container = None
        self.partial.unlink(missing_ok=True)

    def finish(self, audio_source: str | Path | None = None, start: float = 0.0, end: float | None = None) -> Path:
        """Flush the encoder and publish the final MP4 (with the source audio of [start, end) when there is one)."""
        if self.frames == 0:
            self.abort()
            raise ValueError("no frames were written")
        self._close_partial()
        try:
            _remux(self.partial, self.path, audio_source, start, end)
        finally:
            self.partial.unlink(missing_ok=True)
        return self.path


def _packets(container: av.container.InputContainer, stream: av.stream.Stream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.dts is not None and packet.size:
            yield packet


def _audio_packets(
    container: av.container.InputContainer, src: av.audio.stream.AudioStream, start: float, end: float | None
) -> Iterator[av.Packet]:
    """Source audio packets within [start, end), shifted to start at 0 (packet copy, no decoding)."""
    tb = src.time_base
    origin = (src.start_time or 0) + round(start / tb)
    if start > 0:
        container.seek(origin, stream=src, backward=True)
    for packet in _packets(container, src):
        t = float((packet.pts - (src.start_time or 0)) * tb) if packet.pts is not None else 0.0
        if t < start - 1e-3:
            continue
        if end is not None and t >= end:
            break
        packet.pts -= origin
        packet.dts -= origin
        yield packet


def _transcoded_audio(
    container: av.container.InputContainer,
    src: av.audio.stream.AudioStream,
    out: av.audio.stream.AudioStream,
    start: float,
    end: float | None,
) -> Iterator[av.Packet]:
    """Decode → AAC for source codecs MP4/Chromium cannot carry (e.g. PCM from a .mov or .avi)."""
    resampler = av.AudioResampler(format=out.format.name, layout=out.layout.name, rate=out.rate)
    if start > 0:
        container.seek(int(start / src.time_base) + (src.start_time or 0), stream=src, backward=True)
    samples = 0
    for frame in container.decode(src):
        t = float(frame.time or 0.0) - float((src.start_time or 0) * src.time_base)
        if t < start - 1e-3:
            continue
        if end is not None and t >= end:
            break
        for rf in resampler.resample(frame):
            rf.pts = samples
            rf.time_base = Fraction(1, out.rate)
            samples += rf.samples
            yield from out.encode(rf)
    for rf in resampler.resample(None):
        rf.pts = samples
        rf.time_base = Fraction(1, out.rate)
        samples += rf.samples
        yield from out.encode(rf)
    yield from out.encode(None)


def _remux(video_path: Path, out_path: Path, audio_source: str | Path | None, start: float, end: float | None) -> None:
    """Copy the encoded video (and the source audio) into ``out_path``, interleaved by time, index first."""
    tmp_out = out_path.with_name(f".{out_path.stem}.muxing.mp4")
    v_in = av.open(str(video_path))
    a_in = None
    try:
        if audio_source is not None:
            try:
                candidate = av.open(str(audio_source))
                if candidate.streams.audio:
                    a_in = candidate
                else:
                    candidate.close()
            except av.error.FFmpegError:
                log.warning("could not reopen %s for its audio", audio_source)
        out = av.open(str(tmp_out), mode="w", format="mp4", options={"movflags": "+faststart"})
        try:
            v_src = v_in.streams.video[0]
            v_out = out.add_stream_from_template(v_src)
            streams: list[Iterator[tuple[float, int, av.Packet]]] = []

            def keyed(it: Iterator[av.Packet], order: int) -> Iterator[tuple[float, int, av.Packet]]:
                for p in it:
                    yield float((p.dts if p.dts is not None else p.pts or 0) * p.time_base), order, p

            def retarget(it: Iterator[av.Packet], stream: av.stream.Stream) -> Iterator[av.Packet]:
                for p in it:
                    p.stream = stream
                    yield p

            streams.append(keyed(retarget(_packets(v_in, v_src), v_out), 0))
            if a_in is not None:
                a_src = a_in.streams.audio[0]
                if a_src.codec_context.name in COPYABLE_AUDIO:
                    a_out = out.add_stream_from_template(a_src)
                    audio = retarget(_audio_packets(a_in, a_src, start, end), a_out)
                else:
                    a_out = out.add_stream("aac", rate=a_src.rate or 48000)
                    a_out.layout = "stereo" if (a_src.channels or 2) > 1 else "mono"
                    audio = _transcoded_audio(a_in, a_src, a_out, start, end)
                streams.append(keyed(audio, 1))
            for _, _, packet in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
                out.mux(packet)
        finally:
            out.close()
    finally:
        v_in.close()
        if a_in is not None:
            a_in.close()
    tmp_out.replace(out_path)
