"""The flat UI: handlers are module-level functions of a context, bound for Gradio without losing what it reads."""

from __future__ import annotations

import inspect
import shutil
import typing

import gradio as gr
import pytest
import requests

from rfdetr_demo.config import Settings
from rfdetr_demo.defaults import CHECKOUT_EXAMPLES_DIR
from rfdetr_demo.models.loading import ModelSpec, build_error
from rfdetr_demo.models.service import ModelService, ModelUnavailable
from rfdetr_demo.ui.app import build_demo
from rfdetr_demo.ui.handlers import UiContext, bind
from rfdetr_demo.ui.image_tab import detect, example_images, predict_image
from rfdetr_demo.ui.models_panel import status_markdown
from rfdetr_demo.ui.video_tab import example_videos, predict_video
from rfdetr_demo.ui.webcam_tab import run_source


def test_bound_handlers_keep_name_docs_signature_and_request_hints(replay_service):
    ctx = UiContext(replay_service)
    bound = bind(predict_video, ctx, resolution=384)
    assert bound.__name__ == "predict_video" and "H.264" in bound.__doc__
    params = inspect.signature(bound).parameters
    assert next(iter(params)) == "video" and "ctx" not in params
    assert params["resolution"].default == 384 and params["threshold"].default == 0.5
    assert typing.get_type_hints(bound)["request"] == gr.Request | None  # Gradio injects the request from this
    assert inspect.isgeneratorfunction(bind(run_source, ctx)), "a stream handler stays a generator for Gradio"


def test_handlers_run_without_the_page(replay_service, coco_image_paths, coco_truth):
    ctx = UiContext(replay_service, Settings(resolution=288))
    out = detect(ctx, str(coco_image_paths[785]), views=["Combined"])
    views, persons, ref = out["gallery"], out["persons"], out["state"]
    assert [caption for _img, caption in views] == ["Combined"]
    assert len(persons) == len(coco_truth[785].key_points)
    assert ref.prediction.resolution == 288  # the server's default resolution when the call leaves it out
    assert "state" not in predict_image(ctx, str(coco_image_paths[785]))  # the API's outputs: no kept run


def test_api_advertises_the_servers_default_resolution(replay_service):
    demo = build_demo(Settings(resolution=384), replay_service)
    endpoints = demo.get_api_info()["named_endpoints"]
    for name in ("/predict_image", "/predict_video", "/predict_frame"):
        resolution = next(p for p in endpoints[name]["parameters"] if p["parameter_name"] == "resolution")
        assert resolution["parameter_default"] == 384, name


def test_examples_come_from_one_configurable_folder(replay_service, coco_image_paths, tmp_path):
    default = UiContext(replay_service)
    assert example_images(default) == sorted(str(p) for p in CHECKOUT_EXAMPLES_DIR.glob("*.jpg"))
    assert example_videos(default) and all(p.endswith(".mp4") for p in example_videos(default))
    shutil.copy(coco_image_paths[785], tmp_path / "skier.jpg")
    custom = UiContext(replay_service, Settings(examples_dir=str(tmp_path)))
    assert example_images(custom) == [str(tmp_path / "skier.jpg")] and example_videos(custom) == []
    missing = UiContext(replay_service, Settings(examples_dir=str(tmp_path / "nope")))
    assert example_images(missing) == []
    demo = build_demo(Settings(examples_dir=str(tmp_path)), replay_service)
    datasets = [c for c in demo.config["components"] if c["type"] == "dataset"]
    assert [len(d["props"]["samples"]) for d in datasets] == [1]  # one image example, no video examples


OFFLINE = (
    "HTTPSConnectionPool(host='storage.googleapis.com', port=443): Max retries exceeded with url: "
    '/rfdetr/rf-detr-keypoint-preview-xlarge.pth (Caused by NameResolutionError("Failed to resolve <host>"))'
)


def offline_service() -> ModelService:
    """A service whose load fails the way the pretrained download fails offline (requests' ConnectionError)."""

    def load():
        raise build_error(ModelSpec(), None, requests.ConnectionError(OFFLINE))

    service = ModelService(load)
    service.start()
    with pytest.raises(ModelUnavailable):
        service.wait(10)
    return service


def test_offline_status_is_one_sentence_with_the_details_folded_away():
    service = offline_service()
    text = status_markdown(service.status())
    line, folded = text.split("\n\n", 1)
    assert "could not be downloaded" in line and "--checkpoint" in line and "--random-weights" in line
    assert "HTTPSConnectionPool" not in line and line.count(". ") <= 2
    assert folded.startswith("<details>") and "<details open" not in folded
    assert "HTTPSConnectionPool" in folded and "&lt;host&gt;" in folded  # the raw error, HTML-escaped
    with pytest.raises(ModelUnavailable) as err:  # a request is told the same short story, not the raw error
        service.wait(1)
    assert "could not be downloaded" in str(err.value) and "HTTPSConnectionPool" not in str(err.value)


def test_other_load_failures_still_say_what_failed():
    service = ModelService(lambda: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    service.start()
    with pytest.raises(ModelUnavailable, match="CUDA out of memory"):
        service.wait(10)
    text = status_markdown(service.status())
    assert text.startswith("❌ **The model could not be loaded.**")
    assert "CUDA out of memory" in text.split("<details>")[1]
    not_found = build_error(ModelSpec(checkpoint="/models/x.pth"), "/models/x.pth", ValueError("bad zip"))
    assert "could not be loaded" in not_found.summary and "complete RF-DETR" in not_found.advice


def test_closing_the_page_stops_that_sessions_video_and_evaluation_runs(replay_service):
    """What the page registers for ``unload`` stops the closed session's Video and Evaluate runs, no other's."""
    from types import SimpleNamespace

    from rfdetr_demo.ui import evaluate_tab, video_tab

    demo = build_demo(Settings(), replay_service)
    unload = [d for d in demo.fns.values() if (None, "unload") in [tuple(t) for t in d.targets]]
    closed, other = SimpleNamespace(session_hash="closed"), SimpleNamespace(session_hash="other")
    with (
        video_tab._cancels.running(closed) as video_run,
        evaluate_tab._cancels.running(closed) as eval_run,
        video_tab._cancels.running(other) as other_run,
    ):
        for dep in unload:
            dep.fn(closed)
        assert video_run.is_set() and eval_run.is_set() and not other_run.is_set()


def test_display_changes_made_during_a_redraw_are_not_dropped(replay_service):
    """Ticking views while a redraw is pending redraws again with the latest ticks (Gradio's default drops them)."""
    demo = build_demo(Settings(), replay_service)
    modes = {d["api_name"]: d["trigger_mode"] for d in demo.config["dependencies"]}
    assert modes["rerender"] == "always_last"
