"""Real browser: Chromium (Debian) driven by Playwright opens the page, uploads a photo and sees the results."""

from __future__ import annotations

import itertools
import os
import re
import shutil

import pytest

from tests.conftest import REPO
from tests.helpers import serve_replay_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_url(coco_json):
    with serve_replay_app(coco_json) as served:
        yield served


def test_upload_shows_views_and_tables(browser, page_url, coco_image_paths, coco_truth, tmp_path):
    page = browser.new_page(viewport={"width": 1366, "height": 900})  # a common laptop, as the README shows
    page.goto(page_url[0], wait_until="domcontentloaded")
    page.get_by_text("Model:", exact=False).first.wait_for(timeout=30_000)
    page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[196141]))
    gallery_images = page.locator("#views-gallery img")
    gallery_images.nth(3).wait_for(timeout=60_000)
    assert gallery_images.count() == 4
    # Every rendered view actually decoded in the browser (not a broken image icon).
    page.wait_for_function(
        "() => [...document.querySelectorAll('#views-gallery img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    widths = gallery_images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert all(w == 640 for w in widths), widths
    page.get_by_text("4 instances", exact=False).first.wait_for(timeout=10_000)
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    from playwright.sync_api import expect

    grid = page.locator("#persons-table [role=grid]")
    expected = len(coco_truth[196141].key_points)
    expect(grid).to_have_attribute("aria-rowcount", str(expected + 1), timeout=15_000)  # header + one per person
    assert grid.inner_text().count("person") == expected
    assert shot.stat().st_size > 50_000
    if os.environ.get("RFDETR_DEMO_UPDATE_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "screenshot.png")
    page.close()


def test_example_click_runs_and_view_change_does_not_rerun(browser, page_url):
    url, predictor = page_url
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#image-examples img").first.click()  # 000000000785.jpg: one skier
    page.locator("#views-gallery img").first.wait_for(timeout=60_000)
    page.get_by_role("tab", name="Keypoints").click()
    table = page.locator("#keypoints-table")
    table.get_by_text("left_ankle").first.wait_for(timeout=10_000)
    calls = predictor.calls
    page.get_by_role("checkbox", name="Boxes", exact=True).check()
    page.locator("#views-gallery img").nth(4).wait_for(timeout=30_000)
    assert page.locator("#views-gallery img").count() == 5
    assert predictor.calls == calls, "a display-only change must not run the model"
    page.close()


def test_replacing_images_thresholds_and_bad_uploads(browser, page_url, coco_image_paths, coco_truth, tmp_path):
    """Regressions seen in review: double model runs, hidden views, a slider that did nothing, raw errors."""
    from playwright.sync_api import expect

    url, predictor = page_url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#image-examples img").first.click()
    summary = page.locator("#image-summary")
    expect(summary).to_contain_text("instance", timeout=60_000)

    # Replacing an uploaded image with another runs the model once (Gradio fires `change` twice for it).
    upload = page.locator("#input-image input[type=file]")
    for image_id in (196141, 40083):
        calls = predictor.calls
        upload.set_input_files(str(coco_image_paths[image_id]))
        shown = int((coco_truth[image_id].key_points.detection_confidence > 0.5).sum())  # default threshold 0.5
        expect(summary).to_contain_text(f"{shown} instance", timeout=60_000)
        page.wait_for_timeout(1500)  # let a duplicate event arrive if there is one
        assert predictor.calls == calls + 1, f"model ran {predictor.calls - calls} times for one upload"

    # Every chosen view is visible in the page, not clipped inside an inner scroll box.
    for name in ("Vertices", "Uncertainty halo", "Boxes"):
        page.get_by_role("checkbox", name=name, exact=True).check()
    items = page.locator("#views-gallery .thumbnail-item")
    expect(items).to_have_count(7, timeout=30_000)
    gallery_box = page.locator("#views-gallery").bounding_box()
    last = items.nth(6).bounding_box()
    assert last["y"] + last["height"] <= gallery_box["y"] + gallery_box["height"] + 1

    # The detection threshold applies at once, without running the model.
    scores = coco_truth[40083].key_points.detection_confidence
    cut = float(scores.max() + scores.min()) / 2  # between the best and the worst person's score
    assert 0 < int((scores > cut).sum()) < int((scores > 0.5).sum())
    calls = predictor.calls
    number = page.get_by_label("number input for Detection threshold")
    number.fill(f"{cut:.3f}")
    number.press("Tab")
    expect(summary).to_contain_text(f"{int((scores > cut).sum())} instance", timeout=30_000)
    assert predictor.calls == calls

    page.close()


def test_one_model_run_per_action_and_the_button_reuses_the_shown_result(browser, page_url, coco_image_paths):
    """An example click runs once, "Detect keypoints" right after reuses that run (and says so); an upload runs
    once, the button again reuses it; a changed resolution runs again."""
    from playwright.sync_api import expect

    url, predictor = page_url
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(url, wait_until="domcontentloaded")
    summary = page.locator("#image-summary")

    def runs(action, contains: str) -> int:
        calls = predictor.calls
        action()
        expect(summary).to_contain_text(contains, timeout=60_000)
        page.wait_for_timeout(1500)  # a duplicate event, if any, would have run by now
        return predictor.calls - calls

    assert runs(lambda: page.locator("#image-examples img").first.click(), "instance") == 1
    assert runs(lambda: page.locator("#run-image").click(), "reused") == 0
    upload = page.locator("#input-image input[type=file]")
    assert runs(lambda: upload.set_input_files(str(coco_image_paths[40083])), "instance") == 1
    expect(summary).not_to_contain_text("reused")
    assert runs(lambda: page.locator("#run-image").click(), "reused") == 0
    page.close()


@pytest.mark.parametrize(("how", "width"), [("enter", 1366), ("pause", 1366), ("paste", 1366), ("enter", 390)])
def test_a_typed_threshold_redraws_at_the_value_shown(browser, page_url, coco_image_paths, coco_truth, how, width):
    """Typed and Enter, typed and left alone, or pasted: summary, table and JSON follow the box at once (before any
    blur; Gradio alone redraws only when the box loses focus), without running the model."""
    from playwright.sync_api import expect

    url, predictor = page_url
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(url, wait_until="domcontentloaded")
    summary = page.locator("#image-summary")
    page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[40083]))
    expect(summary).to_contain_text("detection ≥ 0.50", timeout=60_000)
    calls = predictor.calls
    box = page.get_by_label("number input for Detection threshold")
    grid = page.locator("#persons-table [role=grid]")
    scores = coco_truth[40083].key_points.detection_confidence  # the replay's 1.00, 0.99
    for value, shown in (("0.2", "detection ≥ 0.20"), ("0.995", "1 instance")):
        box.click()
        box.press("Control+a")
        if how == "paste":
            page.keyboard.insert_text(value)  # one input event with the whole text, as a paste gives
        else:
            box.press_sequentially(value, delay=60)
        if how == "enter":
            box.press("Enter")
        expect(summary).to_contain_text(shown, timeout=15_000)
        assert box.evaluate("b => b === document.activeElement"), "the box kept the focus: no blur did the work"
        expected = int((scores > float(value)).sum())
        expect(summary).to_contain_text(f"{expected} instance")
        expect(grid).to_have_attribute("aria-rowcount", str(expected + 1), timeout=10_000)
    page.get_by_role("tab", name="JSON").click()
    expect(page.locator("#image-results")).to_contain_text(re.compile(r"threshold\W+0\.995\b"), timeout=10_000)
    assert predictor.calls == calls
    page.close()


