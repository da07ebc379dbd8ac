"""Rendering on real COCO ground truth: colours not swapped, hidden joints not drawn, every view draws."""

import numpy as np
import pytest

from rfdetr_demo.image.decode import load_image
from rfdetr_demo.results.prediction import apply_keypoint_threshold
from rfdetr_demo.results.render import (
    ALL_VIEWS,
    LEFT_COLOR,
    RIGHT_COLOR,
    VIEW_BOXES,
    VIEW_HALO,
    VIEW_SKELETON,
    VIEW_VERTICES,
    normalize_views,
    render,
    tile_views,
)
from rfdetr_demo.results.schema import COCO_KEYPOINT_NAMES, KeypointSchema

SCHEMA = KeypointSchema.coco()


def render_view(rgb, kp, schema, view):
    return render(rgb, kp, schema, [view])[0]


def render_views(rgb, kp, schema, views):
    return list(zip(views, render(rgb, kp, schema, views), strict=True))


IMAGE_ID = 785  # one skier, all 17 joints labelled visible


@pytest.fixture()
def skier(coco_truth, coco_image_paths):
    rgb = load_image(coco_image_paths[IMAGE_ID]).rgb
    return rgb, coco_truth[IMAGE_ID].key_points


def _color_at(img, xy):
    x, y = (round(v) for v in xy)
    return img[y, x].astype(int)


def test_vertex_colours_are_rgb_not_bgr(skier):
    rgb, kp = skier
    out = render_view(rgb, apply_keypoint_threshold(kp, 0.0), SCHEMA, VIEW_VERTICES)
    left = _color_at(out, kp.xy[0, COCO_KEYPOINT_NAMES.index("left_knee")])
    right = _color_at(out, kp.xy[0, COCO_KEYPOINT_NAMES.index("right_knee")])
    assert np.abs(left - np.array(LEFT_COLOR.as_rgb())).max() <= 3, left
    assert np.abs(right - np.array(RIGHT_COLOR.as_rgb())).max() <= 3, right


def test_hidden_joints_are_not_drawn(coco_truth, coco_image_paths):
    # Image 40083 has joints labelled "occluded" (v=1 → replay confidence 0.6).
    image_id = next(i for i, t in coco_truth.items() if (t.key_points.keypoint_confidence == 0.6).any())
    rgb = load_image(coco_image_paths[image_id]).rgb
    kp = coco_truth[image_id].key_points
    person, joint = np.argwhere(kp.keypoint_confidence == 0.6)[0]
    shown = render_view(rgb, apply_keypoint_threshold(kp, 0.5), SCHEMA, VIEW_VERTICES)
    hidden = render_view(rgb, apply_keypoint_threshold(kp, 0.7), SCHEMA, VIEW_VERTICES)
    x, y = (round(v) for v in kp.xy[person, joint])
    window = (slice(y - 1, y + 2), slice(x - 1, x + 2))
    assert not np.array_equal(shown[window], rgb[window]), "joint above threshold is drawn"
    # The occluded joint must leave its pixels untouched (no other visible joint lies within the vertex radius).
    others = apply_keypoint_threshold(kp, 0.7)
    near = np.linalg.norm(kp.xy[others.visible] - kp.xy[person, joint], axis=1) < 15
    assert not near.any(), "test premise: no other visible joint covers this one"
    assert np.array_equal(hidden[window], rgb[window]), "joint below threshold is not drawn"
    assert not apply_keypoint_threshold(kp, 0.7).visible[person, joint]


def test_skeleton_draws_ear_shoulder_edge(skier):
    rgb, kp = skier
    out = render_view(rgb, apply_keypoint_threshold(kp, 0.0), SCHEMA, VIEW_SKELETON)
    ear = kp.xy[0, COCO_KEYPOINT_NAMES.index("left_ear")]
    shoulder = kp.xy[0, COCO_KEYPOINT_NAMES.index("left_shoulder")]
    mid = (ear + shoulder) / 2
    assert np.abs(_color_at(out, mid) - np.array(LEFT_COLOR.as_rgb())).max() <= 40


def test_every_view_draws_something_and_keeps_size(skier):
    rgb, kp = skier
    before = rgb.copy()
    views = render_views(rgb, apply_keypoint_threshold(kp, 0.3), SCHEMA, ALL_VIEWS)
    assert [v for v, _ in views] == list(ALL_VIEWS)
    for name, img in views:
        assert img.shape == rgb.shape and img.dtype == np.uint8, name
        changed = np.any(img != rgb, axis=-1).mean()
        assert changed > 0.001, f"{name} drew nothing"
    assert np.array_equal(rgb, before), "the source image is never drawn on"


def test_halo_follows_covariance(skier):
    rgb, kp = skier
    small = render_view(rgb, apply_keypoint_threshold(kp, 0.0), SCHEMA, VIEW_HALO)
    bigger = kp.data["covariance"] * 4.0
    kp_big = apply_keypoint_threshold(kp, 0.0)
    kp_big.data["covariance"] = bigger
    large = render_view(rgb, kp_big, SCHEMA, VIEW_HALO)
    assert np.any(large != rgb, axis=-1).sum() > np.any(small != rgb, axis=-1).sum()


def test_boxes_view_labels_and_box_edges(skier):
    rgb, kp = skier
    out = render_view(rgb, kp, SCHEMA, VIEW_BOXES)
    x1, y1, _x2, y2 = (int(v) for v in kp.data["xyxy"][0])
    column = out[y1 + 20 : y2 - 20, x1]
    assert (np.abs(column.astype(int) - np.array((163, 81, 251))).max(axis=1) <= 10).mean() > 0.9


def test_empty_prediction_returns_untouched_copy(skier):
    rgb, kp = skier
    empty = kp[np.zeros(len(kp), bool)]
    out = render_view(rgb, empty, SCHEMA, VIEW_SKELETON)
    assert np.array_equal(out, rgb) and out is not rgb


def test_normalize_views_validates():
    assert normalize_views(None)
    assert normalize_views("Boxes") == ["Boxes"]
    with pytest.raises(ValueError, match="unknown view"):
        normalize_views(["Nope"])


def test_tile_views_grid():
    tiles = [np.full((4, 6, 3), i, np.uint8) for i in range(4)]
    grid = tile_views(tiles, columns=2)
    assert grid.shape == (8, 12, 3) and grid[5, 7, 0] == 3
