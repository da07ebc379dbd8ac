"""The bundled sample set for the Evaluate tab: COCO keypoint annotations beside the example photos they describe.

Why: without it a visitor needs their own COCO annotations to see the tab do anything. The sample is the examples
folder's ``keypoints_sample.json`` (the four COCO val2017 photos' person-keypoint ground truth, see
../shared/data/README.md); a folder without it (or missing one of its photos) simply offers no sample.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

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
