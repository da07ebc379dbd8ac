"""Evaluation core (no Gradio, no model): COCOeval round trips, calibration on known Gaussians, custom K, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rfdetr_demo.evaluate import EvaluationError, load_annotations, load_prediction_file, score_set
from rfdetr_demo.evaluate.predictions import COVARIANCE_KEY
from rfdetr_demo.results.schema import COCO_OKS_SIGMAS, DEFAULT_SIGMA, KeypointSchema, load_schema


def gt_as_results(coco: dict) -> list[dict]:
    """Every annotated person with a labelled joint, exported as a prediction of score 1."""
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
        for a in coco["annotations"]
        if a["num_keypoints"] > 0 and not a.get("iscrowd")
    ]


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def pycocotools_stats(gt_file: Path, dt_file: Path, sigmas) -> np.ndarray:
    """COCOeval run directly on the two files, the way its README does it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(dt_file)), "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def synthetic_dataset(k: int, n_images: int, seed: int = 0, sigmas=None) -> dict:
    """One person per 640×480 image, joints spread over a 200×300 box, all labelled."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(1, n_images + 1):
        x0, y0 = rng.uniform(20, 400), rng.uniform(20, 150)
        pts = np.column_stack([x0 + rng.uniform(0, 200, k), y0 + rng.uniform(0, 300, k), np.full(k, 2)])
        images.append({"id": i, "file_name": f"img_{i:04d}.jpg", "width": 640, "height": 480})
        anns.append(
            {"id": i, "image_id": i, "category_id": 1, "keypoints": pts.round(2).ravel().tolist(),
             "num_keypoints": k, "bbox": [x0, y0, 200.0, 300.0], "area": 60000.0, "iscrowd": 0}
        )  # fmt: skip
    category = {"id": 1, "name": "person", "keypoints": [f"joint_{j}" for j in range(k)], "skeleton": []}
    if sigmas is not None:
        category["sigmas"] = list(sigmas)
    return {"images": images, "annotations": anns, "categories": [category]}


def gaussian_results(coco: dict, k: int, seed: int, cov_scale: float = 1.0) -> list[dict]:
    """Predictions = truth + N(0, Σ) per joint, Σ random and anisotropic; reported Σ scaled by ``cov_scale``."""
    rng = np.random.default_rng(seed)
    out = []
    for a in coco["annotations"]:
        g = np.asarray(a["keypoints"], float).reshape(k, 3)
        std = rng.uniform(1.0, 6.0, (k, 2))
        angle = rng.uniform(0, np.pi, k)
        rot = np.stack(
            [np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], -2
        )
        cov = rot @ (np.eye(2) * (std**2)[:, None, :]) @ np.swapaxes(rot, -1, -2)
        noise = np.einsum("kij,kj->ki", np.linalg.cholesky(cov), rng.standard_normal((k, 2)))
        pred = np.column_stack([g[:, :2] + noise, np.full(k, 2)])
        out.append(
            {"image_id": a["image_id"], "category_id": 1, "keypoints": pred.ravel().tolist(), "score": 0.9,
             COVARIANCE_KEY: (cov * cov_scale).tolist()}
        )  # fmt: skip
    return out


def test_ground_truth_as_predictions_scores_one(coco_json, tmp_path):
    coco = json.loads(coco_json.read_text())
    dataset = load_annotations(coco_json)
    assert dataset.sigma_source == "COCO" and dataset.num_keypoints == 17
    score = score_set(dataset, load_prediction_file(write(tmp_path / "gt.json", gt_as_results(coco)), dataset))
    assert all(score.stats[n] == 1.0 for n in ("AP", "AP50", "AP75", "APm", "APl", "AR"))
    assert score.detection["recall"] == 1.0 and score.detection["precision"] == 1.0
    assert score.detection["people"] == dataset.num_people == 12
    assert all(r["PCK@0.05"] == 1.0 and r["mean_norm_error"] == 0.0 for r in score.per_keypoint if r["n"])
    assert sum(r["n"] for r in score.per_keypoint) == sum(a["num_keypoints"] for a in coco["annotations"])
    assert [r["mean_oks"] for r in score.per_image] == [1.0] * 4
    assert score.calibration is None  # COCO results without covariance


def test_known_perturbation_equals_pycocotools_directly(coco_json, tmp_path):
    coco = json.loads(coco_json.read_text())
    rng = np.random.default_rng(3)
    results = gt_as_results(coco)
    for i, r in enumerate(results):
        pts = np.asarray(r["keypoints"], float).reshape(-1, 3)
        pts[:, :2] += rng.normal(0, 4 + 3 * i, (len(pts), 2))
        r["keypoints"] = pts.round(2).ravel().tolist()
        r["score"] = round(float(rng.uniform(0.3, 1.0)), 3)
    results.append({"image_id": 785, "category_id": 1, "keypoints": [10.0, 10.0, 2] * 17, "score": 0.95})
    dt_file = write(tmp_path / "perturbed.json", results)
    dataset = load_annotations(coco_json)
    score = score_set(dataset, load_prediction_file(dt_file, dataset), threshold=0.5)
    direct = pycocotools_stats(coco_json, dt_file, COCO_OKS_SIGMAS)
    ours = [score.stats[n] for n in ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")]
    np.testing.assert_allclose(ours, np.round(direct, 4), atol=1e-9)
    assert 0.0 < score.stats["AP"] < 1.0
    # Recall/precision at 0.5 from COCOeval's matching: the false detection (score 0.95) counts against precision.
    above = sum(r["score"] >= 0.5 for r in results)
    assert score.detection["detections"] == above
    assert score.detection["true_positives"] < above
    assert min(r["mean_norm_error"] for r in score.per_keypoint if r["n"]) > 0


def test_gaussian_predictions_cover_39_and_86_percent(tmp_path):
    k = 17
    coco = synthetic_dataset(k, 200)
    ann = write(tmp_path / "ann.json", coco)
    dataset = load_annotations(ann)
    honest = score_set(dataset, load_prediction_file(write(tmp_path / "h.json", gaussian_results(coco, k, 1)), dataset))
    cal = honest.calibration
    assert cal is not None and cal["joints"] == 200 * k
    assert cal["expected"] == {"1sigma": round(1 - math.exp(-0.5), 4), "2sigma": round(1 - math.exp(-2), 4)}
    assert abs(cal["coverage"]["1sigma"] - 0.393) < 0.03
    assert abs(cal["coverage"]["2sigma"] - 0.865) < 0.03
    assert all(abs(r["2sigma"] - 0.865) < 0.1 for r in cal["per_keypoint"])
    assert cal["spearman_uncertainty_vs_error"] > 0.3  # bigger predicted ellipses go with bigger errors
    over = gaussian_results(coco, k, 1, cov_scale=0.25)  # same errors, ellipses half as wide
    confident = score_set(dataset, load_prediction_file(write(tmp_path / "o.json", over), dataset)).calibration
    assert confident["coverage"]["1sigma"] < 0.2 and confident["coverage"]["2sigma"] < 0.5
    assert confident["coverage"]["1sigma"] == pytest.approx(1 - math.exp(-1 / 8), abs=0.03)


def test_k5_with_custom_sigmas_from_the_file_and_the_schema(tmp_path):
    k, sigmas = 5, [0.02, 0.04, 0.06, 0.08, 0.1]
    coco = synthetic_dataset(k, 30, seed=5, sigmas=sigmas)
    ann = write(tmp_path / "ann5.json", coco)
    dt_file = write(
        tmp_path / "dt5.json", [{**r, "score": 0.5 + 0.01 * i} for i, r in enumerate(gaussian_results(coco, k, 2))]
    )
    dataset = load_annotations(ann)
    assert dataset.sigma_source == "annotation file" and dataset.sigmas.tolist() == sigmas
    score = score_set(dataset, load_prediction_file(dt_file, dataset))
    assert [score.stats[n] for n in ("AP", "AP50", "AR")] == list(
        np.round(pycocotools_stats(ann, dt_file, sigmas)[[0, 1, 5]], 4)
    )
    assert [r["keypoint"] for r in score.per_keypoint] == [f"joint_{j}" for j in range(k)]
    # A schema file with sigmas wins over the file's; without any, the stated default applies.
    schema_file = write(tmp_path / "schema.json", {"keypoints": [f"joint_{j}" for j in range(k)], "sigmas": [0.5] * k})
    loose = load_annotations(ann, load_schema(schema_file))
    assert loose.sigma_source == "keypoint schema file"
    assert score_set(loose, load_prediction_file(dt_file, loose)).stats["AP"] >= score.stats["AP"]
    del coco["categories"][0]["sigmas"]
    plain = load_annotations(write(tmp_path / "plain.json", coco))
    assert plain.sigmas.tolist() == [DEFAULT_SIGMA] * k and "default" in plain.sigma_source


def test_app_json_export_carries_covariance_into_calibration(coco_json, tmp_path):
    coco = json.loads(coco_json.read_text())
    names = coco["categories"][0]["keypoints"]
    exports = []
    for img in coco["images"]:
        instances = []
        for a in coco["annotations"]:
            if a["image_id"] == img["id"] and a["num_keypoints"] > 0:
                pts = np.asarray(a["keypoints"], float).reshape(17, 3)
                cov = [[4.0, 0.0], [0.0, 4.0]]
                kps = [
                    {"name": n, "x": x + 1.0, "y": y, "confidence": 0.9, "visible": True, "covariance": cov}
                    for n, (x, y, _v) in zip(names, pts, strict=True)
                ]
                instances.append({"id": 0, "class_name": "person", "score": 0.9, "keypoints": kps})
        exports.append({"image": {"name": img["file_name"]}, "instances": instances})
    dataset = load_annotations(coco_json)
    score = score_set(dataset, load_prediction_file(write(tmp_path / "exports.json", exports), dataset))
    assert score.stats["AP50"] == 1.0
    cal = score.calibration
    assert cal is not None and cal["coverage"] == {"1sigma": 1.0, "2sigma": 1.0}  # 1 px off, σ = 2 px: d = 0.5


def test_calibration_note_says_no_pair_matched_when_every_detection_has_a_covariance(coco_json, tmp_path):
    """Predictions with a covariance each, none near an annotated person: the summary gives the real reason."""
    from rfdetr_demo.evaluate.pipeline import Evaluation
    from rfdetr_demo.evaluate.report import summary_markdown

    coco = json.loads(coco_json.read_text())
    far = []
    for a in coco["annotations"]:
        pts = np.asarray(a["keypoints"], float).reshape(17, 3)
        pts[:, 0] = 5000.0 + pts[:, 0]  # every joint far outside the photo: no OKS overlap with anyone
        far.append({"image_id": a["image_id"], "category_id": 1, "keypoints": pts.ravel().tolist(), "score": 0.9,
                    COVARIANCE_KEY: [[[4.0, 0.0], [0.0, 4.0]]] * 17})  # fmt: skip
    dataset = load_annotations(coco_json)
    score = score_set(dataset, load_prediction_file(write(tmp_path / "far.json", far), dataset))
    assert score.matches == [] and score.calibration is None
    text = summary_markdown(Evaluation(dataset=dataset, scores=[score]))
    assert "no predicted person matched an annotated one" in text and "no covariance" not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG not json", "not JSON"),
        (b"{broken", "not JSON"),
        (
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": "a.jpg"}],
                    "annotations": [],
                    "categories": [{"id": 1, "name": "person"}],
                }
            ).encode(),
            "no keypoint category",
        ),
        (json.dumps([1, 2]).encode(), "expected a COCO object"),
        (
            json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "keypoints": ["a"]}]}).encode(),
            "images",
        ),
    ],
)
def test_bad_annotation_files(tmp_path, content, message):
    with pytest.raises(EvaluationError, match=message):
        load_annotations(write_bytes(tmp_path / "ann.json", content))


def write_bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_bad_prediction_files(coco_json, tmp_path):
    dataset = load_annotations(coco_json)
    good = gt_as_results(json.loads(coco_json.read_text()))
    cases = [
        (b"not json", "not JSON"),
        (b"[]", "no predictions"),
        (json.dumps([{**good[0], "keypoints": good[0]["keypoints"][:15]}]).encode(), "have 5 keypoints per person but"),
        (json.dumps([{**good[0], "image_id": 999999}]).encode(), "not in the annotations"),
        (json.dumps([{**good[0], "category_id": 7}]).encode(), "not a keypoint category"),
        (json.dumps([{**good[0], "score": "high"}]).encode(), "numeric 'score'"),
        (json.dumps([{**good[0], COVARIANCE_KEY: [[1, 0]]}]).encode(), "2×2"),
        (coco_json.read_bytes(), "annotation file, not predictions"),
        (json.dumps({"image": {"name": "elsewhere.jpg"}, "instances": []}).encode(), "not in the annotations"),
    ]
    for content, message in cases:
        with pytest.raises(EvaluationError, match=message):
            load_prediction_file(write_bytes(tmp_path / "p.json", content), dataset)


def test_model_keypoint_count_must_match_annotations(coco_json):
    with pytest.raises(EvaluationError, match="model predicts 5 keypoints but annotations"):
        load_annotations(coco_json, KeypointSchema.generic(5))


def test_annotation_gaps_are_filled_with_a_note(coco_json, tmp_path):
    coco = json.loads(coco_json.read_text())
    for a in coco["annotations"]:
        for key in ("area", "iscrowd", "num_keypoints"):
            a.pop(key)
        a["id"] = 0
    dataset = load_annotations(write(tmp_path / "gappy.json", coco))
    assert any("filled" in n for n in dataset.notes) and any("renumbered" in n for n in dataset.notes)
    results = gt_as_results(dataset.coco.dataset)
    score = score_set(dataset, load_prediction_file(write(tmp_path / "gt.json", results), dataset))
    assert score.stats["AP"] == 1.0


def test_schema_sigmas_are_checked(tmp_path):
    from rfdetr_demo.results.schema import SchemaError

    bad_count = write(tmp_path / "s1.json", {"keypoints": ["a", "b"], "sigmas": [0.1]})
    with pytest.raises(SchemaError, match="names 2 keypoints but gives 1 sigmas"):
        load_schema(bad_count)
    with pytest.raises(SchemaError, match="positive"):
        load_schema(write(tmp_path / "s2.json", {"keypoints": ["a"], "sigmas": [-1]}))
    assert load_schema(write(tmp_path / "s3.json", {"keypoints": ["a"], "sigmas": [0.2]})).sigmas == (0.2,)


def test_zip_entries_that_inflate_too_far_are_refused(tmp_path, monkeypatch):
    import zipfile

    from rfdetr_demo.evaluate import sources

    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.jpg", b"\0" * 5000)
    monkeypatch.setattr(sources, "MAX_ZIP_ENTRY_BYTES", 4096)
    with pytest.raises(EvaluationError, match="inflates to more than"):
        sources.zip_sources(archive)
