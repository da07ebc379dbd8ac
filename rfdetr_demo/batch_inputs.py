"""The batch mode's inputs: which files a command line names, and a result record per file.

Folders expand to their image and video files (sorted, each file once); output names are made unique so two inputs
called ``a/x.jpg`` and ``b/x.jpg`` never overwrite each other's exports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rfdetr_demo.exports import safe_stem

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


@dataclass
class FileResult:
    """What happened to one input; ``status`` is ok, skipped or error."""

    path: str
    kind: str
    status: str
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    instances: int | None = None
    inference_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "image"  # explicit files with other suffixes are tried as images (the decoder gives a clear error)


def collect_inputs(paths: Iterable[str | Path], recursive: bool = False) -> tuple[list[Path], list[FileResult]]:
    """Expand folders (known image/video suffixes only, sorted); missing paths become error results."""
    found: list[Path] = []
    missing: list[FileResult] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
            )
        elif path.is_file():
            found.append(path)
        else:
            missing.append(FileResult(str(raw), "unknown", "error", "no such file or folder"))
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, missing


class StemAllocator:
    """Output names from input names, unique within one run (two folders may both hold ``img.jpg``)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def name_for(self, path: Path) -> str:
        """A safe file name keeping the input's suffix, e.g. ``000000000785.jpg`` or ``img_2.jpg``."""
        stem = safe_stem(path.name, default="input")
        candidate, n = stem, 1
        while candidate.lower() in self._used:
            n += 1
            candidate = f"{stem}_{n}"
        self._used.add(candidate.lower())
        return candidate + path.suffix.lower()
