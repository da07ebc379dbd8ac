"""The Video tab through Gradio: the /predict_video API via gradio_client, no re-encode, and real playback."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from rfdetr_demo.config import Settings
from rfdetr_demo.ui.app import build_demo
from tests.conftest import make_replay_service
from tests.helpers import free_port
from tests.support.replay import ReplayPredictor
from tests.video_helpers import decode, make_clip

MAX_SECONDS = 2.0


@pytest.fixture(scope="module")
def server(coco_json):
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    demo = build_demo(Settings(max_video_seconds=MAX_SECONDS, resolution=288), service)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _video_path(value) -> Path:
    return Path(value["video"] if isinstance(value, dict) else value)


def _component(server: str, elem_id: str) -> dict:
    """A component's props as the page receives them (the app's /config)."""
    import json
    import urllib.request

    with urllib.request.urlopen(server + "config", timeout=10) as r:
        config = json.loads(r.read())
    return next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_video_tab_defaults_to_the_combined_view_only(server):
    from rfdetr_demo.results.render import ALL_VIEWS

    views = _component(server, "video-views")
    assert views["value"] == ["Combined"]
    assert [value for _, value in views["choices"]] == list(ALL_VIEWS)  # the other views stay selectable


def test_gradio_client_predict_video(server, video_dir):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    video, summary, frames, files = client.predict(
        video=handle_file(str(video_dir / "dance_960x540_5f.mp4")),
        threshold=0.5,
        keypoint_threshold=0.3,
        resolution=288,
        views=["Skeleton", "Boxes"],
        layout="grid",
        keyframes="2",
        tracking=True,
        api_name="/predict_video",
    )
    out = decode(_video_path(video))
    assert out["codec"] == "h264" and out["pix_fmt"] == "yuv420p"
    assert out["size"] == (1920, 540) and len(out["frames"]) == 5 and out["fps"] == 5
    assert "**3 model runs** for **5 frames written** (every 2nd frame" in summary
    assert len(frames["data"]) == 5
    source = frames["headers"].index("source")
    assert [row[source] for row in frames["data"]] == ["model", "filled", "model", "filled", "model"]
    names = sorted(Path(f).name.rsplit("_", 1)[-1] for f in files)
    assert names == ["angles.csv", "frames.jsonl", "keypoints.csv", "keypoints.mp4"]


def test_gradio_client_over_long_clip_is_a_clear_error(server, tmp_path):
    from gradio_client import Client, handle_file

    src = make_clip(tmp_path / "long.mp4", 40, size=(64, 48), fps=10)
    client = Client(server, verbose=False)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="at most 2 s"):
        client.predict(video=handle_file(str(src)), api_name="/predict_video")


def test_gradio_does_not_reencode_our_output(replay_service, video_dir, tmp_path, monkeypatch):
    """Our MP4 is already H.264/yuv420p: Gradio's postprocess must serve it as is (no ffmpeg conversion)."""
    from gradio import processing_utils

    from rfdetr_demo.disk import new_request_dir
    from rfdetr_demo.video.pipeline import VideoOptions, run_video

    calls: list[str] = []
    monkeypatch.setattr(processing_utils, "convert_video_to_playable_mp4", lambda p, **k: calls.append(p) or p)
    result = run_video(replay_service, video_dir / "dance_960x540_5f.mp4", VideoOptions(resolution=288),
                       out_dir=new_request_dir("test_video_"))  # fmt: skip
    data = gr.Video(interactive=False).postprocess(str(result.video_path))
    assert Path(data.path) == result.video_path and calls == []


def start_run(
    page, server: str, clip: Path, upload_shown: str = "#input-video video", shown_text: str | None = None
) -> None:
    """Open the Video tab, upload ``clip``, wait for ``upload_shown`` and press "Process video"."""
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("tab", name="Video").click()
    page.locator("#input-video input[type=file]").set_input_files(str(clip))
    shown = page.locator(upload_shown)
    (shown.get_by_text(shown_text) if shown_text else shown).wait_for(timeout=20000)
    page.locator("#run-video").click()


def upload_and_run(page, server: str, clip: Path, upload_shown: str, shown_text: str | None = None) -> None:
    """:func:`start_run`, then wait until the result can play."""
    start_run(page, server, clip, upload_shown, shown_text)
    page.wait_for_function(
        "() => { const v = document.querySelector('#output-video video'); return v && v.readyState >= 2; }",
        timeout=60000,
    )