def test_a_bad_upload_shows_exactly_one_message_in_place(browser, page_url, coco_image_paths, tmp_path):
    """After a result is shown, a file that is not an image: one message where the result was, no toast (Gradio
    fires two events for a replaced image), no "Error" badge on the outputs, the old results cleared."""
    from playwright.sync_api import expect

    url = page_url[0]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="domcontentloaded")
    upload = page.locator("#input-image input[type=file]")
    summary = page.locator("#image-summary")
    upload.set_input_files(str(coco_image_paths[785]))
    expect(summary).to_contain_text("instance", timeout=60_000)
    fake = tmp_path / "fake.png"
    fake.write_text("this is not an image")
    message = "Could not read fake.png as an image"
    upload.set_input_files(str(fake))
    expect(summary).to_contain_text(message, timeout=30_000)
    page.wait_for_timeout(2000)  # let the duplicate event arrive
    assert page.locator("body").inner_text().count(message) == 1
    assert page.locator(".toast-body").count() == 0
    badges = page.locator("[data-testid=status-tracker] .error")
    assert sum(b.is_visible() for b in badges.all()) == 0
    assert page.locator("#views-gallery img").count() == 0 and "instance" not in summary.inner_text()
    assert "preprocess" not in page.locator("body").inner_text()
    upload.set_input_files(str(coco_image_paths[785]))  # a good file afterwards: the message goes
    expect(summary).to_contain_text("instance", timeout=60_000)
    expect(summary).not_to_contain_text(message)
    page.close()


