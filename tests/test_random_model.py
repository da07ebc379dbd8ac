"""``--random-weights`` draws: the checkpoint's person/background layout, seeded heads, people and joints on a photo."""

import numpy as np
import pytest

from rfdetr_demo.defaults import DEFAULT_KEYPOINT_THRESHOLD, DEFAULT_THRESHOLD
from rfdetr_demo.results.render import render

pytestmark = pytest.mark.model


def test_random_model_has_the_checkpoint_class_layout(random_model_service):
    info = random_model_service.info
    assert info.class_names == ["person"] and info.random_weights


def test_random_model_draws_people_at_default_thresholds(random_model_service, coco_image_paths):
    from rfdetr_demo.image.decode import load_image

    rgb = load_image(coco_image_paths[196141]).rgb
    pred = random_model_service.predict(rgb, threshold=DEFAULT_THRESHOLD)
    kp = pred.displayed(DEFAULT_KEYPOINT_THRESHOLD)
    assert 1 <= len(kp) <= 20 and set(kp.data["class_name"]) == {"person"}
    assert kp.visible.sum() >= 10, "joints above the default keypoint threshold"
    # every visible joint lies in the image and the skeleton spreads over more than a few pixels
    xy = kp.xy[kp.visible]
    assert np.all((xy >= 0) & (xy <= [rgb.shape[1], rgb.shape[0]]))
    assert np.ptp(kp.xy[0][kp.visible[0]], axis=0).max() > 20
    assert np.isfinite(kp.data["covariance"]).all()
    skeleton, ellipses = render(rgb, kp, pred.schema, ["Skeleton", "Uncertainty ellipses"])
    for view in (skeleton, ellipses):
        changed = np.abs(view.astype(int) - rgb.astype(int)).sum(axis=2) > 60
        assert changed.sum() > 200, "drawn keypoint pixels differ from the photo"


def test_random_model_is_the_same_every_start(random_model_service, coco_image_paths):
    """Seeded network and heads: a second build gives the same people (so tests and screenshots are stable)."""
    from rfdetr_demo.image.decode import load_image
    from rfdetr_demo.models.loading import ModelSpec, load_rfdetr
    from rfdetr_demo.results.prediction import drop_background

    rgb = load_image(coco_image_paths[785]).rgb[:192, :256].copy()
    predictor, _, _ = load_rfdetr(ModelSpec(random_weights=True, device="cpu", resolution=192))
    again = drop_background(predictor.predict([rgb], threshold=0.0, resolution=192)[0])
    first = random_model_service.predict(rgb, threshold=0.0, resolution=192).key_points
    assert len(again) > 0
    np.testing.assert_allclose(np.sort(again.detection_confidence), np.sort(first.detection_confidence), atol=1e-4)
