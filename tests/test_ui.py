"""The flat UI: handlers are module-level functions of a context, bound for Gradio without losing what it reads."""

from __future__ import annotations

import inspect
import shutil
import typing

import gradio as gr

from rfdetr_demo.config import Settings
from rfdetr_demo.defaults import CHECKOUT_EXAMPLES_DIR
from rfdetr_demo.ui.app import build_demo
from rfdetr_demo.ui.common import UiContext, bind
from rfdetr_demo.ui.image_tab import example_images, predict_image
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
    views, persons, *_rest, run = predict_image(ctx, str(coco_image_paths[785]), views=["Combined"])
    assert [caption for _img, caption in views] == ["Combined"]
    assert len(persons) == len(coco_truth[785].key_points)
    assert run.prediction.resolution == 288  # the server's default resolution when the call leaves it out


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
