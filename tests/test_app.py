"""App level: launch the real Blocks (replay model) and call /predict_image through gradio_client."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rfdetr_demo.results.render import DEFAULT_VIEWS, normalize_views
from tests.helpers import serve_replay_app


@pytest.fixture(scope="module")
def served_app(coco_json):
    with serve_replay_app(coco_json) as served:
        yield served


@pytest.fixture(scope="module")
def client(served_app):
    from gradio_client import Client

    return Client(served_app[0], verbose=False)


def test_api_lists_predict_image_with_keyword_parameters(client):
    info = client.view_api(print_info=False, return_format="dict")
    params = {p["parameter_name"] for p in info["named_endpoints"]["/predict_image"]["parameters"]}
    assert {"image", "threshold", "keypoint_threshold", "resolution", "views"} <= params
    named = info["named_endpoints"]
    public = {"/evaluate", "/models"}
    assert all(name.startswith("/predict") or name in public for name in named), "UI-only events stay private"


def test_predict_image_returns_views_tables_and_json(client, coco_image_paths, coco_truth):
    from gradio_client import handle_file

    views, persons, keypoints, result, files, summary = client.predict(
        image=handle_file(str(coco_image_paths[196141])),
        keypoint_threshold=0.7,
        views=["Combined", "Skeleton", "Labels"],
        api_name="/predict_image",
    )
    truth = coco_truth[196141].key_points
    assert [v["caption"] for v in views] == ["Combined", "Skeleton", "Labels"]
    for v in views:
        with Image.open(v["image"]) as im:
            assert im.size == (640, 429) and im.format == "JPEG"
    assert len(persons["data"]) == len(truth)
    assert persons["headers"][:3] == ["id", "class", "score"]
    assert len(keypoints["data"]) == len(truth) * 17
    visible_col = keypoints["headers"].index("visible")
    assert sum(bool(r[visible_col]) for r in keypoints["data"]) == int((truth.keypoint_confidence >= 0.7).sum())
    assert result["settings"]["keypoint_threshold"] == 0.7
    xy = np.array([[p["x"], p["y"]] for inst in result["instances"] for p in inst["keypoints"]])
    np.testing.assert_allclose(xy, truth.xy.reshape(-1, 2), atol=0.01)
    names = sorted(f.rsplit("/", 1)[-1] for f in files)
    assert names == ["000000196141.csv", "000000196141.json", "000000196141_coco_results.json"]
    with open(next(f for f in files if f.endswith("_coco_results.json"))) as fh:
        coco = json.load(fh)
    assert {r["image_id"] for r in coco} == {196141}
    assert "inference" in summary

    views, *_, summary = client.predict(
        image=handle_file(str(coco_image_paths[196141])), views=[], api_name="/predict_image"
    )
    assert [v["caption"] for v in views] == list(normalize_views(list(DEFAULT_VIEWS)))
    assert "No view selected: showing the default views" in summary


@pytest.mark.parametrize(("content", "message"), [(b"", "empty"), (b"%PDF-1.4 not an image", "Could not read")])
def test_bad_inputs_give_clear_errors_and_server_keeps_serving(client, tmp_path, coco_image_paths, content, message):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "upload.jpg"
    bad.write_bytes(content)
    with pytest.raises(AppError, match=message):
        client.predict(image=handle_file(str(bad)), api_name="/predict_image")
    with pytest.raises(AppError, match="multiple of 24"):
        client.predict(image=handle_file(str(coco_image_paths[785])), resolution=500, api_name="/predict_image")
    views, persons, *_ = client.predict(image=handle_file(str(coco_image_paths[785])), api_name="/predict_image")
    assert len(persons["data"]) == 1 and len(views) == 4
