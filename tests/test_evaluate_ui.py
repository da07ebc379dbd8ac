"""Evaluate tab: the handler, the named /evaluate endpoint through gradio_client, and the tab in Chromium."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from PIL import Image

from rfdetr_demo.config import Settings
from rfdetr_demo.ui.app import build_demo
from rfdetr_demo.ui.evaluate_tab import evaluate_predictions
from rfdetr_demo.ui.handlers import UiContext
from tests.helpers import serve_replay_app


def test_handler_scores_replayed_truth_and_returns_every_output(replay_service, coco_json, coco_image_paths):
    ctx = UiContext(replay_service, Settings(resolution=288))
    images = [str(p) for p in coco_image_paths.values()]
    summary, metrics, keypoints, kp_plot, cal_plot, gallery, files = evaluate_predictions(
        ctx, str(coco_json), images, None, 0.5, 288, progress=lambda *a, **k: None
    )
    assert "4 images · 12 people · 17 keypoints" in summary
    assert "under-confident: 100.0 % of joints inside 2σ" in summary  # replay: zero error, ellipses of OKS size
    assert metrics[0][:2] == ["replay", "1.000"] and len(metrics) == 1
    assert [row[0] for row in keypoints][:2] == ["nose", "left_eye"] and keypoints[0][2] == "1.000"
    assert Image.open(kp_plot).format == "PNG" and Image.open(cal_plot).format == "PNG"
    assert len(gallery) == 4 and all("OKS 1.00" in caption for _img, caption in gallery)
    names = {p.rsplit("/", 1)[-1] for p in files}
    assert {"metrics.json", "per_image.csv", "replay_coco_results.json"} <= names
    metrics_file = next(Path(p) for p in files if p.endswith("metrics.json"))
    assert json.loads(metrics_file.read_text())["AP"] == 1.0


def test_handler_bad_inputs_are_clear_errors(replay_service, coco_json, coco_image_paths, tmp_path):
    ctx = UiContext(replay_service, Settings(max_eval_images=3))
    images = [str(p) for p in coco_image_paths.values()]
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("/etc/passwd.jpg", b"x")
    not_json = tmp_path / "ann.json"
    not_json.write_bytes(b"\xff\xd8 a JPEG renamed")
    cases = [
        ((None, images), "annotation file"),
        ((str(coco_json), None, None), "Upload the annotated images"),
        ((str(not_json), None, [str(coco_json)]), "not JSON"),
        ((str(coco_json), images), "at most 3"),
        ((str(coco_json), [str(evil)]), "pointing outside the archive"),
    ]
    for args, message in cases:
        with pytest.raises(gr.Error, match=message):
            evaluate_predictions(ctx, *args, progress=lambda *a, **k: None)


def test_cancel_button_stops_the_sessions_run_before_the_next_batch(replay_service, coco_json, coco_image_paths):
    from types import SimpleNamespace

    from rfdetr_demo.ui.evaluate_tab import cancel_evaluation

    session = SimpleNamespace(session_hash="visitor-1")
    assert cancel_evaluation(session) == "Nothing to cancel."
    ctx = UiContext(replay_service, Settings())
    images = [str(p) for p in coco_image_paths.values()]
    pressed = []

    def progress(*_args, **_kwargs) -> None:  # the visitor presses Cancel as soon as the run starts
        pressed.append(cancel_evaluation(session))

    with pytest.raises(gr.Error, match="cancelled after 0 of 4 images"):
        evaluate_predictions(ctx, str(coco_json), images, None, request=session, progress=progress)
    assert pressed[0].startswith("⏹️") and replay_service._predictor.calls == 0
    assert cancel_evaluation(session) == "Nothing to cancel."  # the run's cancel event is gone


@pytest.fixture(scope="module")
def served(coco_json):
    with serve_replay_app(coco_json, Settings(resolution=288)) as s:
        yield s


def test_evaluate_endpoint_through_gradio_client(served, coco_json, coco_image_paths, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(served[0], verbose=False)
    info = client.view_api(print_info=False, return_format="dict")
    params = [p["parameter_name"] for p in info["named_endpoints"]["/evaluate"]["parameters"]]
    assert params == ["annotations", "images", "predictions", "threshold", "resolution", "model"]
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in coco_image_paths.values():
            z.write(p, p.name)
    summary, metrics, _keypoints, _kp_plot, _cal_plot, gallery, files = client.predict(
        annotations=handle_file(str(coco_json)), images=[handle_file(str(archive))], threshold=0.5,
        api_name="/evaluate",
    )  # fmt: skip
    assert metrics["data"][0][:2] == ["replay", "1.000"] and "12 people" in summary
    assert len(gallery) == 4 and all("OKS 1.00" in item["caption"] for item in gallery)
    assert {Image.open(item["image"]).size for item in gallery} == {(640, 425), (500, 333), (640, 429), (640, 392)}
    downloaded = {f.rsplit("/", 1)[-1] for f in files}
    assert "metrics.json" in downloaded and "calibration.png" in downloaded
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(AppError, match="expected a COCO object"):
        client.predict(annotations=handle_file(str(bad)), predictions=[handle_file(str(bad))], api_name="/evaluate")
    again = client.predict(annotations=handle_file(str(coco_json)), images=[handle_file(str(archive))],
                           api_name="/evaluate")  # fmt: skip
    assert again[1]["data"][0][1] == "1.000", "the server keeps serving after a bad request"


@pytest.mark.browser
def test_evaluate_tab_in_chromium(browser, served, coco_json, coco_image_paths):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(served[0], wait_until="domcontentloaded")
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-annotations input[type=file]").set_input_files(str(coco_json))
    page.locator("#eval-images input[type=file]").set_input_files([str(p) for p in coco_image_paths.values()])
    expect(page.locator("#eval-images")).to_contain_text("000000197388", timeout=60_000)  # uploaded
    page.locator("#run-evaluate").click()
    expect(page.locator("#eval-summary")).to_contain_text("12 people", timeout=90_000)
    expect(page.locator("#eval-metrics")).to_contain_text("replay", timeout=10_000)
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#eval-gallery img')];"
        " return imgs.length >= 4 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=30_000,
    )
    expect(page.locator("#eval-gallery")).to_contain_text("OKS 1.00")
    page.close()  # the README's Evaluate screenshot: tests/test_layout_browser.py (1366 px, the sample set)


def test_progress_moves_per_image_on_one_bar(replay_service, coco_json, coco_image_paths):
    """On a CPU model the run reports after every image, and the page shows one bar (on the summary), not seven."""
    ctx = UiContext(replay_service, Settings(resolution=288))
    steps: list[tuple[int, int]] = []

    def progress(value, desc=None, unit=None) -> None:
        if isinstance(value, tuple):
            steps.append(value)

    images = [str(p) for p in coco_image_paths.values()]
    evaluate_predictions(ctx, str(coco_json), images, None, 0.5, 288, progress=progress)
    assert steps == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    demo = build_demo(Settings(resolution=288), replay_service)
    ids = {c["id"]: c["props"].get("elem_id") for c in demo.config["components"]}
    runs = [d for d in demo.config["dependencies"] if ids.get(d["targets"][0][0]) == "run-evaluate"]
    assert runs and all([ids[i] for i in d["show_progress_on"]] == ["eval-summary"] for d in runs)
