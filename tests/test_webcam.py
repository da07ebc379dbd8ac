"""Webcam and live-stream logic with the replay (ground-truth) predictor: orientation, dropping, timing, sources."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest
import supervision as sv
from PIL import Image

from rfdetr_demo.live.frame_handler import (
    FrameHandler,
    FrameOptions,
    LatestFrame,
    LiveStats,
    mirror_keypoints,
    unmirror,
)
from rfdetr_demo.live.source_session import SourceSession
from rfdetr_demo.live.stream_source import (
    StreamReader,
    StreamSourceError,
    mask_credentials,
    parse_allow_hosts,
    validate_stream_url,
)
from rfdetr_demo.models.service import ModelService
from rfdetr_demo.results.render import LEFT_COLOR, RIGHT_COLOR, VIEW_VERTICES
from rfdetr_demo.results.schema import KeypointSchema
from tests.conftest import make_replay_service, replay_info
from tests.support.replay import ReplayPredictor
from tools.mjpeg_server import MjpegServer, encode_jpegs

COCO = KeypointSchema.coco()
NAMES = list(COCO.names)
# Horizontal-flip permutation: what a pose model trained on real images reports on a mirrored picture.
FLIP_INDEX = [NAMES.index(n.replace("left_", "§").replace("right_", "left_").replace("§", "right_")) for n in NAMES]


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _flip_truth(kp: sv.KeyPoints, width: int) -> sv.KeyPoints:
    """Ground truth of the mirrored picture: coordinates reflected AND left/right names swapped."""
    m = mirror_keypoints(kp, width)
    data = dict(m.data)
    data["covariance"] = np.asarray(data["covariance"])[:, FLIP_INDEX]
    return sv.KeyPoints(
        xy=m.xy[:, FLIP_INDEX],
        class_id=m.class_id,
        keypoint_confidence=m.keypoint_confidence[:, FLIP_INDEX],
        detection_confidence=m.detection_confidence,
        visible=m.visible[:, FLIP_INDEX],
        data=data,
    )


@pytest.fixture()
def person(coco_truth, coco_image_paths):
    """The COCO image whose first person has both wrists labelled farthest apart (an unambiguous left/right)."""
    best = None
    for image_id, truth in coco_truth.items():
        kp = truth.key_points
        if not len(kp):
            continue
        lw, rw = NAMES.index("left_wrist"), NAMES.index("right_wrist")
        if kp.visible[0, lw] and kp.visible[0, rw]:
            gap = abs(float(kp.xy[0, lw, 0] - kp.xy[0, rw, 0]))
            if best is None or gap > best[0]:
                best = (gap, image_id)
    assert best is not None
    truth = coco_truth[best[1]]
    return _rgb(coco_image_paths[best[1]]), truth.key_points


def content_oracle(rgb: np.ndarray, truth: sv.KeyPoints) -> ReplayPredictor:
    """Answers by *content*: the true picture gets the truth, the mirrored one gets what a model would see."""
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    flipped_truth = _flip_truth(truth, rgb.shape[1])

    def lookup(img: np.ndarray) -> sv.KeyPoints:
        if img.shape == rgb.shape and np.array_equal(img, rgb):
            return truth
        if img.shape == rgb.shape and np.array_equal(img, flipped):
            return flipped_truth
        raise AssertionError("oracle got an image that is neither the picture nor its mirror")

    return ReplayPredictor(lookup)


def _opts(**kw) -> FrameOptions:
    base = dict(threshold=0.5, keypoint_threshold=0.0, resolution=576, views=(VIEW_VERTICES,), max_side=4096)
    base.update(kw)
    return FrameOptions(**base)


# -- orientation ---------------------------------------------------------------------------------------------------
def test_mirrored_webcam_frame_is_unmirrored_so_left_stays_left(person):
    rgb, truth = person
    service = make_replay_service(content_oracle(rgb, truth))
    mirrored_frame = np.ascontiguousarray(rgb[:, ::-1])  # what Gradio's webcam (mirror=True) sends
    result = FrameHandler(service).process(mirrored_frame, _opts(mirrored_input=True))
    kp = result.prediction.key_points
    lw, rw = NAMES.index("left_wrist"), NAMES.index("right_wrist")
    # Coordinates are in the un-mirrored camera frame and left_wrist is the person's left wrist.
    np.testing.assert_allclose(kp.xy[0, lw], truth.xy[0, lw], atol=1e-3)
    np.testing.assert_allclose(kp.xy[0, rw], truth.xy[0, rw], atol=1e-3)

    # Control: treating the mirrored frame as a normal one swaps the sides, which is what un-mirroring prevents.
    wrong = FrameHandler(service).process(mirrored_frame, _opts(mirrored_input=False)).prediction.key_points
    assert abs(float(wrong.xy[0, lw, 0]) - (rgb.shape[1] - float(truth.xy[0, rw, 0]))) < 1e-3


def test_mirror_display_keeps_left_joints_left_coloured(person):
    rgb, truth = person
    service = make_replay_service(content_oracle(rgb, truth))
    h, w = rgb.shape[:2]
    result = FrameHandler(service).process(rgb[:, ::-1], _opts(mirrored_input=True, mirror_display=True))
    assert result.image.shape == (h, w, 3)
    lw, rw = NAMES.index("left_wrist"), NAMES.index("right_wrist")
    for idx, colour in ((lw, LEFT_COLOR), (rw, RIGHT_COLOR)):
        x, y = truth.xy[0, idx]
        px = result.image[round(float(y)), round(w - float(x))].astype(int)  # where the mirror shows that wrist
        assert np.abs(px - np.array(colour.as_rgb())).max() <= 40, (NAMES[idx], px)


def test_mirror_keypoints_reflects_boxes_and_covariance(person):
    _, truth = person
    w = 640
    m = mirror_keypoints(truth, w)
    np.testing.assert_allclose(m.xy[..., 0], w - truth.xy[..., 0])
    b, mb = truth.data["xyxy"], m.data["xyxy"]
    np.testing.assert_allclose(mb[:, 0], w - b[:, 2])
    assert (mb[:, 2] >= mb[:, 0]).all()
    np.testing.assert_allclose(mirror_keypoints(m, w).data["covariance"], truth.data["covariance"])
    np.testing.assert_array_equal(unmirror(unmirror(np.arange(12).reshape(2, 2, 3))), np.arange(12).reshape(2, 2, 3))


# -- dropping stale frames -----------------------------------------------------------------------------------------
def test_only_the_newest_frame_is_processed(coco_json, coco_truth, coco_image_paths):
    predictor = ReplayPredictor.from_coco(coco_json)
    service = make_replay_service(predictor)
    handler = FrameHandler(service)
    ids = list(coco_image_paths)
    frames = [_rgb(coco_image_paths[i]) for i in ids[:3]]
    for f in frames:
        handler.submit(f)
    result = handler.process_latest(_opts(views=("Combined", "Skeleton")))
    assert predictor.calls == 1 and predictor.images_seen == 1
    newest = coco_truth[ids[2]]
    assert result.prediction.image_size == (newest.width, newest.height)
    assert len(result.prediction) == len(newest.key_points)
    assert result.image.shape == (newest.height, 2 * newest.width, 3)  # two views side by side
    assert handler.stats.dropped == 2 and handler.stats.frames == 1
    assert handler.process_latest(_opts(), timeout=0.0) is None  # nothing new: nothing re-processed
    assert predictor.calls == 1


def test_latest_frame_slot_never_builds_a_backlog():
    slot = LatestFrame()
    taken: list[int] = []
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set():
            item = slot.take(timeout=0.05)
            if item is not None:
                taken.append(item.seq)
                time.sleep(0.02)  # a "model" slower than the producer

    t = threading.Thread(target=consumer)
    t.start()
    for i in range(60):
        slot.offer(np.full((2, 2, 3), i % 255, np.uint8))
        time.sleep(0.002)
    time.sleep(0.1)
    stop.set()
    t.join()
    assert slot.offered == 60
    assert slot.taken + slot.dropped == 60
    assert slot.dropped > 0 and taken == sorted(taken)
    assert taken[-1] == 59  # the last offered frame is always the one shown


# -- timing readout ------------------------------------------------------------------------------------------------
def test_live_stats_readout_values():
    now = [100.0]
    stats = LiveStats(window_s=5.0, clock=lambda: now[0])
    for i in range(11):  # one frame every 0.1 s, e2e 100, 110, ... 200 ms
        stats.record(model_ms=40.0 + i, render_ms=5.0, e2e_ms=100.0 + 10 * i, done_at=100.0 + 0.1 * i)
    stats.record_dropped(3)
    now[0] = 101.0
    snap = stats.snapshot()
    assert snap.fps == pytest.approx(10.0)
    assert snap.model_ms == pytest.approx(45.0)
    assert snap.e2e_ms == pytest.approx(150.0)
    assert snap.e2e_p95_ms == pytest.approx(np.percentile(100.0 + 10 * np.arange(11), 95))
    assert (snap.frames, snap.dropped) == (11, 3)
    text = snap.markdown()
    assert "10.0 fps" in text and "model **45 ms**" in text and "end-to-end **150 ms**" in text
    assert text.endswith("11 frames, 3 stale frames skipped")
    now[0] = 200.0  # everything left the window: the stream stalled
    assert stats.snapshot().fps == 0.0
    stats.record(model_ms=4000.0, render_ms=5.0, e2e_ms=4100.0, done_at=204.0)  # a slow model: one frame per 4 s
    stats.record(model_ms=4000.0, render_ms=5.0, e2e_ms=4100.0, done_at=208.0)
    now[0] = 212.5
    assert stats.snapshot().fps == pytest.approx(0.25)
    fresh = LiveStats(clock=lambda: now[0])
    fresh.record(model_ms=4000.0, render_ms=5.0, e2e_ms=4100.0, done_at=212.0)
    assert "skipped" not in fresh.snapshot().markdown()  # no "0 skipped" when none were


def test_handler_timings_cover_model_and_drawing(coco_json, coco_image_paths):
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    handler = FrameHandler(service)
    frame = _rgb(next(iter(coco_image_paths.values())))
    result = handler.process(frame, _opts(views=("Combined",)), offered_at=time.perf_counter() - 0.05)
    assert result.e2e_ms >= 50.0  # counts from when the frame was offered, not when work started
    assert result.e2e_ms >= result.model_ms + result.render_ms
    assert result.model_ms == pytest.approx(result.prediction.inference_ms)
    assert handler.stats.snapshot().frames == 1


def test_frame_while_model_loading_passes_through_without_raising():
    gate = threading.Event()

    def slow_loader():
        gate.wait(10)
        return ReplayPredictor(lambda img: None), COCO, replay_info()

    service = ModelService(slow_loader)
    service.start()
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    result = FrameHandler(service).process(frame, _opts(mirrored_input=True))
    gate.set()
    assert result.prediction is None and "loading" in result.message
    np.testing.assert_array_equal(result.image, frame[:, ::-1])  # un-mirrored, not annotated


# -- stream source policy ------------------------------------------------------------------------------------------
def test_disabled_stream_source_refuses_with_clear_message():
    with pytest.raises(StreamSourceError, match=r"disabled.*--enable-stream-source"):
        validate_stream_url("rtsp://camera.local/stream", enabled=False)


@pytest.mark.parametrize(
    ("url", "allow", "match"),
    [
        ("file:///etc/passwd", "", "Unsupported scheme"),
        ("ftp://cam/x", "", "Unsupported scheme"),
        ("/etc/passwd", "", "Unsupported scheme"),
        ("http://evil.example/x.mjpg", "cam1.lan,10.0.0.5", "not in this server's allow-list"),
        ("rtsp://10.0.0.6:554/s", "10.0.0.5", "not in this server's allow-list"),
        ("http://169.254.169.254/latest/meta-data", "", "not a public address"),
        ("/dev/video0", "cam1.lan", "capture devices are not allowed"),
        ("http:///nohost", "", "no host"),
        ("http://cam .lan/x", "", "spaces"),
    ],
)
def test_stream_urls_outside_policy_are_refused(url, allow, match):
    with pytest.raises(StreamSourceError, match=match):
        validate_stream_url(url, enabled=True, allow_hosts=allow)


def test_allowed_stream_urls():
    def lan_dns(host, port, **_kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    t = validate_stream_url("rtsp://admin:s3cret@CAM1.lan:554/live", True, "cam1.lan, 10.0.0.5", lan_dns)
    assert (t.kind, t.host) == ("network", "cam1.lan")
    assert "s3cret" not in t.display and "***" in t.display
    assert validate_stream_url("https://10.0.0.5:8443/v.mjpg", True, "10.0.0.5:8443").host == "10.0.0.5"
    assert validate_stream_url("device:0", True, "device").url == "/dev/video0"
    assert parse_allow_hosts(" a.lan, ,B.lan,a.lan ") == ("a.lan", "b.lan")
    assert mask_credentials("rtsp://u:p@h/x") == "rtsp://u:***@h/x"


# -- stream source end to end on loopback --------------------------------------------------------------------------
@pytest.fixture()
def coco_jpeg(coco_truth, coco_image_paths):
    image_id = next(i for i, t in coco_truth.items() if len(t.key_points))
    return coco_image_paths[image_id].read_bytes(), coco_truth[image_id]


def test_mjpeg_source_frames_are_annotated(coco_json, coco_jpeg):
    jpeg, truth = coco_jpeg
    predictor = ReplayPredictor.from_coco(coco_json)
    service = make_replay_service(predictor)
    with MjpegServer([jpeg], fps=20) as server:
        target = validate_stream_url(server.url, enabled=True, allow_hosts="127.0.0.1")
        session = SourceSession(service, target, _opts(views=("Combined",)), timeout_s=5.0).start()
        results = []
        for update in session.updates(max_seconds=15, poll_s=0.5):
            if update.result is not None:
                results.append(update.result)
            if len(results) >= 3:
                session.stop()
    assert len(results) >= 3
    raw = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    for r in results:
        assert r.prediction is not None and len(r.prediction) == len(truth.key_points)
        assert r.image.shape == raw.shape
        assert np.abs(r.image.astype(int) - raw.astype(int)).max() > 100  # something was drawn
    assert not session.reader.alive


def test_the_stream_source_runs_the_model_picked_in_the_tab(coco_json, coco_jpeg):
    from rfdetr_demo.config import Settings
    from rfdetr_demo.models.registry import ModelRegistry
    from rfdetr_demo.ui.handlers import UiContext
    from rfdetr_demo.ui.webcam_tab import run_source

    jpeg, _truth = coco_jpeg
    predictors = {name: ReplayPredictor.from_coco(coco_json) for name in ("first", "picked")}
    loaders = [(n, lambda p=p: (p, COCO, replay_info())) for n, p in predictors.items()]
    registry = ModelRegistry(loaders, max_loaded=2)
    ctx = UiContext(
        registry.peek(), Settings(enable_stream_source=True, stream_allow_hosts="127.0.0.1"), registry=registry
    )
    with MjpegServer([jpeg], fps=20) as server:
        frames = run_source(ctx, server.url, 0.5, 0.3, 288, ["Combined"], None, model="picked")
        shown = next(image for image, _readout in frames if isinstance(image, np.ndarray))
        frames.close()  # Stop
    assert shown.shape[2] == 3 and predictors["picked"].calls >= 1 and predictors["first"].calls == 0
    assert registry.loads == {"picked": 1}  # the default model was not even loaded


def test_reader_reconnects_after_drops(coco_jpeg):
    jpeg, _ = coco_jpeg
    frames: list[tuple[int, ...]] = []
    with MjpegServer([*encode_jpegs([np.zeros((48, 64, 3), np.uint8)]), jpeg], fps=30, drop_after=4) as server:
        target = validate_stream_url(server.url, enabled=True, allow_hosts="127.0.0.1")
        reader = StreamReader(target, lambda f: frames.append(f.shape), backoff_s=0.05, timeout_s=5.0).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and server.connections < 3:
            time.sleep(0.05)
        reader.stop()
    status = reader.status()
    assert server.connections >= 3 and status.reconnects >= 2
    assert len(frames) >= 8 and status.state == "stopped"


def test_unreachable_source_fails_with_clear_message(coco_json):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    target = validate_stream_url(f"http://127.0.0.1:{port}/stream.mjpg", enabled=True, allow_hosts="127.0.0.1")
    session = SourceSession(service, target, _opts(), backoff_s=0.05, max_failures=2, timeout_s=2.0).start()
    with pytest.raises(StreamSourceError, match=r"Could not read http://127\.0\.0\.1.*after 2 attempts"):
        for _ in session.updates(max_seconds=20, poll_s=0.2):
            pass
    assert not session.reader.alive


def test_abandoned_source_stops_reading(coco_json, coco_jpeg):
    """A viewer that stops polling (page closed without Stop) must not keep the camera connection open."""
    jpeg, _ = coco_jpeg
    service = make_replay_service(ReplayPredictor.from_coco(coco_json))
    with MjpegServer([jpeg], fps=20) as server:
        target = validate_stream_url(server.url, enabled=True, allow_hosts="127.0.0.1")
        session = SourceSession(service, target, _opts(), idle_timeout_s=0.5, timeout_s=5.0).start()
        deadline = time.monotonic() + 10
        while session.reader.alive and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not session.reader.alive
        assert session.reader.status().state == "stopped"


# -- smoothing -----------------------------------------------------------------------------------------------------
def test_webcam_kalman_smoothing_is_causal_per_viewer_and_beats_raw(person):
    rgb, truth = person
    rng = np.random.default_rng(0)

    def noisy(img: np.ndarray) -> sv.KeyPoints:
        xy = truth.xy + rng.normal(0, 4.0, truth.xy.shape).astype(np.float32)
        cov = np.zeros((*truth.xy.shape[:2], 2, 2), np.float32)
        cov[..., 0, 0] = cov[..., 1, 1] = 16.0
        return sv.KeyPoints(
            xy=xy, class_id=truth.class_id, keypoint_confidence=truth.keypoint_confidence,
            detection_confidence=truth.detection_confidence, visible=truth.visible,
            data={**truth.data, "covariance": cov},
        )  # fmt: skip

    handler = FrameHandler(make_replay_service(ReplayPredictor(noisy)))
    vis = truth.visible[0]
    raw_err, smooth_err = [], []
    t0 = time.perf_counter() - 10.0
    for i in range(30):  # frames captured at 30 fps (a GPU server keeps up with the camera), however slow this CPU
        result = handler.process(rgb, _opts(smoothing="kalman"), offered_at=t0 + i / 30)
        assert result.smoothed is not None and result.image.shape == rgb.shape
        assert 0 < result.smooth_ms < result.e2e_ms
        raw_err.append(np.abs(result.prediction.key_points.xy[0, vis] - truth.xy[0, vis]).mean())
        smooth_err.append(np.abs(result.smoothed.xy[0, vis] - truth.xy[0, vis]).mean())
    assert np.mean(smooth_err[10:]) < 0.8 * np.mean(raw_err[10:])
    off = handler.process(rgb, _opts(smoothing="off"))
    assert off.smoothed is None and off.smooth_ms < 1.0
    with pytest.raises(ValueError, match="unknown smoothing"):
        handler.process(rgb, _opts(smoothing="wobbly"))
