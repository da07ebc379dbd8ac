"""Model runs for the evaluation: images (folder, files, zip) through the model service, files, gallery, the CLI."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rfdetr_demo.evaluate import EvaluationError
from rfdetr_demo.evaluate.gallery import GT_COLOR, worst_gallery
from rfdetr_demo.evaluate.pipeline import EvaluationRequest, evaluate
from rfdetr_demo.evaluate.report import metrics_dict, write_outputs
from rfdetr_demo.evaluate.runner import EvaluationCancelled, RunOptions
from tests.conftest import COCO_DIR


@pytest.fixture()
def image_dir(coco_image_paths, tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for p in coco_image_paths.values():
        shutil.copy(p, folder / p.name)
    return folder


def test_replayed_ground_truth_scores_one_with_calibration(replay_service, coco_json, image_dir, tmp_path):
    seen = []
    request = EvaluationRequest(coco_json, images=[image_dir], options=RunOptions(threshold=0.5, batch_size=3))
    evaluation = evaluate(request, replay_service, on_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 4), (3, 4), (4, 4)]
    assert replay_service._predictor.calls == 2  # two batches, not four single images
    score = evaluation.first
    assert score.prediction_set.source == "model" and score.stats["AP"] == 1.0
    assert score.calibration is not None and score.calibration["coverage"]["1sigma"] == 1.0  # zero error, σ > 0
    files = write_outputs(evaluation, tmp_path / "out")
    names = {p.name for p in files}
    assert {"metrics.json", "per_image.csv", "per_keypoint.png", "calibration.png"} <= names
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["AP"] == 1.0 and metrics["calibration"]["coverage"]["2sigma"] == 1.0
    assert {"AP50", "AP75", "APm", "APl", "AR", "per_keypoint", "sets"} <= metrics.keys()
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert len(rows) == 4 and {r["mean_oks"] for r in rows} == {"1.0"}
    results_file = next(p for p in files if p.name.endswith("_coco_results.json"))
    again = evaluate(EvaluationRequest(coco_json, results=[results_file]))  # the run's file scores the same
    assert again.first.stats == score.stats and again.first.calibration == score.calibration
    for png in (tmp_path / "out").glob("*.png"):
        assert Image.open(png).size[0] >= 600


def test_cancel_between_batches(replay_service, coco_json, image_dir):
    calls = []
    request = EvaluationRequest(coco_json, images=[image_dir], options=RunOptions(batch_size=2))
    with pytest.raises(EvaluationCancelled, match="after 2 of 4"):
        evaluate(request, replay_service, should_stop=lambda: (calls.append(1), len(calls) > 1)[1])
    assert replay_service._predictor.images_seen == 2


def test_gallery_draws_truth_and_prediction_worst_first(replay_service, coco_json, image_dir, tmp_path):
    coco = json.loads(coco_json.read_text())
    results = [
        {"image_id": a["image_id"], "category_id": 1, "score": 0.9,
         "keypoints": [v + (5 * (a["image_id"] == 197388) if i % 3 != 2 else 0) for i, v in enumerate(a["keypoints"])]}
        for a in coco["annotations"] if a["num_keypoints"] > 0
    ]  # fmt: skip
    path = tmp_path / "shifted.json"
    path.write_text(json.dumps(results))
    evaluation = evaluate(EvaluationRequest(coco_json, images=[image_dir], results=[path]), replay_service)
    shifted = evaluation.scores[1]
    gallery = worst_gallery(evaluation, shifted, count=2)
    assert len(gallery) == 2
    first, caption = gallery[0]
    assert caption.startswith("000000197388.jpg · OKS 0.") and "/5 found" in caption
    assert (np.abs(first.astype(int) - GT_COLOR).sum(axis=2) == 0).sum() > 50  # grey ground truth is drawn
    original = np.asarray(Image.open(COCO_DIR / "000000197388.jpg").convert("RGB"))
    assert first.shape == original.shape and (first != original).any(axis=2).mean() > 0.01


def test_zip_and_loose_files_give_the_same_scores(replay_service, coco_json, coco_image_paths, tmp_path):
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in coco_image_paths.values():
            z.write(p, f"val/{p.name}")
    from_zip = evaluate(EvaluationRequest(coco_json, images=[archive]), replay_service)
    loose = evaluate(EvaluationRequest(coco_json, images=list(coco_image_paths.values())), replay_service)
    assert from_zip.first.stats == loose.first.stats and from_zip.first.stats["AP"] == 1.0


def test_bad_image_inputs(replay_service, coco_json, coco_image_paths, tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../outside.jpg", b"x")
    paths = list(coco_image_paths.values())
    small = tmp_path / "000000000785.jpg"
    Image.open(coco_image_paths[785]).resize((320, 212)).save(small)
    cases = [
        ([evil], {}, "pointing outside the archive"),
        (paths[:3], {}, "1 of 4 images named in the annotations are missing"),
        (paths, {"max_images": 3}, "at most 3"),
        ([small, *paths[1:]], {}, "is 320×212 but the annotations say 640×425"),
        ([tmp_path / "nowhere"], {}, "no such file or folder"),
    ]
    for images, extra, message in cases:
        with pytest.raises(EvaluationError, match=message):
            evaluate(EvaluationRequest(coco_json, images=images, **extra), replay_service)
    five = json.loads(coco_json.read_text())
    five["categories"][0].update(keypoints=five["categories"][0]["keypoints"][:5], skeleton=[])
    ann5 = tmp_path / "five.json"
    ann5.write_text(json.dumps(five))
    with pytest.raises(EvaluationError, match=r"model predicts 17 keypoints but annotations five\.json have 5"):
        evaluate(EvaluationRequest(ann5, images=paths), replay_service)
    with pytest.raises(EvaluationError, match="give the images"):
        evaluate(EvaluationRequest(coco_json), replay_service)


def test_metrics_dict_has_one_entry_per_set(replay_service, coco_json, image_dir, tmp_path):
    evaluation = evaluate(EvaluationRequest(coco_json, images=[image_dir]), replay_service)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(evaluation.first.prediction_set.results))
    both = evaluate(EvaluationRequest(coco_json, images=[image_dir], results=[path, path]), replay_service)
    metrics = metrics_dict(both)
    assert [s["name"] for s in metrics["sets"]] == ["replay", "run", "run (2)"]
    assert metrics["annotations"]["sigma_source"] == "COCO" and len(metrics["annotations"]["sigmas"]) == 17


@pytest.mark.model
def test_cli_end_to_end_with_the_random_weight_model(coco_json, tmp_path, capsys):
    from rfdetr_demo.cli import main

    out = tmp_path / "eval"
    argv = ["evaluate", "--annotations", str(coco_json), "--images", str(COCO_DIR), "--out", str(out)]
    model = ["--random-weights", "--device", "cpu", "--resolution", "192", "--engine", "torch", "--no-progress"]
    assert main([*argv, *model, "--threshold", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:4] == ["set", "AP", "AP50", "AP75"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0
    assert metrics["model"]["random_weights"] is True and metrics["settings"]["resolution"] == 192
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 4
    results = json.loads(next(out.glob("*_coco_results.json")).read_text())
    assert isinstance(results, list)


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, coco_json):
    from rfdetr_demo.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["evaluate", "--annotations", str(bad), "--results", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: annotations bad.json: not JSON (Expecting property name enclosed in double quotes at line 1 column 2)"
    ]
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert main(["evaluate", "--annotations", str(coco_json), "--results", str(empty), "--out", str(tmp_path)]) == 2
    assert "holds no predictions" in capsys.readouterr().err
