"""Tables and downloads against ground truth, including a COCO-evaluator round trip (AP must be 1.0)."""

import contextlib
import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rfdetr_demo.image.task import ImageRun, render_run
from rfdetr_demo.results.exports import (
    coco_results,
    image_id_from_name,
    prediction_coco_results,
    result_dict,
    safe_stem,
    write_exports,
)
from rfdetr_demo.results.prediction import Prediction, apply_keypoint_threshold, normalize
from rfdetr_demo.results.schema import COCO_KEYPOINT_NAMES, KeypointSchema
from rfdetr_demo.results.tables import keypoints_table, persons_table
from tests.conftest import replay_info


def _prediction(kp, size=(640, 480), class_names=("person",)):
    info = replace(replay_info(), class_names=list(class_names))
    return Prediction(kp, size, KeypointSchema.coco(), 0.5, 576, 12.5, info)


def _write_exports(out_dir, prediction, displayed, keypoint_threshold, source_name, stem):
    """The Image tab's exports: the table, JSON and COCO results built once and handed to ``write_exports``."""
    return write_exports(
        out_dir,
        stem,
        keypoints_table(displayed, prediction.keypoint_names, decimals=2),
        result_dict(prediction, displayed, keypoint_threshold, source_name),
        prediction_coco_results(prediction, displayed, source_name),
    )


def test_tables_equal_the_keypoints(coco_truth):
    truth = coco_truth[196141].key_points
    kp = apply_keypoint_threshold(truth, 0.7)
    persons = persons_table(kp)
    assert list(persons["id"]) == list(range(len(kp)))
    assert (persons["class"] == "person").all()
    np.testing.assert_allclose(persons["score"], kp.detection_confidence, atol=1e-3)
    np.testing.assert_allclose(persons[["x1", "y1", "x2", "y2"]].to_numpy(), kp.data["xyxy"], atol=0.05)
    assert list(persons["visible_keypoints"]) == list(kp.visible.sum(axis=1))
    table = keypoints_table(kp, COCO_KEYPOINT_NAMES)
    assert len(table) == len(kp) * 17
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), kp.xy.reshape(-1, 2), atol=0.05)
    assert list(table["visible"]) == list(kp.visible.reshape(-1))
    assert list(table["keypoint"][:17]) == list(COCO_KEYPOINT_NAMES)
    # Occluded joints (confidence 0.6) are hidden at 0.7 and reported as such.
    assert not table.loc[table["confidence"] == 0.6, "visible"].any()


def test_empty_tables_have_columns(coco_truth):
    kp = coco_truth[785].key_points
    empty = kp[np.zeros(len(kp), bool)]
    assert list(persons_table(empty).columns)[:3] == ["id", "class", "score"] and persons_table(empty).empty
    assert keypoints_table(empty, COCO_KEYPOINT_NAMES).empty


def test_written_files_decode_back(tmp_path, coco_truth):
    kp = apply_keypoint_threshold(coco_truth[197388].key_points, 0.3)
    files = _write_exports(tmp_path, _prediction(kp), kp, 0.3, "000000197388.jpg", stem="000000197388.jpg")
    csv_path, json_path, coco_path = files
    assert csv_path.name == "000000197388.csv"
    csv = pd.read_csv(csv_path)
    np.testing.assert_allclose(csv[["x", "y"]].to_numpy(), kp.xy.reshape(-1, 2), atol=0.01)
    doc = json.loads(json_path.read_text())
    assert doc["settings"]["keypoint_threshold"] == 0.3
    assert len(doc["instances"]) == len(kp)
    first = doc["instances"][0]["keypoints"][0]
    assert first["name"] == "nose" and len(first["covariance"]) == 2
    coco = json.loads(coco_path.read_text())
    assert {r["image_id"] for r in coco} == {197388}
    assert all(len(r["keypoints"]) == 51 for r in coco)
    x1, y1, x2, y2 = kp.data["xyxy"][0]
    np.testing.assert_allclose(coco[0]["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=0.01)


def test_coco_results_of_ground_truth_score_ap_1(coco_json, coco_truth):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = []
    for image_id, truth in coco_truth.items():
        results += coco_results(apply_keypoint_threshold(truth.key_points, 0.0), image_id)
    labelled = [a for a in json.loads(coco_json.read_text())["annotations"] if a["num_keypoints"] > 0]
    assert len(results) == len(labelled) >= 10  # annotations without keypoints are ignored by COCO eval too
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_json))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0), ev.stats


