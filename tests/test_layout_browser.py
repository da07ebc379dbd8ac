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
            page.evaluate("window.scrollTo(0, 0)")  # the first screen: the page as it opens
            page.wait_for_timeout(300)
            camera = page.locator("#webcam-input video").bounding_box()
            result = page.locator("#webcam-output img").bounding_box()
            threshold = page.locator("#webcam-threshold").bounding_box()
    finally:
        browser.close()
    assert _inside(camera, PHONE) and camera["height"] > 150, camera
    assert _inside(result, PHONE) and result["height"] > 80, result
    assert 0 <= result["y"] - (camera["y"] + camera["height"]) < 40, (camera, result)  # directly under the camera
    assert threshold["y"] > result["y"] + result["height"]  # the controls come after the result


def _boxes(page, selector: str) -> list[dict]:
    return page.locator(selector).evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {x: r.left, y: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height,"
        " text: e.innerText, sw: e.scrollWidth, cw: e.clientWidth}; })"
    )


def _run_sample(page) -> None:
    from playwright.sync_api import expect

    page.locator("#main-tabs > .tab-wrapper").get_by_role("tab", name="Evaluate").click()
    page.locator("#eval-sample").click()
    expect(page.locator("#eval-annotations td.filename")).to_have_attribute(
        "aria-label", "keypoints_sample.json", timeout=30_000
    )
    expect(page.locator("#eval-summary")).to_contain_text("4 images · 12 people", timeout=90_000)
    expect(page.locator("#eval-metrics")).to_contain_text("replay", timeout=10_000)


def test_evaluate_sample_fits_a_laptop_screen(browser, served, tmp_path):
    """1366 px: "Try the sample set" scores the bundled COCO sample; every metrics column, plot title and gallery
    caption is in sight without scrolling sideways. Also writes the README's Evaluate screenshot."""
    import os
    import shutil

    from rfdetr_demo.evaluate.report import TABLE_COLUMNS
    from tests.conftest import REPO

    page = browser.new_page(viewport=LAPTOP)
    page.goto(served[0], wait_until="domcontentloaded")
    _run_sample(page)
    assert page.locator("#eval-images .file-preview tr").count() == 4  # the inputs show what was scored
    viewport = _boxes(page, "#eval-metrics .virtual-table-viewport")[0]
    headers = _boxes(page, "#eval-metrics [role=columnheader]")
    assert [h["text"].strip() for h in headers] == list(TABLE_COLUMNS)
    outside = [h["text"] for h in headers if h["x"] < viewport["x"] - 1 or h["right"] > viewport["right"] + 1]
    assert not outside, (outside, viewport)  # every column visible in the table's box ...
    assert viewport["sw"] <= viewport["cw"] + 1, viewport  # ... which has nothing more to scroll to
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    assert all(h["height"] < 60 for h in headers), headers  # one or two lines, no letter column

    for tab, plot in (("Per keypoint", "#eval-keypoint-plot"), ("Calibration", "#eval-calibration-plot")):
        page.get_by_role("tab", name=tab).click()
        page.locator(f"{plot} img").wait_for(timeout=10_000)
        label, image = _boxes(page, f"{plot} label")[0], _boxes(page, f"{plot} img")[0]
        buttons = _boxes(page, f"{plot} .icon-button-wrapper")[0]
        assert image["y"] >= max(label["bottom"], buttons["bottom"]) - 1, (plot, label, buttons, image)

    page.get_by_role("tab", name="Per keypoint").click()
    page.locator("#eval-gallery").scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('#eval-gallery img')];"
        " return imgs.length == 4 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        timeout=30_000,
    )
    captions = _boxes(page, "#eval-gallery .caption-label")
    items = _boxes(page, "#eval-gallery .thumbnail-item")
    assert len(captions) == 4 and all("OKS 1.00" in c["text"] and "detections" in c["text"] for c in captions)
    assert all(c["sw"] <= c["cw"] + 1 for c in captions), captions  # nothing cut off with "…"
    assert all(i["y"] <= c["y"] and c["bottom"] <= i["bottom"] + 1 for c, i in zip(captions, items, strict=True))
    page.locator("#eval-files").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "evaluate.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("RFDETR_DEMO_UPDATE_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "screenshot_evaluate.png")
    page.close()


def test_phone_tables_keep_words_whole_and_scroll(browser, served):
    """390 px: the metrics table scrolls sideways to its last column; headers never wrap one letter per line."""
    page = browser.new_page(viewport=PHONE)
    page.goto(served[0], wait_until="domcontentloaded")
    _run_sample(page)
    viewport = page.locator("#eval-metrics .virtual-table-viewport")
    box = _boxes(page, "#eval-metrics .virtual-table-viewport")[0]
    assert box["sw"] > box["cw"] and viewport.evaluate("e => getComputedStyle(e).overflowX") in {"auto", "scroll"}
    viewport.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
    last = _boxes(page, "#eval-metrics [role=columnheader]")[-1]
    assert box["x"] - 1 <= last["x"] and last["right"] <= box["right"] + 1, (last, box)
    for selector in ("#eval-metrics", "#eval-keypoints"):
        for cell in _boxes(page, f"{selector} [role=columnheader] span.header"):
            assert cell["height"] < 45 and cell["sw"] <= cell["cw"] + 1, cell  # at most two whole-word lines
    page.close()


def test_image_tab_tables_and_download_names(browser, served, coco_image_paths):
    """390 px: Persons headers stay whole words and the three downloads show their full, different names;
    1366 px: the Persons table's nine columns fit without scrolling sideways."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport=PHONE)
    page.goto(served[0], wait_until="domcontentloaded")
    page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[196141]))
    expect(page.locator("#image-files .file-preview tr")).to_have_count(3, timeout=60_000)
    expect(page.locator("#persons-table")).to_contain_text("person", timeout=30_000)
    headers = _boxes(page, "#persons-table [role=columnheader] span.header")
    assert {h["text"] for h in headers} >= {"score", "visible_keypoints", "mean_keypoint_conf"}
    assert all(h["height"] < 45 and h["sw"] <= h["cw"] + 1 for h in headers), headers
    names = page.locator("#image-files td.filename").evaluate_all(
        "tds => tds.map(td => [td.getAttribute('aria-label'), getComputedStyle(td, '::after').content,"
        " td.scrollWidth <= td.clientWidth + 1])"
    )
    assert {n[0] for n in names} == {"000000196141.csv", "000000196141.json", "000000196141_coco_results.json"}
    assert all(shown == f'"{name}"' and fits for name, shown, fits in names), names  # whole names, not "…"

    page.set_viewport_size(LAPTOP)
    page.wait_for_timeout(500)
    table = _boxes(page, "#persons-table .virtual-table-viewport")[0]
    assert table["sw"] <= table["cw"] + 1, table
    page.close()