def test_video_and_evaluate_say_what_is_missing_once_in_place(browser, page_url):
    """Running without an input: one message in the tab's summary; no toast, no "Error" badge on the outputs."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(page_url[0], wait_until="domcontentloaded")
    for tab, button, summary, message in (
        ("Video", "#run-video", "#video-progress", "Please upload or pick a video first."),
        ("Evaluate", "#run-evaluate", "#eval-summary", "Please upload a COCO keypoint annotation file (JSON)."),
    ):
        page.get_by_role("tab", name=tab).click()
        page.locator(button).click()
        expect(page.locator(summary)).to_contain_text(message, timeout=30_000)
        page.wait_for_timeout(1000)
        assert page.locator("body").inner_text().count(message) == 1, tab
        assert page.locator(".toast-body").count() == 0, tab
        badges = page.locator("[data-testid=status-tracker] .error")
        assert sum(b.is_visible() for b in badges.all()) == 0, tab
    page.close()


def test_phone_shows_views_right_under_the_input_one_per_row(browser, page_url, coco_image_paths, tmp_path):
    """On a 390-px phone the views come straight after the photo, full width; the desktop keeps two columns."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(page_url[0], wait_until="domcontentloaded")
    page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[196141]))
    images = page.locator("#views-gallery img")
    images.nth(3).wait_for(timeout=60_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#views-gallery img')].every(i => i.complete && i.naturalWidth > 0)",
        timeout=30_000,
    )
    source = page.locator("#input-image").bounding_box()
    gallery = page.locator("#views-gallery").bounding_box()
    assert 0 <= gallery["y"] - (source["y"] + source["height"]) < 40, (source, gallery)
    # Nothing of the tab (controls, examples, summary) sits between the photo and the views.
    for selector in ("#run-image", "#image-examples", "#image-summary", "#input-image ~ .form"):
        box = page.locator(selector).first.bounding_box()
        assert box is None or box["y"] >= gallery["y"] + gallery["height"] - 1, selector
    boxes = [images.nth(i).bounding_box() for i in range(images.count())]
    assert all(b["width"] >= 0.85 * gallery["width"] for b in boxes), (gallery, boxes)  # full width, not thumbnails
    assert all(b2["y"] >= b1["y"] + b1["height"] - 1 for b1, b2 in itertools.pairwise(boxes)), boxes  # one row each
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)

    page.set_viewport_size({"width": 1400, "height": 1000})  # desktop: results in the right-hand column
    page.wait_for_timeout(300)
    source = page.locator("#input-image").bounding_box()
    gallery = page.locator("#views-gallery").bounding_box()
    assert gallery["x"] >= source["x"] + source["width"] and gallery["y"] < source["y"] + source["height"]
    page.close()


