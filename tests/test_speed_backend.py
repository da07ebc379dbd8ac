"""Speed backends: OpenVINO gives torch's keypoints, falls back to torch, and reuses its disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from rfdetr_demo.image.decode import load_image
from rfdetr_demo.models.backends import dispatch
from rfdetr_demo.models.backends.cache import ExportCache, cache_key, weights_fingerprint
from rfdetr_demo.models.backends.cuda import batches, choose_fastest
from rfdetr_demo.models.predictor import RFDETRPredictor

RES = 288


# -- pure logic (no model) -------------------------------------------------------------------------------------------
def test_plan_engine_dispatch() -> None:
    assert dispatch.plan_engine("auto", "cpu", True) == ("openvino", None)
    assert dispatch.plan_engine("auto", "cpu", False) == ("torch", "openvino not installed")
    assert dispatch.plan_engine("openvino", "cpu", False) == ("torch", "openvino not installed")
    assert dispatch.plan_engine("torch", "cpu", True) == ("torch", None)
    assert dispatch.plan_engine("auto", "cuda", True) == ("torch-cuda", None)
    assert dispatch.plan_engine("openvino", "cuda:1", True)[0] == "torch-cuda"
    assert dispatch.plan_engine("auto", "mps", True) == ("torch", None)
    with pytest.raises(ValueError, match="engine must be one of"):
        dispatch.validate_engine("tensorrt")


def test_engine_setting_reaches_model_spec() -> None:
    from rfdetr_demo.config import load_settings

    assert load_settings([], {}).model_catalog()[0].spec.engine == "auto"
    assert load_settings(["--engine", "openvino"], {}).model_catalog()[0].spec.engine == "openvino"
    assert load_settings([], {"RFDETR_DEMO_ENGINE": "torch"}).model_catalog()[0].spec.engine == "torch"


def test_choose_fastest_keeps_preferred_unless_clearly_slower() -> None:
    clock = {"t": 0.0}
    cost = {"fp16": 1.0, "fp32": 2.0}
    current = {"name": ""}

    def make(name: str):
        def run() -> None:
            current["name"] = name
            clock["t"] += cost[name]

        return run

    timer = lambda: clock["t"]  # noqa: E731
    best, med = choose_fastest({"fp16": make("fp16"), "fp32": make("fp32")}, runs=3, timer=timer, prefer="fp16")
    assert best == "fp16" and med == {"fp16": 1.0, "fp32": 2.0}
    cost["fp16"] = 3.0  # fp16 slower on this GPU: never slower than plain fp32
    best, _ = choose_fastest({"fp16": make("fp16"), "fp32": make("fp32")}, runs=3, timer=timer, prefer="fp16")
    assert best == "fp32"
    cost["fp16"] = 2.04  # within noise: stay with the preferred one
    best, _ = choose_fastest({"fp16": make("fp16"), "fp32": make("fp32")}, runs=3, timer=timer, prefer="fp16")
    assert best == "fp16"
    assert [len(b) for b in batches(list(range(19)), 8)] == [8, 8, 3]


def test_cache_reuse_atomic_and_pruned(tmp_path) -> None:
    cache = ExportCache(tmp_path, max_entries=2)
    calls = []

    def build(d):
        calls.append(d)
        (d / "inference.xml").write_text("<xml/>")
        (d / "inference.bin").write_bytes(b"\0")
        return d / "inference.xml"

    p1, created1 = cache.get_or_create("k1", "model.xml", build)
    p2, created2 = cache.get_or_create("k1", "model.xml", build)
    assert (created1, created2) == (True, False) and p1 == p2 and len(calls) == 1
    assert (p1.parent / "model.bin").read_bytes() == b"\0"  # companion renamed with the graph
    cache.get_or_create("k2", "model.xml", build)
    cache.get_or_create("k3", "model.xml", build)
    assert sorted(e.name for e in cache.entries()) == ["k2", "k3"]  # k1 least recently used → pruned
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left

    def broken(d):
        (d / "model.xml").write_text("half")
        raise RuntimeError("export crashed")

    with pytest.raises(RuntimeError, match="export crashed"):
        cache.get_or_create("k4", "model.xml", broken)
    assert cache.lookup("k4", "model.xml") is None and not (tmp_path / "k4").exists()


def test_cache_sweeps_exports_abandoned_by_a_killed_process(tmp_path) -> None:
    import os
    import time

    cache = ExportCache(tmp_path)
    abandoned, in_progress = tmp_path / ".key-r576.abcd", tmp_path / ".key-r384.efgh"
    for d in (abandoned, in_progress):
        d.mkdir()
        (d / "model.bin").write_bytes(b"x" * 1000)
    old = time.time() - 2 * 3600
    os.utime(abandoned, (old, old))

    def build(d):
        (d / "model.xml").write_text("<net/>")
        return d / "model.xml"

    cache.get_or_create("k1", "model.xml", build, {"r": 1})
    assert not abandoned.exists()  # killed mid-export two hours ago: gone
    assert in_progress.exists()  # may be another process exporting right now: kept
    assert cache.lookup("k1", "model.xml") is not None


def test_cache_key_depends_on_weights_resolution_and_versions() -> None:
    torch = pytest.importorskip("torch")
    a = weights_fingerprint({"w": torch.zeros(3), "b": torch.ones(2, dtype=torch.bfloat16)})
    b = weights_fingerprint({"w": torch.tensor([0.0, 0.0, 1e-6]), "b": torch.ones(2, dtype=torch.bfloat16)})
    assert a != b
    v = {"openvino": "1", "rfdetr": "1"}
    assert cache_key(a, 288, v) != cache_key(a, 384, v) != cache_key(a, 288, {**v, "openvino": "2"})


# -- the real model with random weights ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rf_model():
    pytest.importorskip("rfdetr")
    import torch
    from rfdetr import RFDETRKeypointPreview

    from tests.support.synthetic import fill_zero_keypoint_heads

    torch.manual_seed(0)  # the same random weights every run (and the keypoint check below is not left to chance)
    model = RFDETRKeypointPreview(pretrain_weights=None, device="cpu")
    # untrained keypoint heads output confidence 0 (all keypoints zeroed): make them vary so the comparison bites
    assert fill_zero_keypoint_heads(model.model.model) > 0
    return model


@pytest.fixture(scope="module")
def images(coco_image_paths):
    paths = sorted(coco_image_paths.values())[:2]
    return [load_image(str(p), max_side=640).rgb for p in paths]


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory):
    return ExportCache(tmp_path_factory.mktemp("engines"))


@pytest.mark.model
def test_openvino_matches_torch_and_reuses_cache(rf_model, images, ov_cache) -> None:
    pytest.importorskip("openvino")
    from rfdetr_demo.models.backends.openvino import OpenVINOPredictor

    ov = OpenVINOPredictor(rf_model, precision="fp32", cache=ov_cache)
    torch_pred = RFDETRPredictor(rf_model, device="cpu", precision="fp32")
    # threshold 0: every query row, so the comparison covers 100 detections per image, not a few
    got = ov.predict(images, 0.0, RES)
    ref = torch_pred.predict(images, 0.0, RES)
    # informative keypoints (not all zeroed), so the comparison below means something
    assert sum(int(r.visible.sum()) for r in ref) > 50 and max(float(np.ptp(r.xy)) for r in ref) > 10
    assert ov.export_count == 1 and not ov.failed
    assert len(got) == len(ref) == len(images)
    for g, r in zip(got, ref, strict=True):
        assert len(g) == len(r) > 0
        assert g.visible.any() and np.ptp(r.xy) > 10  # informative keypoints, not all zero
        np.testing.assert_array_equal(g.class_id, r.class_id)
        assert np.abs(g.xy - r.xy).max() < 1e-3  # pixels
        assert np.abs(g.data["xyxy"] - r.data["xyxy"]).max() < 1e-3
        assert np.abs(g.detection_confidence - r.detection_confidence).max() < 1e-4
        assert np.abs(g.keypoint_confidence - r.keypoint_confidence).max() < 1e-4
        assert list(g.data["class_name"]) == list(r.data["class_name"])
        gc, rc = g.data["covariance"], r.data["covariance"]
        np.testing.assert_array_equal(np.isnan(gc), np.isnan(rc))
        ok = ~np.isnan(rc)
        # covariances of untrained heads span many orders of magnitude: compare relative to each 2x2 matrix
        scale = np.abs(np.nan_to_num(rc)).max(axis=(-2, -1), keepdims=True) + 1e-12
        assert np.abs((gc - rc) / scale)[ok].max() < 1e-3
    # torch module is back in place after the call
    assert sum(p.numel() for p in rf_model.model.model.parameters()) > 1_000_000

    second = OpenVINOPredictor(rf_model, precision="fp32", cache=ov_cache)
    again = second.predict(images[:1], 0.0, RES)
    assert second.export_count == 0  # loaded from disk, not re-exported
    assert np.abs(again[0].xy - got[0].xy).max() < 1e-4


@pytest.mark.model
def test_fallback_to_torch_when_engine_missing_or_export_fails(rf_model, images, ov_cache, monkeypatch) -> None:
    from rfdetr_demo.models.backends import openvino

    monkeypatch.setattr(openvino, "openvino_available", lambda: False)
    choice = dispatch.build_predictor(rf_model, "cpu", "fp32", engine="auto", default_resolution=RES, cache=ov_cache)
    assert isinstance(choice.predictor, RFDETRPredictor) and choice.engine == "torch (openvino not installed)"
    assert len(choice.predictor.predict(images[:1], 0.0, RES)[0]) > 0
    monkeypatch.undo()

    pytest.importorskip("openvino")

    def broken_export(self, resolution, out_dir):
        raise RuntimeError("simulated export failure")

    monkeypatch.setattr(openvino.OpenVINOPredictor, "_export", broken_export)
    # a resolution not in the cache: the load-time export fails → the whole engine falls back, labelled for the page
    choice = dispatch.build_predictor(rf_model, "cpu", "fp32", default_resolution=240, cache=ov_cache)
    assert choice.engine == "torch (openvino failed, see log)" and isinstance(choice.predictor, RFDETRPredictor)
    # a working engine whose export fails only for one resolution serves that resolution with torch
    ov = openvino.OpenVINOPredictor(rf_model, precision="fp32", cache=ov_cache)
    out = ov.predict(images[:1], 0.0, 240)
    ref = RFDETRPredictor(rf_model, device="cpu").predict(images[:1], 0.0, 240)
    assert 240 in ov.failed and "simulated" in ov.failed[240]
    np.testing.assert_array_equal(out[0].xy, ref[0].xy)
    assert ov.predict(images[:1], 0.0, 240)[0].xy.shape == ref[0].xy.shape  # logged once, then straight to torch


def test_latency_book_labels_from_the_services_requests(replay_service, coco_image_paths) -> None:
    from rfdetr_demo.models.service import LatencyBook

    assert LatencyBook().choices()[0] == ("288² · fastest", 288)  # nothing measured yet: no invented figure
    image = load_image(str(sorted(coco_image_paths.values())[0]), max_side=640).rgb
    replay_service.predict(image, resolution=384)
    assert replay_service.latency.latency_ms(384) is not None and replay_service.latency.latency_ms(384) >= 0
    book = LatencyBook(window=3)
    for ms in (100.0, 900.0, 500.0, 450.0):
        book.record(576, ms)
    assert book.latency_ms(576) == 500.0  # median of the last 3
    assert dict((v, k) for k, v in book.choices())[576] == "576² · most accurate · ~0.50 s"
    # a resolution served by torch while OpenVINO prepared it: the engine switch forgets the torch figures
    for ms, engine in ((1300.0, "torch (openvino preparing 480²)"), (1250.0, "torch (openvino preparing 480²)")):
        book.record(480, ms, engine)
    assert book.latency_ms(480) == 1275.0
    book.record(480, 900.0, "openvino")
    assert book.latency_ms(480) == 900.0


@pytest.mark.model
def test_runtime_engine_error_falls_back_to_torch(rf_model, images, ov_cache, monkeypatch) -> None:
    pytest.importorskip("openvino")
    from rfdetr_demo.models.backends.openvino import OpenVINOPredictor

    ov = OpenVINOPredictor(rf_model, precision="fp32", cache=ov_cache)
    monkeypatch.setattr(ov, "prepare", lambda resolution: object())

    def boom(*args):
        raise RuntimeError("simulated inference failure")

    monkeypatch.setattr(ov, "_predict_compiled", boom)
    out = ov.predict(images[:1], 0.0, 240)
    ref = RFDETRPredictor(rf_model, device="cpu").predict(images[:1], 0.0, 240)
    assert "simulated inference failure" in ov.failed[240]
    np.testing.assert_array_equal(out[0].xy, ref[0].xy)


class _FakeRF:
    """Stands in for an rfdetr model: records batch sizes and what autocast dtype was active."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def predict(self, batch, threshold, shape, include_source_image):
        import supervision as sv

        self.batch_sizes.append(len(batch))
        return [sv.KeyPoints.empty() for _ in batch]


