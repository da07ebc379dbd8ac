"""Prediction sets: COCO results files, this app's JSON exports, or a model run, checked against the annotations.

A set is a list of COCO keypoint results (``image_id, category_id, keypoints, score``) and, where known, each
result's per-joint covariance under ``keypoint_covariance`` (K × 2 × 2, pixels²). pycocotools ignores that extra
field, so a set written by a model run is both a valid COCO results file and carries what calibration needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rfdetr_demo.evaluate.dataset import EvalDataset, EvaluationError, parse_json

COVARIANCE_KEY = "keypoint_covariance"
# COCOeval keeps the 20 best-scoring detections per image and category (params.maxDets[-1] for keypoints).
MAX_DETECTIONS = 20


@dataclass
class PredictionSet:
    """One row of the metrics table: a name and its validated COCO results."""

    name: str
    results: list[dict[str, Any]]
    source: str = "file"  # "file" | "model"
    threshold: float | None = None  # the detection threshold this set's recall/precision are reported at
    notes: list[str] = field(default_factory=list)


def _finite_numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _check_covariance(raw: Any, k: int, where: str) -> list[list[list[float]]]:
    cov = np.asarray(raw, dtype=float) if isinstance(raw, list) else None
    if cov is None or cov.shape != (k, 2, 2) or not np.isfinite(cov).all():
        raise EvaluationError(f"{where}: '{COVARIANCE_KEY}' must be {k} finite 2×2 matrices")
    return cov.tolist()


def check_result(entry: Any, i: int, dataset: EvalDataset, name: str) -> dict[str, Any]:
    """One COCO result: a known category, 3K finite keypoint numbers, a score (image ids: see check_results)."""
    where = f"predictions {name}: entry {i}"
    if not isinstance(entry, dict):
        raise EvaluationError(f"{where} is not an object (COCO results are a list of objects)")
    out = dict(entry)
    if not isinstance(entry.get("image_id"), int) or isinstance(entry.get("image_id"), bool):
        raise EvaluationError(f"{where} has no integer 'image_id'")
    if "category_id" not in entry and len(dataset.category_ids) == 1:
        out["category_id"] = dataset.category_ids[0]
    if out.get("category_id") not in dataset.category_ids:
        raise EvaluationError(
            f"{where}: category_id {out.get('category_id')!r} is not a keypoint category of the annotations "
            f"({', '.join(map(str, dataset.category_ids))})"
        )
    kps = entry.get("keypoints")
    k = dataset.num_keypoints
    if not _finite_numbers(kps):
        raise EvaluationError(f"{where} has no 'keypoints' list of finite numbers")
    if len(kps) != 3 * k:
        got = f"{len(kps) // 3} keypoints" if len(kps) % 3 == 0 else f"{len(kps)} numbers"
        raise EvaluationError(f"predictions {name} have {got} per person but the annotations have {k} keypoints")
    score = entry.get("score")
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not math.isfinite(score):
        raise EvaluationError(f"{where} has no numeric 'score'")
    if COVARIANCE_KEY in entry:
        out[COVARIANCE_KEY] = _check_covariance(entry[COVARIANCE_KEY], k, where)
    return out


def check_results(entries: Sequence[Any], dataset: EvalDataset, name: str) -> list[dict[str, Any]]:
    """Validate every entry; predictions for images the annotations do not list are an error (naming a few)."""
    if not entries:
        raise EvaluationError(f"predictions {name}: the file holds no predictions (an empty set cannot be scored)")
    results = [check_result(e, i, dataset, name) for i, e in enumerate(entries)]
    unknown = sorted({r["image_id"] for r in results} - set(dataset.images))
    if unknown:
        shown = ", ".join(map(str, unknown[:5])) + (", …" if len(unknown) > 5 else "")
        raise EvaluationError(
            f"predictions {name}: {len(unknown)} image id(s) are not in the annotations ({shown}); "
            "were these predictions made for another dataset?"
        )
    return results


# -- this app's JSON export ---------------------------------------------------------------------------------------
def _is_app_export(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("instances"), list) and isinstance(data.get("image"), dict)


def _image_id_by_name(dataset: EvalDataset) -> dict[str, int]:
    by_name: dict[str, int] = {}
    for img in dataset.images.values():
        by_name.setdefault(img.file_name, img.id)
        by_name.setdefault(Path(img.file_name).name, img.id)
    return by_name


def _category_for(class_name: Any, dataset: EvalDataset) -> int:
    for cid, cname in dataset.category_names.items():
        if cname == class_name:
            return cid
    return dataset.category_ids[0]


def _export_results(export: dict[str, Any], dataset: EvalDataset, by_name: dict[str, int], name: str) -> list[dict]:
    """COCO results (with covariance) from one app JSON export, matched to its image by file name."""
    image_name = str(export["image"].get("name") or "")
    image_id = by_name.get(image_name, by_name.get(Path(image_name).name))
    if image_id is None:
        raise EvaluationError(f"predictions {name}: image {image_name!r} of the JSON export is not in the annotations")
    out = []
    for inst in export["instances"]:
        points = inst.get("keypoints") if isinstance(inst, dict) else None
        if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
            raise EvaluationError(f"predictions {name}: an instance of {image_name!r} has no keypoints list")
        flat: list[float] = []
        for p in points:
            x, y = p.get("x"), p.get("y")
            known = x is not None and y is not None
            flat += [float(x) if known else 0.0, float(y) if known else 0.0, 2 if known else 0]
        result: dict[str, Any] = {
            "image_id": image_id,
            "category_id": _category_for(inst.get("class_name"), dataset),
            "keypoints": flat,
            "score": float(inst.get("score") if inst.get("score") is not None else 0.0),
        }
        covs = [p.get("covariance") for p in points]
        if all(isinstance(c, list) for c in covs) and covs:
            result[COVARIANCE_KEY] = covs
        out.append(result)
    return out


def entries_from_json(data: Any, dataset: EvalDataset, name: str) -> list[Any]:
    """A COCO results list, one app JSON export, or a list of app JSON exports → a list of COCO result entries."""
    if _is_app_export(data):
        data = [data]
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        if "images" in data:
            raise EvaluationError(f"predictions {name}: this is an annotation file, not predictions (COCO results)")
        data = data["annotations"]
    if not isinstance(data, list):
        raise EvaluationError(f"predictions {name}: expected a list of COCO keypoint results or this app's JSON export")
    if data and all(_is_app_export(d) for d in data):
        by_name = _image_id_by_name(dataset)
        return [r for export in data for r in _export_results(export, dataset, by_name, name)]
    return data


def load_prediction_file(source: str | Path, dataset: EvalDataset, name: str | None = None) -> PredictionSet:
    """Read one predictions file into a validated set (raises :class:`EvaluationError`)."""
    data, file_name = parse_json(source, "predictions")
    label = name or Path(file_name).stem
    return PredictionSet(label, check_results(entries_from_json(data, dataset, file_name), dataset, file_name))


def unique_names(names: Sequence[str]) -> list[str]:
    """Row names for the table: two files called ``results.json`` become ``results`` and ``results (2)``."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out
