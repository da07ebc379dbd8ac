"""The user's COCO keypoint annotation file, checked and ready for pycocotools.

People bring annotation files from many tools (CVAT, Label Studio, Roboflow exports, hand-written scripts), and
pycocotools fails on small gaps with bare ``KeyError``s or wrong numbers: ``area`` and ``iscrowd`` missing, ``id``
0 (which its matcher reads as "unmatched"), ``num_keypoints`` absent. Everything is validated here once, with a
message that names the file and the entry, and harmless gaps are filled with a note saying how.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfdetr_demo.errors import UserError
from rfdetr_demo.results.schema import KeypointSchema, SchemaError, oks_sigmas, schema_from_mapping


class EvaluationError(UserError):
    """A user-facing, one-line reason why an evaluation cannot run on these inputs."""


@dataclass(frozen=True)
class ImageEntry:
    id: int
    file_name: str
    width: int | None
    height: int | None


@dataclass
class EvalDataset:
    """Validated ground truth: the COCO object pycocotools scores against, and what the report needs."""

    coco: Any  # pycocotools.coco.COCO
    schema: KeypointSchema
    sigmas: np.ndarray
    sigma_source: str
    category_ids: list[int]
    category_names: dict[int, str]
    images: dict[int, ImageEntry]
    name: str = "annotations"
    notes: list[str] = field(default_factory=list)

    @property
    def num_keypoints(self) -> int:
        return self.schema.num_keypoints

    @property
    def num_people(self) -> int:
        """Annotated people COCOeval scores (not crowd, at least one labelled joint)."""
        return sum(1 for a in self.coco.dataset["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0)


def parse_json(source: str | Path | bytes, what: str) -> tuple[Any, str]:
    """Read and parse a JSON file; returns (data, display name). Errors say which file and where."""
    if isinstance(source, bytes):
        name, raw = what, source
    else:
        path = Path(source)
        name = path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise EvaluationError(f"{what} {name}: cannot read the file ({exc.strerror or exc})") from exc
    try:
        return json.loads(raw.decode("utf-8-sig")), name
    except UnicodeDecodeError as exc:
        raise EvaluationError(f"{what} {name}: not JSON (not UTF-8 text)") from exc
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{what} {name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _keypoint_categories(data: dict[str, Any], name: str) -> list[dict[str, Any]]:
    cats = data.get("categories")
    if not isinstance(cats, list):
        raise EvaluationError(f"annotations {name}: no 'categories' list (is this a COCO annotation file?)")
    keypoint_cats = [c for c in cats if isinstance(c, dict) and isinstance(c.get("keypoints"), list) and c["keypoints"]]
    if not keypoint_cats:
        raise EvaluationError(
            f"annotations {name}: no keypoint category (no category has a 'keypoints' list of joint names); "
            "a COCO keypoint file is needed, not a detection-only one"
        )
    sizes = {len(c["keypoints"]) for c in keypoint_cats}
    if len(sizes) > 1:
        raise EvaluationError(f"annotations {name}: keypoint categories have different numbers of keypoints {sizes}")
    for c in keypoint_cats:
        if not isinstance(c.get("id"), int):
            raise EvaluationError(f"annotations {name}: category {c.get('name')!r} has no integer 'id'")
    return keypoint_cats


def _images(data: dict[str, Any], name: str) -> dict[int, ImageEntry]:
    raw = data.get("images")
    if not isinstance(raw, list) or not raw:
        raise EvaluationError(f"annotations {name}: no 'images' list, or it is empty")
    images: dict[int, ImageEntry] = {}
    for i, img in enumerate(raw):
        if not isinstance(img, dict) or not isinstance(img.get("id"), int) or not isinstance(img.get("file_name"), str):
            raise EvaluationError(f"annotations {name}: images[{i}] needs an integer 'id' and a 'file_name'")
        if img["id"] in images:
            raise EvaluationError(f"annotations {name}: image id {img['id']} appears twice")
        w, h = img.get("width"), img.get("height")
        images[img["id"]] = ImageEntry(
            img["id"], img["file_name"], int(w) if _number(w) else None, int(h) if _number(h) else None
        )
    return images


def _check_annotation(ann: Any, i: int, k: int, images: dict[int, ImageEntry], name: str) -> dict[str, Any]:
    """One person: keypoints of length 3K, a known image; ``bbox``/``area``/``iscrowd``/``num_keypoints`` filled."""
    where = f"annotations {name}: annotations[{i}]"
    if not isinstance(ann, dict):
        raise EvaluationError(f"{where} is not an object")
    if ann.get("image_id") not in images:
        raise EvaluationError(f"{where} refers to image id {ann.get('image_id')!r}, which 'images' does not list")
    kps = ann.get("keypoints")
    if not isinstance(kps, list) or not all(_number(v) for v in kps):
        raise EvaluationError(f"{where} has no 'keypoints' list of numbers")
    if len(kps) != 3 * k:
        raise EvaluationError(
            f"{where} has {len(kps)} keypoint numbers; its category names {k} keypoints ({3 * k} numbers: x, y, v)"
        )
    out = dict(ann)
    pts = np.asarray(kps, dtype=float).reshape(k, 3)
    labelled = pts[:, 2] > 0
    bbox = ann.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        xy = pts[labelled, :2] if labelled.any() else np.zeros((1, 2))
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        out["bbox"] = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
    if not _number(ann.get("area")):
        out["area"] = float(out["bbox"][2] * out["bbox"][3])
    out["iscrowd"] = int(bool(ann.get("iscrowd", 0)))
    out["num_keypoints"] = int(labelled.sum())
    return out


def _annotations(
    data: dict[str, Any], k: int, cat_ids: set[int], images: dict[int, ImageEntry], name: str
) -> tuple[list[dict[str, Any]], list[str]]:
    raw = data.get("annotations")
    if not isinstance(raw, list):
        raise EvaluationError(f"annotations {name}: no 'annotations' list")
    notes: list[str] = []
    kept: list[dict[str, Any]] = []
    filled = 0
    for i, ann in enumerate(raw):
        if isinstance(ann, dict) and ann.get("category_id") in cat_ids:
            checked = _check_annotation(ann, i, k, images, name)
            filled += checked != ann
            kept.append(checked)
    if len(kept) < len(raw):
        notes.append(f"{len(raw) - len(kept)} annotations of categories without keypoints were left out")
    if not any(a["num_keypoints"] > 0 and not a["iscrowd"] for a in kept):
        raise EvaluationError(f"annotations {name}: no annotated person has a labelled keypoint (nothing to score)")
    if filled:
        notes.append(f"filled area/bbox/iscrowd/num_keypoints on {filled} annotations (box area, not mask area)")
    ids = [a.get("id") for a in kept]
    if not all(isinstance(v, int) and v > 0 for v in ids) or len(set(ids)) != len(ids):
        for n, a in enumerate(kept, start=1):
            a["id"] = n  # pycocotools' matcher reads id 0 as "unmatched", and needs unique ids
        notes.append("annotation ids were missing, 0 or repeated: renumbered 1..N")
    return kept, notes


def pick_sigmas(k: int, model_schema: KeypointSchema | None, file_schema: KeypointSchema) -> tuple[np.ndarray, str]:
    """Sigmas from the model's schema file, then the annotation file's category, then COCO's (K=17), else a default."""
    return oks_sigmas(k, (model_schema, "keypoint schema file"), (file_schema, "annotation file"))


