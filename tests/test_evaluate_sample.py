"""The bundled Evaluate sample: found beside the example photos, copied where Gradio serves it, scored end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rfdetr_demo.config import Settings
from rfdetr_demo.defaults import CHECKOUT_EXAMPLES_DIR
from rfdetr_demo.evaluate.sources import SAMPLE_ANNOTATIONS, find_sample
from rfdetr_demo.ui.evaluate_tab import evaluate_predictions, load_sample
from rfdetr_demo.ui.handlers import UiContext


def test_the_checkout_ships_the_coco_sample(coco_json):
    sample = find_sample(CHECKOUT_EXAMPLES_DIR)
    assert sample is not None
    assert json.loads(sample.annotations.read_text()) == json.loads(coco_json.read_text())
    assert sorted(p.name for p in sample.images) == sorted(
        image["file_name"] for image in json.loads(coco_json.read_text())["images"]
    )


def test_a_folder_without_the_file_or_a_photo_offers_no_sample(tmp_path, coco_json, coco_image_paths):
    assert find_sample(tmp_path) is None  # no annotation file
    shutil.copy(coco_json, tmp_path / SAMPLE_ANNOTATIONS)
    for path in list(coco_image_paths.values())[:-1]:
        shutil.copy(path, tmp_path)
    assert find_sample(tmp_path) is None  # one photo it names is missing
    shutil.copy(list(coco_image_paths.values())[-1], tmp_path)
    assert len(find_sample(tmp_path).images) == len(coco_image_paths)
    (tmp_path / SAMPLE_ANNOTATIONS).write_text("[1, 2]")
    assert find_sample(tmp_path) is None  # not a COCO file


def test_loaded_sample_is_a_copy_that_scores_like_the_original(replay_service, tmp_path):
    ctx = UiContext(replay_service, Settings(resolution=288))
    annotations, images, predictions = load_sample(ctx)
    assert predictions is None and len(images) == 4
    assert all(Path(p).parent != CHECKOUT_EXAMPLES_DIR for p in [annotations, *images])  # copies Gradio may serve
    summary, metrics, *_ = evaluate_predictions(ctx, annotations, images, None, 0.5, 288, progress=lambda *a, **k: None)
    assert "4 images · 12 people" in summary and metrics[0][:2] == ["replay", "1.000"]
