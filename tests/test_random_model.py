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
    # every visible joint lies in (or just beside, as for a person at the edge) the image, and the skeleton spreads
    # over more than a few pixels
    xy, size = kp.xy[kp.visible], np.array([rgb.shape[1], rgb.shape[0]])
    assert np.all((xy >= -0.05 * size) & (xy <= 1.05 * size))
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


def _example_pictures() -> dict[str, np.ndarray]:
    """Every example photo and every frame of the example clip, RGB, by name."""
    import av

    from rfdetr_demo.defaults import CHECKOUT_EXAMPLES_DIR, example_files
    from rfdetr_demo.image.decode import load_image

    pictures = {p: load_image(p).rgb for p in example_files(CHECKOUT_EXAMPLES_DIR, ".jpg")}
    clips = example_files(CHECKOUT_EXAMPLES_DIR, ".mp4")
    assert len(pictures) >= 4 and clips, "the checkout's example photos and clip"
    for clip in clips:
        with av.open(clip) as container:
            for i, frame in enumerate(container.decode(video=0)):
                pictures[f"{clip} frame {i}"] = frame.to_ndarray(format="rgb24")
    return pictures


@pytest.mark.parametrize("resolution", [288, 384, 480, 576])
def test_random_model_finds_people_on_every_example_at_every_resolution(random_model_service, resolution):
    """A first visit offline shows people (with visible joints) on each example photo and each frame of the clip."""
    pictures = _example_pictures()
    found = random_model_service.predict_batch(list(pictures.values()), DEFAULT_THRESHOLD, resolution)
    for name, pred in zip(pictures, found, strict=True):
        kp = pred.displayed(DEFAULT_KEYPOINT_THRESHOLD)
        assert len(kp) == 3, f"{name} at {resolution}²: scores {kp.detection_confidence}"
        assert set(kp.data["class_name"]) == {"person"}
        assert kp.visible.sum(axis=1).min() >= 5, f"{name} at {resolution}²: joints shown per person"


def test_random_model_tracks_someone_through_the_example_clip(random_model_service, tmp_path):
    """The example clip has a tracked person in every frame, so the motion panel has people, angles and plots."""
    from rfdetr_demo.defaults import CHECKOUT_EXAMPLES_DIR, example_files
    from rfdetr_demo.ui.motion_panel import motion_choices, motion_data
    from rfdetr_demo.video.pipeline import VideoOptions, run_video

    clip = example_files(CHECKOUT_EXAMPLES_DIR, ".mp4")[0]
    result = run_video(random_model_service, clip, VideoOptions(resolution=288), out_dir=tmp_path)
    assert result.frames_done == 5 and (result.frames["ids"].str.len() > 0).all(), result.frames
    files = [str(f) for f in result.files]  # as the page's gr.File gives them
    people, angle, joint, *_ = motion_choices(files)
    assert people["choices"] and angle["value"] and joint["value"]
    plots = motion_data(files, people["value"], angle["value"], joint["value"])
    assert all(len(df) > 0 for df in plots)


def test_a_second_random_checkpoint_draws_other_people_and_stays_labelled(random_model_service, tmp_path):
    """`rfdetr-demo random-checkpoint PATH` then `--checkpoint other=PATH`: "Compare with…" offline has a second
    model that finds people too, with other numbers, still marked as random weights."""
    from rfdetr_demo.cli import main
    from rfdetr_demo.models.loading import ModelSpec, load_rfdetr
    from rfdetr_demo.models.service import ModelService

    path = tmp_path / "other.pth"
    assert main(["random-checkpoint", str(path), "--seed", "1"]) == 0 and path.stat().st_size > 1_000_000
    other = ModelService(lambda: load_rfdetr(ModelSpec(checkpoint=str(path), device="cpu", resolution=288)))
    other.start()
    other.wait(300)
    assert other.info.random_weights and other.info.class_names == ["person"]
    rgb = next(iter(_example_pictures().values()))
    mine, theirs = (s.predict(rgb, DEFAULT_THRESHOLD, 288).displayed(DEFAULT_KEYPOINT_THRESHOLD)
                    for s in (random_model_service, other))  # fmt: skip
    assert len(mine) == len(theirs) == 3
    assert not np.allclose(np.sort(mine.xy.ravel()), np.sort(theirs.xy.ravel()), atol=1.0), "another seed, others"
