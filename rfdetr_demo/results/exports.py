"""Downloads: keypoint CSV, full JSON result, and COCO keypoint-results JSON.

The COCO export follows the results format the COCO evaluator reads (``image_id, category_id, keypoints,
score, bbox`` with ``bbox`` as xywh), so a user can score the demo's output with pycocotools directly; a test
checks that ground truth exported this way scores AP = 1.0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import supervision as sv

from rfdetr_demo.results.prediction import BACKGROUND_CLASS, BOXES, CLASS_NAME, COVARIANCE, IDS, Prediction

# COCO's person category id; a fine-tune's other classes are numbered 1.. in the model's class order.
COCO_PERSON_CATEGORY_ID = 1


def image_id_from_name(name: str | None) -> int:
    """COCO-style numeric file names (``000000000785.jpg``) give their id; anything else gives 0."""
    if not name:
        return 0
    match = re.fullmatch(r"0*(\d+)", Path(name).stem)
    return int(match.group(1)) if match else 0


def category_ids(names: Sequence[str], class_names: Sequence[str] = ()) -> list[int]:
    """COCO category ids: 'person' → 1 (COCO); a fine-tune's classes → 1-based position in its class list.

    The background slot of a background-first class list is not a category, so it is skipped: ``["cat", "dog"]``
    (0-based fine-tune) and ``["__background__", "cat", "dog"]`` both give cat → 1, dog → 2, the ids of a COCO
    dataset whose categories are numbered from 1 in that order. Names the list lacks fall back to 1.
    """
    order = [c for c in class_names if c != BACKGROUND_CLASS]
    return [COCO_PERSON_CATEGORY_ID if n == "person" or n not in order else order.index(n) + 1 for n in names]


def instances(kp: sv.KeyPoints, keypoint_names: Sequence[str]) -> list[dict[str, Any]]:
    """JSON-ready instances: id, class, score, box and every keypoint with its confidence and visibility."""
    if len(kp) == 0:
        return []
    boxes, conf, vis, scores = kp.data[BOXES], kp.keypoint_confidence, kp.visible, kp.detection_confidence
    cov = kp.data.get(COVARIANCE)
    out = []
    for i, (pid, cname) in enumerate(zip(kp.data[IDS], kp.data[CLASS_NAME], strict=True)):
        points = []
        for j, name in enumerate(keypoint_names):
            point: dict[str, Any] = {
                "name": name,
                "x": _num(kp.xy[i, j, 0]),
                "y": _num(kp.xy[i, j, 1]),
                "confidence": _num(conf[i, j]),
                "visible": bool(vis[i, j]),
            }
            if cov is not None:
                point["covariance"] = [[_num(v) for v in row] for row in np.asarray(cov[i, j])]
            points.append(point)
        out.append(
            {
                "id": int(pid),
                "class_name": str(cname),
                "score": _num(scores[i]),
                "box_xyxy": [_num(v) for v in boxes[i]],
                "keypoints": points,
            }
        )
    return out


def _num(v: Any) -> float | None:
    """JSON has no NaN: non-finite numbers become null."""
    f = float(v)
    return round(f, 4) if np.isfinite(f) else None


def result_dict(
    prediction: Prediction, displayed: sv.KeyPoints, keypoint_threshold: float, source_name: str | None = None
) -> dict[str, Any]:
    """The full result for the JSON download and the API."""
    return {
        "image": {"name": source_name, "width": prediction.image_size[0], "height": prediction.image_size[1]},
        "model": prediction.model_info.as_dict(),
        "settings": {
            "threshold": prediction.threshold,
            "keypoint_threshold": float(keypoint_threshold),
            "resolution": prediction.resolution,
        },
        "inference_ms": round(prediction.inference_ms, 2),
        "keypoint_names": list(prediction.keypoint_names),
        "instances": instances(displayed, prediction.keypoint_names),
    }


def coco_results(kp: sv.KeyPoints, image_id: int, class_names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """COCO keypoint results; each keypoint is ``[x, y, v]`` with v = 2 when visible, 0 when hidden.

    Hidden joints keep their predicted coordinates (the COCO evaluator scores every predicted joint against
    labelled ground truth regardless of v); per-joint confidences are added as ``keypoint_scores``.
    """
    if len(kp) == 0:
        return []
    boxes, vis, conf, scores = kp.data[BOXES], kp.visible, kp.keypoint_confidence, kp.detection_confidence
    cats = category_ids(list(kp.data[CLASS_NAME]), class_names)
    results = []
    for i in range(len(kp)):
        xy = np.nan_to_num(kp.xy[i].astype(float))
        flat: list[float] = []
        for j in range(xy.shape[0]):
            flat += [round(float(xy[j, 0]), 2), round(float(xy[j, 1]), 2), 2 if vis[i, j] else 0]
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(cats[i]),
                "keypoints": flat,
                "score": round(float(scores[i]), 5),
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "keypoint_scores": [round(float(c), 4) for c in conf[i]],
            }
        )
    return results


def safe_stem(name: str | None, default: str = "keypoints") -> str:
    """A file-name stem built only from safe characters (user file names can contain anything)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem if name else "").strip("._")
    return stem[:80] or default


def prediction_coco_results(prediction: Prediction, displayed: sv.KeyPoints, source_name: str | None) -> list[dict]:
    """COCO results for one image, with category ids from the model's own class list (fine-tunes keep theirs)."""
    return coco_results(displayed, image_id_from_name(source_name), prediction.model_info.class_names)


def write_exports(
    out_dir: str | Path,
    stem: str,
    keypoints: pd.DataFrame,
    result: dict[str, Any],
    coco: list[dict[str, Any]],
) -> list[Path]:
    """Write the request's already-built keypoint table (CSV), result (JSON) and COCO results; return the paths.

    The caller builds each once (the page shows the same table and JSON), so a download never disagrees with the page.
    """
    stem = safe_stem(stem)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.csv", out / f"{stem}.json", out / f"{stem}_coco_results.json"]
    keypoints.to_csv(paths[0], index=False)
    paths[1].write_text(json.dumps(result, indent=1))
    paths[2].write_text(json.dumps(coco))
    return paths
