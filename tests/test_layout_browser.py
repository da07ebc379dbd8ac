"""Layout in Chromium: what a visitor sees on a 390×844 phone and a 1366-px laptop (issue 16, points 3 and 4).

Geometry assertions on the real page (bounding boxes, scroll widths), served around the replay predictor so the
numbers on screen are known.
"""

from __future__ import annotations

import pytest

from tests.helpers import CHROMIUM, serve_replay_app
from tests.support.replay import ReplayPredictor, load_coco_truth, scale_keypoints
from tests.test_webcam_app import BROWSER_ARGS, write_y4m

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 900}
TABS = ("Image", "Video", "Webcam", "Evaluate")


@pytest.fixture(scope="module")
def served(coco_json):
    with serve_replay_app(coco_json) as s:
        yield s


def _inside(box: dict | None, viewport: dict) -> bool:
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= viewport["width"] + 0.5
        and box["y"] + box["height"] <= viewport["height"] + 0.5
    )


def test_phone_shows_all_four_tabs_without_a_menu(browser, served):
    """No tab hides behind Gradio's "⋯" overflow menu: each one is on screen and opens its panel."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport=PHONE)
    page.goto(served[0], wait_until="domcontentloaded")
    tabs = page.locator("#main-tabs > .tab-wrapper [role=tab]")
    expect(tabs).to_have_count(len(TABS), timeout=30_000)
    assert tabs.all_inner_texts() == list(TABS)
    assert page.locator("#main-tabs .overflow-menu:visible").count() == 0  # Gradio's "⋯" menu
    boxes = [tabs.nth(i).bounding_box() for i in range(len(TABS))]
    assert all(_inside(b, PHONE) for b in boxes), boxes
    assert len({round(b["y"]) for b in boxes}) == 1, boxes  # one row: 390 px holds the four labels
    panels = {"Video": "#input-video", "Webcam": "#webcam-input", "Evaluate": "#eval-annotations"}
    for name, panel in panels.items():
        page.locator("#main-tabs > .tab-wrapper").get_by_role("tab", name=name).click()
        expect(page.locator(panel)).to_be_visible(timeout=10_000)
    page.close()


def test_phone_webcam_camera_and_result_share_the_first_screen(playwright_session, tmp_path, coco_json, video_dir):
    """With Chromium's fake camera streaming, the camera and the annotated result are both in the first 844 px."""
    truth = next(t for t in load_coco_truth(coco_json).values() if len(t.key_points))
    predictor = ReplayPredictor(
        lambda img: scale_keypoints(truth.key_points, img.shape[1] / truth.width, img.shape[0] / truth.height)
    )
    y4m = tmp_path / "camera.y4m"
    write_y4m(video_dir / "dance_960x540_5f.mp4", y4m, repeat=2)
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM, args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={y4m}"]
    )
    try:
        with serve_replay_app(coco_json, predictor=predictor) as (url, _):
            page = browser.new_page(viewport=PHONE)
            page.goto(url)
            page.locator("#main-tabs > .tab-wrapper").get_by_role("tab", name="Webcam").click()
            page.locator("#webcam-input").get_by_text("Click to Access Webcam").click()
            page.locator("#webcam-input button[aria-label='capture photo']").click()  # start streaming
            page.wait_for_function(
                "() => { const i = document.querySelector('#webcam-output img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                timeout=30_000,
            )
            assert page.evaluate("window.scrollY") == 0
            camera = page.locator("#webcam-input video").bounding_box()
            result = page.locator("#webcam-output img").bounding_box()
            threshold = page.locator("#webcam-threshold").bounding_box()
    finally:
        browser.close()
    assert _inside(camera, PHONE) and camera["height"] > 150, camera
    assert _inside(result, PHONE) and result["height"] > 80, result
    assert 0 <= result["y"] - (camera["y"] + camera["height"]) < 40, (camera, result)  # directly under the camera
    assert threshold["y"] > result["y"] + result["height"]  # the controls come after the result