@pytest.mark.browser
def test_output_video_plays_in_chromium(browser, server, video_dir):
    page = browser.new_page()
    try:
        upload_and_run(page, server, video_dir / "dance_960x540_5f.mp4", "#input-video video")
        start = page.evaluate(
            "async () => { const v = document.querySelector('#output-video video'); v.muted = true;"
            " v.loop = true; await v.play(); return v.currentTime; }"
        )
        page.wait_for_timeout(700)
        state = page.evaluate(
            "() => { const v = document.querySelector('#output-video video');"
            " return {t: v.currentTime, rs: v.readyState, err: v.error && v.error.code,"
            " w: v.videoWidth, h: v.videoHeight}; }"
        )
        assert state["err"] is None and state["rs"] >= 2
        assert state["t"] > start or state["t"] > 0
        assert (state["w"], state["h"]) == (960, 540)
    finally:
        page.close()


def test_preview_note_names_codecs_the_browser_cannot_show(video_dir, tmp_path):
    from rfdetr_demo.video.reader import PREVIEW_HELP, preview_note

    note = preview_note(str(video_dir / "posetrack_1280x720_5f.mp4"))  # MPEG-4 Part 2 (Chromium: error code 4)
    assert "MPEG-4 Part 2" in note and "Processing still works" in note
    assert preview_note(str(video_dir / "dance_960x540_5f.mp4")) == PREVIEW_HELP  # H.264 previews fine
    assert preview_note(None) == PREVIEW_HELP
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert preview_note(str(bad)).startswith(f"⚠️ Could not read {bad.name} as a video")


@pytest.mark.browser
def test_unpreviewable_upload_is_explained_and_still_processed(browser, server, video_dir):
    """Chromium cannot play MPEG-4 Part 2: the tab says why the preview fails, and processing works anyway."""
    page = browser.new_page()
    try:
        upload_and_run(
            page, server, video_dir / "posetrack_1280x720_5f.mp4", "#video-preview-note", shown_text="MPEG-4 Part 2"
        )
        size = page.evaluate("() => { const v = document.querySelector('#output-video video');"
                             " return [v.videoWidth, v.videoHeight, v.error && v.error.code]; }")  # fmt: skip
        assert size == [1280, 720, None]  # our H.264 output plays where the upload did not
    finally:
        page.close()


@pytest.fixture(scope="module")
def slow_server(coco_json):
    """A server whose oracle takes 0.1 s per frame, so a run is long enough to cancel from the page."""
    import time

    import numpy as np

    oracle = ReplayPredictor.from_coco(coco_json)

    def slow(img: np.ndarray):
        time.sleep(0.1)
        return oracle.lookup(img)

    predictor = ReplayPredictor(slow)
    demo = build_demo(Settings(resolution=288), make_replay_service(predictor))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", predictor
    demo.close()


@pytest.mark.browser
def test_cancel_button_stops_the_run(browser, slow_server, tmp_path):
    from playwright.sync_api import expect

    url, predictor = slow_server
    src = make_clip(tmp_path / "long.mp4", 100, size=(64, 48), fps=10)
    page = browser.new_page()
    try:
        start_run(page, url, src)
        page.get_by_text("frames/s").first.wait_for(timeout=40000)  # speed and time left, after 3 frames
        assert predictor.images_seen < 100
        page.locator("#cancel-video").click()
        message = page.locator("#video-progress")
        expect(message).to_contain_text("Cancelled", timeout=10000)
        seen = predictor.images_seen
        page.wait_for_timeout(800)
        assert predictor.images_seen - seen <= 1  # nothing keeps running after the run reported cancelled
        assert predictor.images_seen < 90
        assert page.locator("#output-video video").count() == 0  # no partial video is shown
        # Said once, under the buttons; the next run's progress starts without it.
        assert message.inner_text().strip() == "⚠️ Cancelled. Stopped before any output was produced."
        assert page.locator("body").inner_text().count("Cancel") == 2  # the button and the message
        page.locator("#run-video").click()
        expect(message).not_to_contain_text("Cancelled", timeout=5000)
        page.get_by_text("frames/s").first.wait_for(timeout=40000)
        expect(message).not_to_contain_text("Cancelled")
        page.locator("#cancel-video").click()
    finally:
        page.close()


