"""Decode user images into RGB uint8 arrays the model and annotators can use.

Browsers and phones send many kinds of files: rotated JPEGs (EXIF orientation), grayscale, RGBA/palette PNGs,
16-bit TIFF/PNG and CMYK JPEGs. The model wants 8-bit RGB in the orientation a person sees, so everything is
normalised here, once, and each conversion that changes what the user sees is reported as a note.

Decoding always goes through PIL on a path or bytes we own; user strings are never handed to ``model.predict``
(which would fetch URLs or open arbitrary paths).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from rfdetr_demo.defaults import MAX_IMAGE_SIDE
from rfdetr_demo.errors import UserError

# Above this many pixels we refuse outright: decoding alone would take gigabytes.
MAX_DECODE_PIXELS = 250_000_000
# Only JPEG decodes at a reduced size (``draft``); other formats decode in full first, so their pixel cap keeps that
# buffer (PIL's bytes per pixel, plus a full-size conversion where PIL cannot reduce the mode) within this budget.
DECODE_BUDGET_BYTES = 800_000_000
_DECODED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}  # others: 4
_CONVERTED_FULL_SIZE = {"1", "P"}  # converted to RGB(A) before they can be reduced: +4 bytes per pixel
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}
_BAND_PIXELS = 4_000_000  # rows of a 16-bit image are converted in bands of about this many pixels
DEFAULT_MAX_SIDE = MAX_IMAGE_SIDE

Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_EXIF_TRANSPOSE = {  # as ImageOps.exif_transpose, applied to the already reduced image
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

SUPPORTED_HINT = "Supported formats: JPEG, PNG, WebP, BMP, TIFF, GIF."


class ImageLoadError(UserError):
    """A user-facing reason why a file could not be used as an image."""


@dataclass
class LoadedImage:
    """An RGB uint8 image plus what was done to it on the way in."""

    rgb: np.ndarray
    original_size: tuple[int, int]  # (width, height) after EXIF rotation, before any downscale
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def scale(self) -> float:
        """Factor from original pixel coordinates to ``rgb`` coordinates (1.0 when not downscaled)."""
        return self.rgb.shape[1] / self.original_size[0]


def pixel_cap(fmt: str | None, mode: str) -> int:
    """The most pixels accepted for an image of this format and decoded mode."""
    if fmt == "JPEG":
        return MAX_DECODE_PIXELS
    per_pixel = _DECODED_BYTES.get(mode, 4) + (4 if mode in _CONVERTED_FULL_SIZE else 0)
    return min(MAX_DECODE_PIXELS, DECODE_BUDGET_BYTES // per_pixel)


def _reduce_16bit(img: Image.Image, k: int) -> Image.Image:
    """A 16-bit gray image as 8-bit ``L``, box-averaged by ``k``, converted band by band (no full-size copy)."""
    w2, h2 = max(1, img.size[0] // k), max(1, img.size[1] // k)
    out = np.empty((h2, w2), dtype=np.uint8)
    rows = max(1, _BAND_PIXELS // (w2 * k * k))
    full = k * k * 65535
    for y0 in range(0, h2, rows):
        y1 = min(h2, y0 + rows)
        band = np.asarray(img.crop((0, y0 * k, w2 * k, y1 * k)))
        total = band.reshape(y1 - y0, k, w2, k).sum(axis=(1, 3), dtype=np.uint64)
        out[y0:y1] = (total * 255 + full // 2) // full
    return Image.fromarray(out, mode="L")


def _reduce(img: Image.Image, max_side: int, notes: list[str]) -> Image.Image:
    """Shrink a decoded image by a whole factor while it is still at least ``max_side`` (before any full-size copy)."""
    k = max(1, max(img.size) // max_side)
    if img.mode in _SIXTEEN_BIT:
        notes.append(f"Converted {img.mode} (high bit depth) image to 8-bit RGB.")
        return _reduce_16bit(img, k)
    if k == 1:
        return img
    if img.mode in _CONVERTED_FULL_SIZE:
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    return img.reduce(k)


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in {"I", "F"}:
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        hi = max(float(arr.max()) if arr.size else 1.0, 255.0)
        arr8 = np.clip(arr * (255.0 / hi) + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"Converted {mode} (high bit depth) image to 8-bit RGB.")
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("Transparent areas were placed on a white background.")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("Converted CMYK image to RGB.")
    elif mode in {"L", "1"} and not any("high bit depth" in n for n in notes):
        notes.append("Grayscale image: the model sees it as gray RGB.")
    return img.convert("RGB")


def load_image(source: str | os.PathLike[str] | bytes, max_side: int = DEFAULT_MAX_SIDE) -> LoadedImage:
    """Decode ``source`` (a local path we control, or raw bytes) into an upright RGB uint8 image.

    Raises :class:`ImageLoadError` with a message meant for the person who uploaded the file.
    """
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError("The uploaded file is empty.")
        fp: io.BytesIO | Path = io.BytesIO(source)
        label = "the uploaded data"
    else:
        fp = Path(source)
        label = fp.name
        try:
            if fp.stat().st_size == 0:
                raise ImageLoadError(f"The file {label} is empty.")
        except FileNotFoundError as exc:
            raise ImageLoadError(f"The file {label} does not exist.") from exc
    notes: list[str] = []
    try:
        with Image.open(fp) as decoded:
            img = decoded
            width, height = img.size
            cap = pixel_cap(img.format, img.mode)
            if width * height > cap:
                raise ImageLoadError(
                    f"The image is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is "
                    f"{cap / 1e6:.0f} MP{'' if cap == MAX_DECODE_PIXELS else f' for {img.format} files'}. "
                    "Please downscale it first."
                )
            # JPEG can decode directly at 1/2, 1/4 or 1/8 scale: huge photos never exist at full size in memory.
            if max(width, height) > 2 * max_side and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                notes.append("Animated or multi-page file: only the first frame is used.")
            # Shrink first, then rotate and convert the small copy; the full-size decode is freed at once.
            img = _reduce(img, max_side, notes)
            if img is not decoded:
                decoded.close()
            if orientation in _EXIF_TRANSPOSE:
                img = img.transpose(_EXIF_TRANSPOSE[orientation])
            img = _to_rgb(img, notes)
            # Report the size a person sees (EXIF-rotated, before any JPEG draft decimation).
            original_size = (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
            if max(img.size) > max_side:
                ratio = max_side / max(img.size)
                new_size = (max(1, round(img.size[0] * ratio)), max(1, round(img.size[1] * ratio)))
                img = img.resize(new_size, Image.Resampling.LANCZOS)
            if img.size != original_size:
                notes.append(
                    f"Downscaled from {original_size[0]}x{original_size[1]} to {img.size[0]}x{img.size[1]} "
                    f"(longest side capped at {max_side} px to bound memory); coordinates refer to the "
                    "downscaled image."
                )
            rgb = np.asarray(img, dtype=np.uint8).copy()
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"The image {label} has too many pixels to decode safely.") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"Could not read {label} as an image. {SUPPORTED_HINT}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"The image {label} is corrupt or truncated. {SUPPORTED_HINT}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ImageLoadError(f"The image {label} has an unsupported layout {rgb.shape}.")
    return LoadedImage(rgb=rgb, original_size=original_size, notes=notes)
