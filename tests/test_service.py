"""Model service: one load under concurrency, status on failure, background rows dropped, display-only re-render."""

import threading
import time

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.image.task import render_run, run_image
from rfdetr_demo.models.service import ModelService, ModelUnavailable
from rfdetr_demo.results.prediction import ModelInfo
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.ui.models_panel import status_markdown
from tests.conftest import replay_info
from tests.helpers import run_concurrently
from tests.support.replay import ReplayPredictor


def _kp_with_background(img):
    n = 3
    return sv.KeyPoints(
        xy=np.full((n, 17, 2), 10.0, np.float32),
        keypoint_confidence=np.full((n, 17), 0.9, np.float32),
        detection_confidence=np.array([0.6, 0.9, 0.8], np.float32),
        class_id=np.array([0, 1, 0]),
        visible=np.ones((n, 17), bool),
        data={
            "class_name": np.array(["person", "__background__", "person"], dtype=object),
            "xyxy": np.tile(np.array([0, 0, 20, 20], np.float32), (n, 1)),
        },
    )


def test_background_rows_dropped_and_sorted_by_score():
    service = ModelService(lambda: (ReplayPredictor(_kp_with_background), KeypointSchema.coco(), replay_info()))
    pred = service.predict(np.zeros((40, 50, 3), np.uint8), threshold=0.1)
    assert list(pred.key_points.data["class_name"]) == ["person", "person"]
    np.testing.assert_allclose(pred.key_points.detection_confidence, [0.8, 0.6])
    assert pred.image_size == (50, 40)


def test_single_load_under_concurrent_calls():
    loads = []

    def slow_loader():
        loads.append(1)
        time.sleep(0.3)
        return ReplayPredictor(_kp_with_background), KeypointSchema.coco(), replay_info()

    service = ModelService(slow_loader)
    results, errors = run_concurrently(lambda: service.predict(np.zeros((8, 8, 3), np.uint8), 0.1), 8, 10)
    assert not errors and len(results) == 8
    assert len(loads) == 1


def test_failed_load_reports_and_keeps_raising_clearly():
    def broken():
        raise RuntimeError("weights unreachable: pass --checkpoint")

    service = ModelService(broken)
    with pytest.raises(ModelUnavailable, match="pass --checkpoint"):
        service.predict(np.zeros((8, 8, 3), np.uint8))
    status = service.status()
    assert status.state == "error" and "could not be loaded" in status_markdown(status)


def test_invalid_arguments_are_value_errors(replay_service):
    with pytest.raises(ValueError, match="multiple of 24"):
        replay_service.predict(np.zeros((8, 8, 3), np.uint8), resolution=300)
    with pytest.raises(ValueError, match="RGB uint8"):
        replay_service.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="threshold"):
        replay_service.predict(np.zeros((8, 8, 3), np.uint8), threshold=2.0)


def test_display_changes_do_not_rerun_the_model(replay_service, replay_predictor, coco_image_paths, tmp_path):
    run = run_image(replay_service, coco_image_paths[196141], threshold=0.5)
    assert replay_predictor.calls == 1
    out_a = render_run(run, 0.0, ["Vertices"], tmp_path / "a")
    out_b = render_run(run, 0.95, ["Skeleton", "Boxes"], tmp_path / "b")
    assert replay_predictor.calls == 1
    assert out_a.persons["visible_keypoints"].sum() > out_b.persons["visible_keypoints"].sum() == 0
    assert [c for _, c in out_b.views] == ["Skeleton", "Boxes"]


def test_status_markdown_warns_about_random_weights():
    info = ModelInfo("m", "random weights (untrained)", "cpu", "fp32", 288, 17, random_weights=True)
    service = ModelService(lambda: (ReplayPredictor(_kp_with_background), KeypointSchema.coco(), info))
    service.wait(10)
    assert "meaningless" in status_markdown(service.status())


@pytest.mark.model
def test_real_model_random_weights_fields_and_shapes(random_model_service, coco_image_paths):
    from rfdetr_demo.image.decode import load_image

    rgb = load_image(coco_image_paths[785]).rgb
    preds = random_model_service.predict_batch([rgb, rgb[:200, :300].copy()], threshold=0.0, resolution=288)
    assert len(preds) == 2
    for pred, (h, w) in zip(preds, [(425, 640), (200, 300)], strict=True):
        kp = pred.key_points
        assert pred.image_size == (w, h) and pred.resolution == 288
        n = len(kp)
        assert kp.xy.shape == (n, 17, 2) and kp.keypoint_confidence.shape == (n, 17)
        assert kp.data["covariance"].shape == (n, 17, 2, 2) and kp.data["xyxy"].shape == (n, 4)
        names = kp.data["class_name"]
        assert "__background__" not in set(names) and "" not in set(names)
        scores = kp.detection_confidence
        assert np.all(np.diff(scores) <= 1e-6), "sorted best first"
    info = random_model_service.info
    assert info.random_weights and info.device == "cpu" and info.num_keypoints == 17
    assert info.engine == "torch", "random weights never pay for an engine export under --engine auto"


@pytest.mark.model
def test_real_model_concurrent_requests_are_isolated(random_model_service):
    """Three different images at once: each request gets exactly its own sequential answer (boxes, scores,
    keypoints), not a neighbour's, and the answers differ from each other (so a mix-up would show)."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 128 + 24 * i, 3), dtype=np.uint8) for i in range(3)]

    def run(i: int):
        return random_model_service.predict(images[i], threshold=0.0, resolution=192)

    alone = [run(i) for i in range(3)]
    order = iter(range(3))
    lock = threading.Lock()

    def next_request():
        with lock:
            i = next(order)
        return i, run(i)

    together, errors = run_concurrently(next_request, 3, 120)
    assert not errors and sorted(i for i, _ in together) == [0, 1, 2]
    for i, pred in together:
        ref = alone[i].key_points
        assert pred.image_size == (128 + 24 * i, 96)
        np.testing.assert_allclose(pred.key_points.data["xyxy"], ref.data["xyxy"], atol=1e-3)
        np.testing.assert_allclose(pred.key_points.detection_confidence, ref.detection_confidence, atol=1e-5)
        np.testing.assert_allclose(pred.key_points.xy, ref.xy, atol=1e-3)
    a, b = alone[0].key_points, alone[1].key_points
    n = min(len(a), len(b))
    assert n > 0 and not np.allclose(a.detection_confidence[:n], b.detection_confidence[:n], atol=1e-4)


def test_latency_is_recorded_per_resolution_for_the_preset_labels(replay_service):
    from rfdetr_demo.ui.controls import resolution_choices

    replay_service.predict(np.zeros((48, 64, 3), np.uint8), 0.5, resolution=288)
    labels = dict((value, label) for label, value in resolution_choices(576, replay_service.latency))
    assert replay_service.latency.latency_ms(288) is not None
    assert labels[288].startswith("288² · fastest · ~")
    assert "~" not in labels[384], "no latency is claimed for a resolution never measured"
    assert 576 in labels
