"""Where the images of a model run come from: folders, loose files or zip archives, matched to the annotations.

Zip archives are read in place (no extraction), and an entry whose name points outside the archive (absolute, or
with ``..``) makes the whole archive refused: such names are how a crafted zip overwrites files when unpacked, and an
archive that contains them is not one to trust with anything else either.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rfdetr_demo.evaluate.dataset import EvalDataset, EvaluationError, ImageEntry

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
DEFAULT_MAX_EVAL_IMAGES = 500
# A zip entry is read into memory whole: refuse entries no photo needs (a zip bomb inflates to gigabytes).
MAX_ZIP_ENTRY_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class ImageSource:
    """One image file on disk or inside a zip archive; ``name`` is its path relative to what the user gave."""

    name: str
    path: Path
    member: str | None = None  # the entry inside the zip at ``path``

    def read(self) -> Path | bytes:
        if self.member is None:
            return self.path
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(self.member)


def _unsafe_member(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return pure.is_absolute() or ".." in pure.parts or (len(name) > 1 and name[1] == ":")


def zip_sources(path: Path) -> list[ImageSource]:
    """Image entries of a zip archive; refuses archives with entries pointing outside them."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise EvaluationError(f"images: {path.name} is not a readable zip archive ({exc})") from exc
    names = [i.filename for i in entries]
    huge = [i.filename for i in entries if i.file_size > MAX_ZIP_ENTRY_BYTES]
    if huge:
        limit = MAX_ZIP_ENTRY_BYTES // 2**20
        raise EvaluationError(f"images: zip {path.name}: entry {huge[0]!r} inflates to more than {limit} MB; refused")
    bad = [n for n in names if _unsafe_member(n)]
    if bad:
        raise EvaluationError(
            f"images: zip {path.name} has an entry pointing outside the archive ({bad[0]!r}); refused"
        )
    return [
        ImageSource(n.replace("\\", "/"), path, n)
        for n in sorted(names)
        if PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS and not PurePosixPath(n).name.startswith(".")
    ]


def collect_sources(inputs: Iterable[str | Path]) -> list[ImageSource]:
    """Folders (searched recursively), image files and zip archives → image sources."""
    sources: list[ImageSource] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            sources += [
                ImageSource(p.relative_to(path).as_posix(), p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            ]
        elif path.is_file() and path.suffix.lower() == ".zip":
            sources += zip_sources(path)
        elif path.is_file():
            sources.append(ImageSource(path.name, path))
        else:
            raise EvaluationError(f"images: no such file or folder: {raw}")
    return sources


def match_images(
    dataset: EvalDataset, sources: list[ImageSource], max_images: int = DEFAULT_MAX_EVAL_IMAGES
) -> list[tuple[ImageEntry, ImageSource]]:
    """Pair every annotated image with its file (by relative path, else by unique base name).

    Every image the annotations list must be there: scoring without some of them would count their people as missed.
    """
    if len(dataset.images) > max_images:
        raise EvaluationError(
            f"the annotations list {len(dataset.images)} images; a model run evaluates at most {max_images} "
            "(--max-eval-images): split the annotation file, or evaluate a predictions file instead"
        )
    by_path = {s.name: s for s in sources}
    by_base: dict[str, list[ImageSource]] = {}
    for s in sources:
        by_base.setdefault(PurePosixPath(s.name).name, []).append(s)
    pairs, missing = [], []
    for entry in dataset.images.values():
        wanted = entry.file_name.replace("\\", "/")
        found = by_path.get(wanted)
        if found is None:
            candidates = by_base.get(PurePosixPath(wanted).name, [])
            found = candidates[0] if len(candidates) == 1 else None
        if found is None:
            missing.append(entry.file_name)
        else:
            pairs.append((entry, found))
    if missing:
        shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
        raise EvaluationError(
            f"{len(missing)} of {len(dataset.images)} images named in the annotations are missing from the "
            f"images given: {shown}"
        )
    return pairs


# The bundled sample set for the Evaluate tab: COCO keypoint annotations beside the example photos they describe.
SAMPLE_ANNOTATIONS = "keypoints_sample.json"


@dataclass(frozen=True)
class SampleSet:
    annotations: Path
    images: tuple[Path, ...]

    def copy_to(self, folder: Path) -> SampleSet:
        """Copies in ``folder`` (a request's temp folder: Gradio serves files from there, not from any folder)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = [Path(shutil.copy2(p, folder / p.name)) for p in (self.annotations, *self.images)]
        return SampleSet(paths[0], tuple(paths[1:]))


def find_sample(folder: Path) -> SampleSet | None:
    """The sample in ``folder``, or None when its annotation file or any photo it names is missing."""
    annotations = folder / SAMPLE_ANNOTATIONS
    if not annotations.is_file():
        return None
    try:
        names = [str(image["file_name"]) for image in json.loads(annotations.read_text())["images"]]
    except (ValueError, KeyError, TypeError):
        return None
    images = tuple(folder / Path(name).name for name in names)
    return SampleSet(annotations, images) if images and all(p.is_file() for p in images) else None