def test_cuda_predictor_warm_up_and_batching_with_fakes(monkeypatch) -> None:
    """The GPU path's choice logic, exercised on CPU with a fake model and a fake clock (no CUDA here)."""
    import warnings

    from rfdetr_demo.models.backends import cuda
    from rfdetr_demo.models.backends.cuda import CUDAPredictor

    fake = _FakeRF()
    cost = {"inference": 1.0, "autocast": 1.8, "plain": 2.5}
    clock = {"t": 0.0}
    views_made = []

    class FakeView(_FakeRF):
        def predict(self, batch, threshold, shape, include_source_image):
            clock["t"] += cost["inference"]
            return fake.predict(batch, threshold, shape, include_source_image)

    def fake_view(model, resolution, dtype):
        views_made.append(resolution)
        return FakeView()

    real_predict = cuda.RFDETRPredictor.predict

    def timed_predict(self, images, threshold, resolution):
        clock["t"] += cost["autocast" if self.precision == "fp16" else "plain"]
        return real_predict(self, images, threshold, resolution)

    monkeypatch.setattr(cuda, "inference_view", fake_view)
    monkeypatch.setattr(cuda.RFDETRPredictor, "predict", timed_predict)
    pred = CUDAPredictor(fake, device="cuda", precision="fp16", max_batch=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that CUDA autocast is unavailable on this CPU-only machine
        assert pred.warm_up(288, runs=3, timer=lambda: clock["t"]) == "fp16 (model.inference)"
        assert pred.warmup_ms == pytest.approx({"inference": 1000.0, "autocast": 1800.0, "plain": 2500.0})
        assert views_made == [288]  # one view per resolution, reused across calls
        pred.predict([np.zeros((48, 64, 3), np.uint8)], 0.5, 384)
        assert views_made == [288, 384]
        cost["inference"] = 4.0  # a GPU where pure fp16 weights are slower: autocast wins
        assert pred.warm_up(288, runs=3, timer=lambda: clock["t"]) == "fp16 (autocast)"
        cost["autocast"] = 3.0  # and where fp16 is slower altogether: plain fp32, never slower than plain predict
        assert pred.warm_up(288, runs=3, timer=lambda: clock["t"]) == "fp32" and pred.precision == "fp32"
        fake.batch_sizes.clear()
        frames = [np.zeros((48, 64, 3), np.uint8)] * 19
        assert len(pred.predict(frames, 0.5, 288)) == 19
    assert fake.batch_sizes == [8, 8, 3]

    def broken_view(model, resolution, dtype):
        raise RuntimeError("simulated: no fp16 kernels")

    monkeypatch.setattr(cuda, "inference_view", broken_view)
    cost.update(inference=1.0, autocast=1.8, plain=2.5)
    pred = CUDAPredictor(fake, device="cuda", precision="fp16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert pred.warm_up(288, runs=3, timer=lambda: clock["t"]) == "fp16 (autocast)"
    assert "no fp16 kernels" in pred.view_failure


@pytest.mark.model
def test_inference_views_per_resolution_match_plain_predict(rf_model, images) -> None:
    """rfdetr's own ``model.inference`` per resolution, on CPU: an fp32 view equals plain predict, bf16 runs."""
    import torch

    from rfdetr_demo.models.backends.cuda import CUDAPredictor

    plain = RFDETRPredictor(rf_model, device="cpu")
    live_resolution = rf_model.model.resolution
    pred = CUDAPredictor(rf_model, device="cpu", precision="fp16", half_dtype=torch.float32)
    assert pred.mode == "inference" and pred.label == "fp16 (model.inference)"
    for res in (RES, 240):  # two resolutions, two views, while the live model keeps its own resolution
        got = pred.predict(images, 0.0, res)
        ref = plain.predict(images, 0.0, res)
        for g, r in zip(got, ref, strict=True):
            assert len(g) == len(r) > 0 and np.abs(g.xy - r.xy).max() < 1e-3
            assert np.abs(g.detection_confidence - r.detection_confidence).max() < 1e-4
    assert sorted(pred._views) == [240, RES]
    assert not rf_model._is_optimized_for_inference and rf_model.model.resolution == live_resolution
    assert plain.predict(images[:1], 0.0, 192)[0].xy.shape[1:] == (17, 2)  # the live model serves any resolution

    bf16 = CUDAPredictor(rf_model, device="cpu", precision="bf16")
    out = bf16.predict(images[:1], 0.0, RES)
    assert bf16._views[RES].model.inference_model is not None
    assert next(bf16._views[RES].model.inference_model.parameters()).dtype == torch.bfloat16
    assert out[0].xy.shape[1:] == (17, 2) and np.isfinite(out[0].xy).all()


@pytest.mark.model
def test_background_export_serves_torch_meanwhile_then_openvino(rf_model, images, ov_cache, monkeypatch) -> None:
    """A new resolution is answered by torch at once while OpenVINO prepares it, then by OpenVINO."""
    pytest.importorskip("openvino")
    import threading

    from rfdetr_demo.models.backends import openvino

    res = 240
    ov = openvino.OpenVINOPredictor(rf_model, precision="fp32", cache=ov_cache, background=True)
    started, release = threading.Event(), threading.Event()
    real_build = ov._build

    def held_build(resolution):
        started.set()
        assert release.wait(120)
        return real_build(resolution)

    monkeypatch.setattr(ov, "_build", held_build)
    live_network_seen = []
    real_forward_module = openvino.compiled_forward_module

    def recording_forward_module(compiled):
        module = real_forward_module(compiled)
        real_forward = module.forward

        def forward(batch):
            live_network_seen.append(type(rf_model.model.model).__name__)
            return real_forward(batch)

        module.forward = forward
        return module

    monkeypatch.setattr(openvino, "compiled_forward_module", recording_forward_module)

    ref = RFDETRPredictor(rf_model, device="cpu").predict(images[:1], 0.0, res)
    first = ov.predict(images[:1], 0.0, res)  # returns while the export is held
    assert started.wait(30)
    assert ov.engine_at(res) == f"torch (openvino preparing {res}²)"
    np.testing.assert_array_equal(first[0].xy, ref[0].xy)  # torch's own result
    future = ov.prepare_in_background(res)  # joins the running job instead of starting a second export
    release.set()
    future.result(timeout=300)
    assert ov.engine_at(res) == "openvino" and res not in ov.failed
    later = ov.predict(images[:1], 0.0, res)
    assert np.abs(later[0].xy - ref[0].xy).max() < 1e-3
    # the OpenVINO call ran on a copy: the live rfdetr model kept its torch network, which a concurrent export copies
    assert live_network_seen and all(name != "OpenVINOForward" for name in live_network_seen)


def test_service_reports_the_engine_that_served_each_resolution(coco_image_paths) -> None:
    from rfdetr_demo.models.service import ModelService
    from rfdetr_demo.results.schema import KeypointSchema
    from tests.conftest import replay_info

    class TwoEngines:
        def predict(self, images, threshold, resolution):
            import supervision as sv

            return [sv.KeyPoints.empty() for _ in images]

        def engine_at(self, resolution):
            return "openvino" if resolution == 576 else f"torch (openvino preparing {resolution}²)"

        def preparing_at(self, resolution):
            return resolution != 576

    service = ModelService(lambda: (TwoEngines(), KeypointSchema.coco(), replay_info()))
    image = load_image(str(sorted(coco_image_paths.values())[0]), max_side=320).rgb
    assert service.predict(image, resolution=576).model_info.engine == "openvino"
    slow = service.predict(image, resolution=384)
    assert slow.model_info.engine == "torch (openvino preparing 384²)"
    from rfdetr_demo.image.task import ImageRun, summarize

    text = summarize(ImageRun(image, slow, "x.jpg", []), 0.3, 1.0)
    assert "cpu / torch (openvino preparing 384²) / fp32" in text and "preparing 384² in the background" in text