def test_offline_model_status_is_one_sentence_with_details_folded(browser):
    """Offline, the status line says what failed and what to do; the raw connection error stays folded away."""
    from playwright.sync_api import expect

    from rfdetr_demo.app_factory import create_app
    from rfdetr_demo.config import Settings
    from tests.helpers import free_port
    from tests.test_ui import offline_service

    settings = Settings(port=free_port())
    demo = create_app(settings, service=offline_service())
    demo.queue()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=settings.port)
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"http://127.0.0.1:{settings.port}/", wait_until="domcontentloaded")
        status = page.locator("#model-status")
        expect(status).to_contain_text("could not be downloaded", timeout=30_000)
        expect(status).to_contain_text("--random-weights")
        raw = status.get_by_text("HTTPSConnectionPool", exact=False)
        expect(raw).to_be_hidden()  # folded away ...
        status.locator("details summary").click()
        expect(raw).to_be_visible()  # ... and one click away
        page.close()
    finally:
        demo.close()


def test_use_via_api_page_has_no_mcp_probe_error(browser, page_url):
    """Without --mcp the API page must not ask for /gradio_api/mcp/schema (a 404 in the console)."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    probes: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: probes.append(r.url) if "mcp/schema" in r.url else None)
    page.goto(page_url[0], wait_until="domcontentloaded")
    page.get_by_text("Use via API").first.click()
    page.get_by_text("gradio_client", exact=False).first.wait_for(timeout=30_000)  # the Python snippets are shown
    page.wait_for_timeout(1000)
    assert probes == [] and errors == [], (probes, errors[:3])
    page.close()


@pytest.mark.parametrize(
    "viewport", [{"width": 1366, "height": 900}, {"width": 390, "height": 844}], ids=["desktop", "phone"]
)
def test_a_full_walk_through_all_tabs_logs_no_console_error(browser, page_url, viewport, coco_truth, tmp_path):
    """A visitor's walk: an example photo, a clip processed on the Video tab until its motion plots draw, the Webcam
    and Evaluate tabs (sample set), the API page: no console error or warning on the way."""
    import numpy as np
    from PIL import Image
    from playwright.sync_api import expect

    from tests.conftest import COCO_DIR
    from tests.video_helpers import make_clip

    truth = coco_truth[197388]
    rgb = np.asarray(Image.open(COCO_DIR / truth.file_name).convert("RGB"))
    clip = make_clip(tmp_path / "people.mp4", [rgb] * 3, size=(truth.width, truth.height), fps=10)
    page = browser.new_page(viewport=viewport)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.goto(page_url[0], wait_until="domcontentloaded")
    page.locator("#image-examples img").first.click()
    expect(page.locator("#image-summary")).to_contain_text("instance", timeout=60_000)
    page.get_by_role("tab", name="Video").click()
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    page.locator("#input-video video").wait_for(timeout=20_000)
    page.locator("#run-video").click()
    for plot in ("#motion-angles", "#motion-trajectory", "#motion-confidence"):  # Vega draws each plot
        page.locator(f"{plot} canvas, {plot} svg .role-mark path").first.wait_for(state="attached", timeout=60_000)
    page.get_by_role("tab", name="Webcam").click()
    page.wait_for_timeout(1500)
    page.get_by_role("tab", name="Evaluate").click()
    page.get_by_role("button", name="Try the sample set", exact=False).click()
    expect(page.get_by_text("12 people", exact=False).first).to_be_visible(timeout=120_000)
    if viewport["width"] > 640:  # Gradio's footer hides "Use via API" on a phone
        page.get_by_text("Use via API").first.click()
        page.get_by_text("gradio_client", exact=False).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    assert problems == [], problems[:5]
    page.close()
