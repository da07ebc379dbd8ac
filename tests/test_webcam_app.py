"""The Webcam tab running in a real server: the /predict_frame API, and Chromium with a fake camera.

The browser is fed a ``.y4m`` made from the shared dance clip (``--use-file-for-fake-video-capture``); the "model" is
the replay oracle returning a COCO person scaled to the frame, so every annotated frame has a skeleton to draw.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from rfdetr_demo.config import Settings
from rfdetr_demo.ui.app import build_demo
from tests.conftest import make_replay_service
from tests.helpers import CHROMIUM, CHROMIUM_ARGS
from tests.support.replay import ReplayPredictor, load_coco_truth, scale_keypoints
from tools.mjpeg_server import MjpegServer

# The shared Chromium settings plus a fake camera that needs no permission prompt.
BROWSER_ARGS = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
STREAM_SECONDS = 8.0


def write_y4m(src: Path, dst: Path, size: tuple[int, int] = (640, 480), fps: int = 10, repeat: int = 4) -> int:
    """Raw YUV4MPEG2 (4:2:0) from a video file, the format Chromium's fake camera reads."""
    planes = []
    with av.open(str(src)) as container:
        for frame in container.decode(video=0):
            planes.append(frame.reformat(width=size[0], height=size[1], format="yuv420p").to_ndarray())
    with open(dst, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(repeat):
            for p in planes:
                fh.write(b"FRAME\n" + p.tobytes())
    return len(planes) * repeat


@pytest.fixture()
def any_frame_person(coco_json):
    """Replay predictor that returns one real COCO person scaled to whatever frame it gets."""
    truth = next(t for t in load_coco_truth(coco_json).values() if len(t.key_points))
    return ReplayPredictor(
        lambda img: scale_keypoints(truth.key_points, img.shape[1] / truth.width, img.shape[0] / truth.height)
    )


def _launch(service, settings: Settings):
    demo = build_demo(settings, service)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    return demo, url


def test_webcam_controls_describe_a_live_stream(coco_json):
    """The shared controls' image wording ("re-runs the model") is replaced by what happens on a stream."""
    demo = build_demo(Settings(), make_replay_service(ReplayPredictor.from_coco(coco_json)))
    props = {c["props"].get("elem_id"): c["props"] for c in demo.config["components"] if "props" in c}
    threshold, views = props["webcam-threshold"], props["webcam-views"]
    assert "re-run" not in threshold["info"] and "next frames" in threshold["info"]
    # Live views are tiles, two per row (FrameHandler.render), not one overlaid frame.
    assert views["label"] == "Views (one tile each, two per row)"
    assert views["value"] == ["Combined", "Uncertainty halo"]


def test_predict_frame_api_and_private_stream_events(tmp_path, coco_truth, coco_image_paths):
    from gradio_client import Client, handle_file

    from tests.test_webcam import NAMES, content_oracle

    image_id = max(coco_truth, key=lambda i: len(coco_truth[i].key_points))
    rgb = np.asarray(Image.open(coco_image_paths[image_id]).convert("RGB"))
    truth = coco_truth[image_id].key_points
    mirrored = tmp_path / "mirrored.png"  # lossless, so the oracle recognises the exact pixels
    Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(mirrored)
    demo, url = _launch(make_replay_service(content_oracle(rgb, truth)), Settings())
    try:
        client = Client(url, verbose=False)
        api = client.view_api(return_format="dict", print_info=False)
        assert "/predict_frame" in api["named_endpoints"]
        assert not api.get("unnamed_endpoints")  # the stream events stay out of the public API
        image, result, timing = client.predict(
            handle_file(str(mirrored)), 0.5, 0.0, 576, ["Combined", "Skeleton"], True, api_name="/predict_frame"
        )
    finally:
        demo.close()
    annotated = np.asarray(Image.open(image))
    assert annotated.shape == (rgb.shape[0], 2 * rgb.shape[1], 3)
    assert result["mirrored_input"] is True
    assert len(result["instances"]) == len(truth)
    # Coordinates refer to the un-mirrored frame and left joints are the person's left joints.
    first = {p["name"]: p for p in result["instances"][0]["keypoints"]}
    shown = [name for j, name in enumerate(NAMES) if truth.visible[0, j]]
    assert any(n.startswith("left_") for n in shown) and any(n.startswith("right_") for n in shown), shown
    for name in shown:
        j = NAMES.index(name)
        assert first[name]["x"] == pytest.approx(float(truth.xy[0, j, 0]), abs=1e-2), name
    assert re.search(r"model \d+ ms", timing)


def _collect_js() -> str:
    """Page script: time every frame POSTed to the server and every change of the annotated image."""
    return """
    window.__posts = []; window.__shown = [];
    const origFetch = window.fetch;
    window.fetch = function(input, init) {
      const url = typeof input === 'string' ? input : input.url;
      if (url.includes('/stream/') && init && init.method === 'POST' && !url.endsWith('/close')) {
        window.__posts.push(performance.now());
      }
      return origFetch.apply(this, arguments);
    };
    const watch = () => {
      const box = document.querySelector('#webcam-output');
      if (!box) { setTimeout(watch, 100); return; }
      new MutationObserver(() => {
        const img = box.querySelector('img');
        if (img && img.src && img.src !== window.__lastSrc) {
          window.__lastSrc = img.src; window.__shown.push([performance.now(), img.src.length]);
        }
      }).observe(box, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    };
    watch();
    """


@pytest.mark.browser
def test_webcam_streams_annotated_frames_in_chromium(
    playwright_session, tmp_path, video_dir, any_frame_person, coco_image_paths
):
    from gradio_client import Client, handle_file

    coco_image = next(iter(coco_image_paths.values()))

    y4m = tmp_path / "camera.y4m"
    write_y4m(video_dir / "dance_960x540_5f.mp4", y4m)
    service = make_replay_service(any_frame_person)
    browser = playwright_session.chromium.launch(
        executable_path=CHROMIUM, args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={y4m}"]
    )
    demo, url = _launch(service, Settings())
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.add_init_script(_collect_js())
        page.goto(url)
        page.get_by_role("tab", name="Webcam").click()
        page.locator("#webcam-input").get_by_text("Click to Access Webcam").click()
        page.locator("#webcam-input button[aria-label='capture photo']").click()  # "Record": start streaming
        page.wait_for_function("window.__shown.length >= 2", timeout=30_000)
        t0 = page.evaluate("performance.now()")
        n0 = page.evaluate("window.__shown.length")
        # While the webcam streams (holding its 'webcam' slot), an Image-tab request must still go through.
        client = Client(url, verbose=False)
        t_img = time.perf_counter()
        image_out = client.predict(handle_file(str(coco_image)), 0.5, 0.3, 576, ["Combined"], api_name="/predict_image")
        image_request_s = time.perf_counter() - t_img
        time.sleep(max(0.0, STREAM_SECONDS - image_request_s))
        posts = page.evaluate("window.__posts")
        shown = page.evaluate("window.__shown")
        t1 = page.evaluate("performance.now()")
        readout = page.locator("#webcam-readout").inner_text()
        src = page.locator("#webcam-output img").get_attribute("src")
    finally:
        browser.close()
        demo.close()

    assert src.startswith("data:image/jpeg;base64,")
    assert image_out[0] and image_request_s < 15.0  # not stuck behind the stream's session-long slot
    import base64

    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
    assert frame.shape == (480, 1280, 3)  # 640x480 camera, two views side by side
    assert re.search(r"[\d.]+ fps", readout) and "end-to-end" in readout
    fps = (len(shown) - n0) / ((t1 - t0) / 1000.0)
    # Browser-side latency: from the POST that carried a frame to the next annotated image shown.
    latencies = []
    for t_shown, _ in shown:
        before = [t for t in posts if t < t_shown]
        if before:
            latencies.append(t_shown - before[-1])
    assert fps > 0.5 and latencies
    report = {
        "browser_fps": round(fps, 2),
        "frames_shown": len(shown),
        "frames_posted": len(posts),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "server_readout": readout,
        "image_request_while_streaming_s": round(image_request_s, 2),
    }
    print("WEBCAM_BROWSER", json.dumps(report))
    # No backlog: a frame never waits behind a queue of older ones (the replay model takes a few ms).
    assert report["latency_ms_p95"] < 2000


@pytest.mark.browser
def test_stream_source_in_chromium(playwright_session, coco_json, coco_truth, coco_image_paths, any_frame_person):
    """Disabled: a URL is refused with a clear message. Enabled: frames from a loopback MJPEG camera are annotated."""

    service = make_replay_service(any_frame_person)
    jpeg = next(iter(coco_image_paths.values())).read_bytes()
    with MjpegServer([jpeg], fps=10) as camera:
        browser = playwright_session.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        for enabled in (False, True):
            settings = Settings(enable_stream_source=enabled, stream_allow_hosts="127.0.0.1" if enabled else "")
            demo, url = _launch(service, settings)
            try:
                page = browser.new_page()
                page.goto(url)
                page.get_by_role("tab", name="Webcam").click()
                page.get_by_text("Camera stream URL").click()
                if not enabled:
                    assert page.locator("#source-url textarea, #source-url input").first.is_disabled()
                    page.locator("#source-start").click()
                    page.get_by_text("Stream sources are disabled on this server").first.wait_for(timeout=15_000)
                else:
                    box = page.locator("#source-url textarea, #source-url input").first
                    box.fill(camera.url.replace("127.0.0.1", "localhost"))
                    page.locator("#source-start").click()
                    page.get_by_text("not in this server's allow-list").first.wait_for(timeout=15_000)
                    box.fill(camera.url)
                    page.locator("#source-start").click()
                    page.wait_for_function(
                        "document.querySelector('#source-output img')?.src?.startsWith('data:image/jpeg')",
                        timeout=30_000,
                    )
                    src = page.locator("#source-output img").get_attribute("src")
                    page.locator("#source-stop").click()
                    import base64

                    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
                    raw = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
                    h, w = raw.shape[:2]
                    assert shown.shape == (h, 2 * w, 3)  # the two default live views side by side
                    assert np.abs(shown[:, :w].astype(int) - raw.astype(int)).max() > 100  # a skeleton was drawn
                page.close()
            finally:
                demo.close()
        browser.close()


def test_stream_events_have_their_own_groups_and_limits(replay_service, monkeypatch):
    """Streams hold their slot for the whole session, so they must not sit in the image/video 'model' group."""
    from rfdetr_demo.ui import webcam_tab

    demo = build_demo(Settings(), replay_service)
    fns = {fn.name: fn for fn in demo.fns.values()}
    deps = {d["api_name"]: d for d in demo.config["dependencies"]}
    webcam = fns["on_frame"]
    assert (webcam.concurrency_id, webcam.concurrency_limit) == ("webcam", webcam_tab.WEBCAM_CONCURRENCY)
    assert webcam.time_limit == webcam_tab.WEBCAM_TIME_LIMIT_S
    assert deps["on_frame"]["stream_every"] == webcam_tab.STREAM_EVERY_S
    assert deps["on_frame"]["api_visibility"] == "private" and deps["run_source"]["api_visibility"] == "private"
    assert fns["run_source"].concurrency_id == "stream_source"
    assert fns["predict_image"].concurrency_id == fns["predict_frame"].concurrency_id == "model"

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")  # ZeroGPU: fewer frames, shorter streams
    demo = build_demo(Settings(), replay_service)
    deps = {d["api_name"]: d for d in demo.config["dependencies"]}
    assert deps["on_frame"]["stream_every"] == webcam_tab.ZERO_GPU_STREAM_EVERY_S
    assert deps["on_frame"]["time_limit"] == webcam_tab.ZERO_GPU_TIME_LIMIT_S
