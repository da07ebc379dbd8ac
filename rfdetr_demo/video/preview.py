"""Tell the user when the browser cannot preview an upload that the pipeline will still process.

Gradio's input ``<video>`` plays the uploaded file as is; for codecs browsers cannot decode (MPEG-4 Part 2, HEVC on
many systems, ProRes, ...) its frontend shows a red "Video not playable" toast and an "Error" badge, although PyAV
decodes the clip and the annotated result (H.264) plays fine. Gradio has no option to silence that, and transcoding
every upload just for a preview would cost a full encode, so we read the codec from the header (cheap) and say so
next to the player instead.
"""

from __future__ import annotations

from pathlib import Path

from rfdetr_demo.video.reader import VideoLoadError, probe

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
