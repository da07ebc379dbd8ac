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
from PIL import Image, ImageOps, UnidentifiedImageError

from rfdetr_demo.errors import UserError

# Above this many pixels we refuse outright: decoding alone would take gigabytes.
MAX_DECODE_PIXELS = 250_000_000
# Images whose long side exceeds this are downscaled before inference and rendering: the model sees at most
# ~576-1024 px anyway, and full-size renders of a 50 MP photo would cost memory and seconds per view.
DEFAULT_MAX_SIDE = 4096

Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height

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


def _to_rgb(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(np.nanmax(arr)) if arr.size else 1.0, 1.0)
        if mode in {"I", "F"} and hi <= 255:
            hi = 255.0
        arr8 = np.clip(np.nan_to_num(arr) / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"Converted {mode} (high bit depth) image to 8-bit RGB.")
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("Transparent areas were placed on a white background.")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("Converted CMYK image to RGB.")
    elif mode in {"L", "1"}:
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
        with Image.open(fp) as img:
            width, height = img.size
            if width * height > MAX_DECODE_PIXELS:
                raise ImageLoadError(
                    f"The image is {width}x{height} ({width * height / 1e6:.0f} MP); the limit is "
                    f"{MAX_DECODE_PIXELS / 1e6:.0f} MP. Please downscale it first."
                )
            # JPEG can decode directly at 1/2, 1/4 or 1/8 scale: huge photos never exist at full size in memory.
            if max(width, height) > 2 * max_side and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                notes.append("Animated or multi-page file: only the first frame is used.")
            img = ImageOps.exif_transpose(img)
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
        raise ImageLoadError(f"The image {label} is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(f"Could not read {label} as an image. {SUPPORTED_HINT}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"The image {label} is corrupt or truncated ({exc}). {SUPPORTED_HINT}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ImageLoadError(f"The image {label} has an unsupported layout {rgb.shape}.")
    return LoadedImage(rgb=rgb, original_size=original_size, notes=notes)