def load_annotations(source: str | Path | bytes, model_schema: KeypointSchema | None = None) -> EvalDataset:
    """Parse, validate and index a COCO keypoint annotation file (raises :class:`EvaluationError`)."""
    data, name = parse_json(source, "annotations")
    if not isinstance(data, dict):
        raise EvaluationError(f"annotations {name}: expected a COCO object with images, annotations and categories")
    cats = _keypoint_categories(data, name)
    try:
        file_schema = schema_from_mapping({"categories": cats})
    except SchemaError as exc:
        raise EvaluationError(f"annotations {name}: {exc}") from exc
    k = file_schema.num_keypoints
    if model_schema is not None and model_schema.num_keypoints != k:
        raise EvaluationError(
            f"the model predicts {model_schema.num_keypoints} keypoints but annotations {name} have {k}: "
            "evaluate a checkpoint trained on this keypoint layout"
        )
    images = _images(data, name)
    cat_ids = {c["id"] for c in cats}
    anns, notes = _annotations(data, k, cat_ids, images, name)
    sigmas, source_label = pick_sigmas(k, model_schema, file_schema)
    coco = build_coco({"images": data["images"], "annotations": anns, "categories": cats})
    return EvalDataset(
        coco=coco,
        schema=file_schema,
        sigmas=sigmas,
        sigma_source=source_label,
        category_ids=sorted(cat_ids),
        category_names={c["id"]: str(c.get("name", c["id"])) for c in cats},
        images=images,
        name=name,
        notes=notes,
    )


def build_coco(dataset: dict[str, Any]) -> Any:
    """A pycocotools ``COCO`` from an in-memory dict (its index building prints; keep stdout clean)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