@pytest.mark.browser
def test_motion_plots_draw_in_chromium_after_a_run(browser, server, coco_truth, tmp_path):
    """A clip with people: after the run the motion panel picks person 0 and its three plots draw real marks."""
    import numpy as np
    from PIL import Image

    from tests.conftest import COCO_DIR

    truth = next(t for t in coco_truth.values() if t.file_name == "000000197388.jpg")
    rgb = np.asarray(Image.open(COCO_DIR / truth.file_name).convert("RGB"))
    clip = make_clip(tmp_path / "people.mp4", [rgb] * 3, size=(truth.width, truth.height), fps=10)
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if "Infinite extent" in m.text else None)
    try:
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Video").click()
        page.locator("#motion-note").get_by_text("appear here after a run").wait_for(timeout=20000)
        # a data mark (line or point) with a drawn path; empty plots keep empty mark groups, legends are not marks
        drawn = "(p) => !!document.querySelector(`${p} canvas, ${p} svg .role-mark path`)"
        page.wait_for_timeout(1000)
        assert not page.evaluate(drawn, "#motion-angles")  # nothing drawn before a run
        upload_and_run(page, server, clip, "#input-video video")
        page.locator("#motion-person input").first.wait_for(timeout=30000)
        page.wait_for_function("() => document.querySelector('#motion-person input').value === '0'", timeout=30000)
        for plot in ("#motion-angles", "#motion-trajectory", "#motion-confidence"):
            # vega-embed draws into a canvas (or svg) once there is data
            page.wait_for_function(drawn, arg=plot, timeout=30000)
        # The confidence plot is not clipped: its drawing (x-axis at the bottom) ends inside its block.
        block = page.locator("#motion-confidence").bounding_box()
        drawing = page.locator("#motion-confidence canvas, #motion-confidence svg").first.bounding_box()
        assert block and drawing and drawing["y"] + drawing["height"] <= block["y"] + block["height"] + 1
        assert warnings == [], warnings[:3]  # no empty plot was drawn
    finally:
        page.close()


@pytest.mark.browser
def test_progress_moves_next_to_the_button_during_a_run(browser, slow_server, tmp_path):
    """30 frames at 0.1 s each: the progress under "Process video" counts up frame by frame, then estimates."""
    import re
    import time

    url, _ = slow_server
    src = make_clip(tmp_path / "thirty.mp4", 30, size=(64, 48), fps=10)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    try:
        start_run(page, url, src)
        reads: list[int] = []
        texts: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and page.locator("#output-video video").count() == 0:
            text = page.locator("#video-progress").inner_text()
            found = re.search(r"(\d+)/30 frames", text)
            if found:
                reads.append(int(found.group(1)))
                texts.append(text)
            page.wait_for_timeout(150)
        changes = [v for i, v in enumerate(reads) if i == 0 or v != reads[i - 1]]
        assert len(changes) >= 3 and changes == sorted(changes), reads
        assert any("s left" in t for t in texts), texts[-3:]
        button, box = page.locator("#run-video").bounding_box(), page.locator("#video-progress").bounding_box()
        assert box is not None and button is not None and 0 <= box["y"] - button["y"] < 200  # right under the button
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [{"width": 1366, "height": 768}, {"width": 390, "height": 844}], ids=str)
def test_a_bad_video_is_explained_under_the_button_without_internals(browser, server, video_dir, tmp_path, viewport):
    """A text file named .mp4: after "Process video" its message is in view (no scrolling), under the button, once,
    without the server's path, an errno or an exception class; a good clip afterwards clears it at once."""
    from playwright.sync_api import expect

    from tests.test_errors import LEAK

    bad = tmp_path / "notvideo.mp4"
    bad.write_text("this is not a video")
    page = browser.new_page(viewport=viewport)
    try:
        start_run(page, server, bad, "#video-preview-note", shown_text="Could not read notvideo.mp4")
        message = page.locator("#video-progress")
        expect(message).to_contain_text("Could not read notvideo.mp4 as a video", timeout=30000)
        box = message.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], box
        button = page.locator("#run-video").bounding_box()
        assert button and box["y"] >= button["y"] + button["height"] - 1, "under the button"
        text = page.locator("body").inner_text()
        assert not LEAK.search(text), LEAK.search(text)
        assert page.locator("#video-summary").inner_text().strip() == ""  # said once, where the visitor looks
        page.locator("#input-video").get_by_role("button", name="Clear").click()
        page.locator("#input-video input[type=file]").set_input_files(str(video_dir / "dance_960x540_5f.mp4"))
        page.locator("#input-video video").wait_for(timeout=20000)
        expect(message).to_have_text("", timeout=5000)
    finally:
        page.close()