def test_coco_results_detect_a_wrong_prediction(coco_json, coco_truth):
    """The AP oracle is not vacuous: shifting every joint by 30 px must lower AP."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = []
    for image_id, truth in coco_truth.items():
        for r in coco_results(truth.key_points, image_id):
            r["keypoints"] = [v + 30 if i % 3 != 2 else v for i, v in enumerate(r["keypoints"])]
            results.append(r)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(coco_json))
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[0] < 0.9


def test_names_and_ids():
    assert image_id_from_name("000000000785.jpg") == 785
    assert image_id_from_name("holiday.png") == 0
    assert safe_stem("../../etc/pass wd.jpg") == "pass_wd"
    assert safe_stem(None) == "keypoints"


def test_detection_threshold_is_applied_when_drawing_exactly_as_a_model_run(replay_service, coco_image_paths):
    """The image run keeps people down to the floor threshold; any higher threshold is a filter, not a re-run."""
    from rfdetr_demo.image.task import MODEL_THRESHOLD_FLOOR, render_run, run_image

    path = coco_image_paths[196141]
    run = run_image(replay_service, str(path), threshold=0.5)
    assert run.prediction.threshold == MODEL_THRESHOLD_FLOOR and run.threshold == 0.5
    for threshold in (0.5, 0.975, 0.995):
        shown = render_run(run, 0.3, ["Skeleton"], threshold=threshold)
        direct = replay_service.predict(run.rgb, threshold=threshold)  # what a model run at that threshold returns
        assert len(shown.persons) == len(direct) == int((direct.key_points.detection_confidence > threshold).sum())
        np.testing.assert_array_equal(
            shown.keypoints[["x", "y"]].to_numpy(),
            keypoints_table(direct.displayed(0.3), direct.keypoint_names)[["x", "y"]].to_numpy(),
        )
        assert shown.result["settings"]["threshold"] == threshold and len(shown.result["instances"]) == len(direct)
    assert len(render_run(run, 0.3, ["Skeleton"]).persons) == 4  # the run's own threshold (0.5)
    assert run.prediction.threshold == MODEL_THRESHOLD_FLOOR  # so any threshold from the floor up redraws
    with pytest.raises(ValueError, match="only holds people scoring above"):
        run.prediction.above(0.05)


@pytest.mark.parametrize("class_names", [("cat", "dog"), ("__background__", "cat", "dog")])
def test_fine_tune_coco_export_carries_its_dataset_category_ids(coco_truth, tmp_path, class_names):
    """A fine-tune's class list numbers its COCO categories (1-based, in the dataset's order), not 'person' = 1."""
    truth = coco_truth[196141].key_points
    n = len(truth)
    assert n >= 2
    raw = truth[np.arange(n)]
    raw.data["class_name"] = np.array(["dog" if i % 2 else "cat" for i in range(n)], dtype=object)
    del raw.data["tracker_id"]
    kp = normalize(raw, 17)
    prediction = _prediction(kp, class_names=class_names)
    rgb = np.zeros((480, 640, 3), np.uint8)
    output = render_run(ImageRun(rgb, prediction, "000000196141.jpg"), 0.3, ["Boxes"], out_dir=tmp_path)
    coco = json.loads(next(p for p in output.files if p.name.endswith("_coco_results.json")).read_text())
    expected = [2 if name == "dog" else 1 for name in kp.data["class_name"]]
    assert [r["category_id"] for r in coco] == expected
    assert {r["image_id"] for r in coco} == {196141}
    assert output.result["model"]["class_names"] == list(class_names)
