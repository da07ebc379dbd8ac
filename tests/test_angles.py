"""Joint angles: geometry, delta-method uncertainty against Monte Carlo, schema angles, and the angle exports."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.results.schema import KeypointSchema, SchemaError, load_schema
from rfdetr_demo.video.angles import angle_columns, joint_angles, motion_rows
from rfdetr_demo.video.exports import FrameExporter

ANGLE = (("knee", (0, 1, 2)),)


def _three(a, b, c) -> np.ndarray:
    return np.array([[a, b, c]], dtype=np.float64)


@pytest.mark.parametrize(
    ("points", "expected"),
    [(((10, 0), (0, 0), (0, 10)), 90.0), (((-5, 0), (0, 0), (7, 0)), 180.0), (((3, 3), (0, 0), (6, 6)), 0.0),
     (((0, 10), (0, 0), (10, 0)), 90.0), (((1, 0), (0, 0), (-1, 1)), 135.0)],
)  # fmt: skip
def test_angle_geometry(points, expected):
    deg, std = joint_angles(_three(*points), None, np.ones((1, 3), bool), ANGLE)
    assert np.isclose(deg[0, 0], expected, atol=1e-9)
    assert np.isnan(std[0, 0])  # no covariance, no band


def test_delta_method_std_matches_monte_carlo():
    rng = np.random.default_rng(0)
    xy = _three((60, 10), (0, 0), (15, 80))
    cov = np.zeros((1, 3, 2, 2))
    for j, (sx, sy, r) in enumerate([(3, 2, 0.3), (2, 2, 0.0), (4, 1.5, -0.5)]):
        cov[0, j] = [[sx * sx, r * sx * sy], [r * sx * sy, sy * sy]]
    _, std = joint_angles(xy, cov, np.ones((1, 3), bool), ANGLE)
    samples = xy[0] + np.einsum("jab,sjb->sja", np.linalg.cholesky(cov[0]), rng.standard_normal((20000, 3, 2)))
    mc, _ = joint_angles(samples, None, np.ones((len(samples), 3), bool), ANGLE)
    assert std[0, 0] == pytest.approx(np.std(mc[:, 0]), rel=0.05)


def test_hidden_joint_or_zero_limb_gives_nan():
    xy = np.array([[(10, 0), (0, 0), (0, 10)], [(0, 0), (0, 0), (0, 10)]], np.float64)
    vis = np.array([[True, False, True], [True, True, True]])
    deg, std = joint_angles(xy, np.tile(np.eye(2), (2, 3, 1, 1)), vis, ANGLE)
    assert np.isnan(deg).all() and np.isnan(std).all()


def test_coco_schema_measures_elbows_shoulders_hips_knees(coco_json):
    schema = load_schema(coco_json)
    angles = dict(schema.joint_angles())
    assert angles == dict(KeypointSchema.coco().joint_angles())
    names = schema.names
    assert angles["left_knee"] == (names.index("left_hip"), names.index("left_knee"), names.index("left_ankle"))
    assert len(angles) == 8 and KeypointSchema.generic(5).joint_angles() == ()


def test_schema_file_names_its_own_angles(tmp_path):
    path = tmp_path / "s.json"
    spec = {
        "keypoints": ["hip", "knee", "ankle", "toe"],
        "angles": {"knee": ["hip", "knee", "ankle"], "ank": [1, 2, 3]},
    }
    path.write_text(json.dumps(spec))
    assert load_schema(path).joint_angles() == (("knee", (0, 1, 2)), ("ank", (1, 2, 3)))
    for bad in ({"knee": ["hip", "knee"]}, {"knee": ["hip", "knee", "nope"]}, {"knee": ["hip", "hip", "knee"]}, [1]):
        path.write_text(json.dumps({**spec, "angles": bad}))
        with pytest.raises(SchemaError):
            load_schema(path)


def _person_kp() -> sv.KeyPoints:
    xy = np.array([[[0, 0], [30, 40], [30, 90], [60, 90]], [[5, 5], [5, 5], [9, 9], [1, 1]]], np.float32)
    cov = np.tile(np.eye(2, dtype=np.float32) * 4.0, (2, 4, 1, 1))
    return sv.KeyPoints(
        xy=xy,
        class_id=np.zeros(2, int),
        keypoint_confidence=np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5]], np.float32),
        detection_confidence=np.array([0.9, 0.8], np.float32),
        visible=np.ones((2, 4), bool),
        data={
            "xyxy": np.array([[0, 0, 60, 90], [1, 1, 9, 9]], np.float32),
            "class_name": np.array(["person", "person"]),
            "tracker_id": np.array([7, 3]),
            "covariance": cov,
        },
    )


def test_exports_write_the_same_angles_in_jsonl_and_csv(tmp_path):
    angles = (("knee", (0, 1, 2)), ("ankle", (1, 2, 3)))
    exp = FrameExporter(tmp_path, "clip", ["hip", "knee", "ankle", "toe"], angles)
    kp = _person_kp()
    exp.add(0, 0.0, kp)
    exp.add(1, 1 / 30, kp)
    jsonl, _, angles_csv = exp.finish()
    with angles_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frame", "timestamp_s", "source", "person_id", "mean_confidence", *angle_columns(angles)]
    assert {r["source"] for r in rows} == {"model"}
    assert [(r["frame"], r["person_id"]) for r in rows] == [("0", "7"), ("0", "3"), ("1", "7"), ("1", "3")]
    want = motion_rows(1, 1 / 30, kp, angles)
    assert float(rows[2]["knee_deg"]) == want[0]["knee_deg"]
    expected_knee = np.degrees(np.arccos(np.dot([-30, -40], [0, 50]) / (50 * 50)))
    assert float(rows[2]["knee_deg"]) == pytest.approx(expected_knee, abs=0.01)
    assert rows[3]["knee_deg"] == ""  # zero-length limb: no angle, an empty cell
    assert float(rows[0]["mean_confidence"]) == pytest.approx(0.75)
    line = json.loads(jsonl.read_text().splitlines()[1])
    person = line["persons"][0]
    assert person["angles"]["knee"] == {"deg": want[0]["knee_deg"], "std_deg": want[0]["knee_std_deg"]}
    assert (
        person["mean_confidence"] == want[0]["mean_confidence"] and line["persons"][1]["angles"]["knee"]["deg"] is None
    )
