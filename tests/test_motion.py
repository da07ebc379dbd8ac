"""Motion plots and exports of a real video run: the plots' data equal the per-frame exports; PNG; coasting shown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rfdetr_demo.results.render import VIEW_VERTICES
from rfdetr_demo.ui.motion_panel import motion_choices, motion_data
from rfdetr_demo.video import motion_plots as mp
from rfdetr_demo.video.pipeline import VideoOptions, run_video
from tests.conftest import COCO_DIR, make_replay_service
from tests.support.replay import ReplayPredictor
from tests.video_helpers import make_clip


@pytest.fixture(scope="module")
def kalman_run(tmp_path_factory, coco_truth, coco_json):
    tmp = tmp_path_factory.mktemp("motion")
    truth = next(t for t in coco_truth.values() if t.file_name == "000000197388.jpg")
    rgb = np.asarray(Image.open(COCO_DIR / truth.file_name).convert("RGB"))
    clip = make_clip(tmp / "people.mp4", [rgb] * 6, size=(truth.width, truth.height), fps=10)
    opts = VideoOptions(resolution=288, views=[VIEW_VERTICES], smoothing="kalman", keypoint_threshold=0.3)
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    return run_video(service, clip, opts, out_dir=tmp), truth


def test_run_exports_angles_csv_matching_the_jsonl(kalman_run):
    result, truth = kalman_run
    _, jsonl, _, angles_csv = result.files
    assert angles_csv.name == "people_angles.csv"
    angles = pd.read_csv(angles_csv)
    assert len(angles) == 6 * len(truth.key_points)
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    for line in lines:
        for person in line["persons"]:
            row = angles[(angles["frame"] == line["frame"]) & (angles["person_id"] == person["id"])].iloc[0]
            for name, value in person["angles"].items():
                got = row[f"{name}_deg"]
                assert (value["deg"] is None and np.isnan(got)) or value["deg"] == pytest.approx(got)
            assert person["mean_confidence"] == pytest.approx(row["mean_confidence"])
    # A static pose with every joint measured: angles defined, and (RTS: frames on both sides) the band is narrowest
    # mid-clip and widest at the ends, where the smoother has frames on one side only.
    knee = angles[angles["person_id"] == 0]["left_knee_std_deg"].to_numpy()
    assert np.isfinite(knee).all() and knee[2:4].max() < min(knee[0], knee[-1])


def test_motion_plots_show_exactly_the_exports(kalman_run):
    result, _ = kalman_run
    files = [str(p) for p in result.files]
    person, angle, joint, *plots, note = motion_choices(files)
    assert note == "" and all(p["visible"] for p in plots)
    angle_df, traj_df, conf_df = (p["value"] for p in plots)
    assert person["value"] == 0 and angle["value"] == "left_knee" and joint["value"] == "left_wrist"
    assert person["choices"][0] == 0 and "right_elbow" in angle["choices"]
    angles, keypoints = pd.read_csv(result.files[3]), pd.read_csv(result.files[2])
    mine = angles[angles["person_id"] == 0]
    line = angle_df[angle_df["series"] == "left_knee"]
    assert np.array_equal(line["timestamp_s"].to_numpy(), mine["timestamp_s"].to_numpy())
    assert np.allclose(line["degrees"], mine["left_knee_deg"])
    upper = angle_df[angle_df["series"] == "left_knee + 1σ"]["degrees"].to_numpy()
    assert np.allclose(upper, mine["left_knee_deg"] + mine["left_knee_std_deg"])
    wrist = keypoints[(keypoints["person_id"] == 0) & (keypoints["keypoint"] == "left_wrist") & keypoints["visible"]]
    assert np.allclose(traj_df[traj_df["series"] == "left_wrist x"]["pixels"], wrist["x"])
    assert np.allclose(traj_df[traj_df["series"] == "left_wrist y"]["pixels"], wrist["y"])
    assert np.allclose(conf_df["mean_confidence"], mine["mean_confidence"])
    # Another choice redraws from the same files.
    other = motion_data(files, 1, "right_elbow", "nose")
    assert np.allclose(other[0][other[0]["series"] == "right_elbow"]["degrees"].dropna(),
                       angles[angles["person_id"] == 1]["right_elbow_deg"].dropna())  # fmt: skip
    empty = motion_choices(None)
    assert empty[0]["choices"] == [] and not any(p["visible"] for p in empty[3:6])


def test_motion_panel_says_when_nobody_was_tracked_and_lists_only_what_exists(kalman_run, tmp_path):
    from rfdetr_demo.ui.motion_panel import NOBODY, person_choice

    result, _ = kalman_run
    angles, keypoints = pd.read_csv(result.files[3]), pd.read_csv(result.files[2])
    nobody = [tmp_path / "x_angles.csv", tmp_path / "x_keypoints.csv"]
    angles.iloc[:0].to_csv(nobody[0], index=False)
    keypoints.iloc[:0].to_csv(nobody[1], index=False)
    person, angle, joint, *plots, note = motion_choices([str(p) for p in nobody])
    assert note == NOBODY and person["choices"] == angle["choices"] == joint["choices"] == []
    assert angle["value"] is None and not any(p["visible"] for p in plots)  # no empty plot is drawn
    # A person whose left arm is never seen: no left-arm angle or joint is offered.
    hidden = keypoints["keypoint"].isin(["left_elbow", "left_wrist"]) & (keypoints["person_id"] == 0)
    keypoints.loc[hidden, "visible"] = False
    angles.loc[angles["person_id"] == 0, ["left_elbow_deg", "left_elbow_std_deg"]] = np.nan
    partial = [tmp_path / "y_angles.csv", tmp_path / "y_keypoints.csv"]
    angles.to_csv(partial[0], index=False)
    keypoints.to_csv(partial[1], index=False)
    angle, joint, *plots = person_choice([str(p) for p in partial], 0)
    assert "left_elbow" not in angle["choices"] and "right_elbow" in angle["choices"]
    assert "left_wrist" not in joint["choices"] and "right_wrist" in joint["choices"]
    assert joint["value"] == "right_wrist" and all(p["visible"] for p in plots)


def test_motion_png_is_a_real_image(kalman_run, tmp_path):
    result, _ = kalman_run
    png = mp.write_motion_png(result.files[3], tmp_path / "angles.png", title="people")
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] >= 600 and im.size[1] >= 400
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # lines and labels drawn, not a blank canvas
    empty = tmp_path / "empty.csv"
    empty.write_text("frame,timestamp_s,person_id,mean_confidence\n")
    assert mp.write_motion_png(empty, tmp_path / "none.png") is None


def test_cli_writes_angles_csv_and_png_per_video(coco_truth, coco_json, tmp_path):
    from rfdetr_demo import cli

    truth = next(t for t in coco_truth.values() if t.file_name == "000000197388.jpg")
    rgb = np.asarray(Image.open(COCO_DIR / truth.file_name).convert("RGB"))
    clip = make_clip(tmp_path / "walk.mp4", [rgb] * 4, size=(truth.width, truth.height), fps=10)
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    options = cli.BatchOptions(out_dir=tmp_path / "out", resolution=288, smoothing="one-euro")
    (result,) = cli.run_batch(service, [clip], options, progress=False)
    names = sorted(Path(p).name for p in result.outputs)
    assert names == sorted(
        ["walk_keypoints.mp4", "walk_frames.jsonl", "walk_keypoints.csv", "walk_angles.csv", "walk_angles.png"]
    )
    assert len(pd.read_csv(tmp_path / "out" / "walk_angles.csv")) == 4 * len(truth.key_points)
    with Image.open(tmp_path / "out" / "walk_angles.png") as im:
        assert im.format == "PNG"
    args = cli.build_parser().parse_args(["predict", str(clip), "--out", "x", "--smoothing", "off"])
    assert args.smoothing == "off"
    assert cli.build_parser().parse_args(["predict", str(clip), "--out", "x"]).smoothing == "kalman"
