"""What a first run on a CUDA server or on ZeroGPU would hit, checked on a CPU-only machine (issue 26).

rfdetr defers moving a model to its device until the first ``predict``, so a model built with ``device="cuda"``
here behaves like a freshly loaded model on a GPU server (weights still on the CPU, the model's device CUDA): any
code path that moves it, or makes tensors on the wrong device, fails here with "no NVIDIA driver".
"""

from __future__ import annotations

import copy
import gc
import threading
import warnings

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.models import zerogpu
from rfdetr_demo.models.backends import cuda, dispatch
from rfdetr_demo.models.backends.cache import ExportCache
from rfdetr_demo.models.backends.onnx import OnnxExports
from rfdetr_demo.models.predictor import rfdetr_view
from rfdetr_demo.models.random_weights import seed_random_model, seeded

RESOLUTION = 192


def _build(device: str) -> object:
    from rfdetr import RFDETRKeypointPreview

    with seeded():
        return RFDETRKeypointPreview(pretrain_weights=None, num_classes=1, device=device, resolution=RESOLUTION)


@pytest.fixture(scope="module")
def cpu_model():
    """The --random-weights model, built and seeded on the CPU."""
    model = _build("cpu")
    seed_random_model(model)
    return model


@pytest.fixture(scope="module")
def cuda_model():
    """Built for CUDA on a machine without one: its weights wait on the CPU for a move that cannot happen."""
    return _build("cuda")


def _placement(net) -> dict[str, tuple[object, str]]:
    return {name: (p, str(p.device)) for name, p in net.named_parameters()}


# -- 1. the browser engine's export --------------------------------------------------------------------------------
@pytest.mark.model
def test_export_of_a_cuda_model_never_moves_it_while_requests_run(cuda_model, tmp_path, monkeypatch) -> None:
    """rfdetr's export moves the network it is given to the CPU and back to the model's device (CUDA: raises here);
    ours exports a copy: no move of the live network (``Module.to`` → ``_apply``), requests meanwhile succeed."""
    import torch

    net = cuda_model.model.model
    before = _placement(net)
    pointers = {n: p.data_ptr() for n, p in net.named_parameters()}
    moves: list[str] = []
    real_apply = type(net)._apply

    def recording_apply(module, fn, *args, **kwargs):
        if module is net:
            moves.append(threading.current_thread().name)
        return real_apply(module, fn, *args, **kwargs)

    monkeypatch.setattr(type(net), "_apply", recording_apply)
    exports = OnnxExports(cuda_model, ExportCache(tmp_path))
    outcome: list[object] = []

    def export() -> None:
        try:
            outcome.append(exports.prepare(96))
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome.append(exc)

    worker = threading.Thread(target=export, name="export")
    worker.start()
    requests = rfdetr_view(cuda_model, device=torch.device("cpu"))  # the live network, run where it is (no CUDA here)
    frame = np.full((64, 64, 3), 127, np.uint8)
    served = 0
    while worker.is_alive() and served < 20:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert len(requests.predict([frame], threshold=0.0, shape=(96, 96), include_source_image=False)) == 1
        served += 1
    worker.join(300)
    exported = outcome[0]
    assert not isinstance(exported, Exception), exported
    assert exported.path.is_file() and exported.size > 1_000_000
    assert served >= 1 and moves == []
    assert cuda_model.model.model is net and str(cuda_model.model.device).startswith("cuda")
    after = _placement(net)
    assert after.keys() == before.keys()
    assert all(after[n][0] is before[n][0] and after[n][1] == before[n][1] == "cpu" for n in before)
    assert {n: p.data_ptr() for n, p in net.named_parameters()} == pointers


def test_exports_let_go_of_an_unloaded_models_weights(tmp_path) -> None:
    class Model:  # stands in for the rfdetr model the predictor held
        pass

    model = Model()
    exports = OnnxExports(model, ExportCache(tmp_path))
    assert exports.model is model
    del model
    gc.collect()
    assert exports.model is None


# -- 4. --random-weights on a GPU -----------------------------------------------------------------------------------
@pytest.mark.model
def test_random_weights_on_a_cuda_model_are_seeded_where_the_weights_are(cpu_model, cuda_model) -> None:
    """The fit runs where the weights are now (the CPU until rfdetr's first-use move): same numbers, no move."""
    model = copy.deepcopy(cuda_model)
    seed_random_model(model)
    assert str(model.model.device).startswith("cuda")
    seeded_cuda = model.model.model.state_dict()
    for name, value in cpu_model.model.model.state_dict().items():
        assert seeded_cuda[name].device.type == "cpu"
        assert np.array_equal(seeded_cuda[name].numpy(), value.numpy()), name


@pytest.mark.model
def test_random_weights_make_every_tensor_on_the_networks_device_and_dtype(cpu_model, monkeypatch) -> None:
    """On the meta device in fp16 (a stand-in for CUDA fp16): a CPU or fp32 tensor anywhere would raise or show."""
    import torch

    from rfdetr_demo.models import random_weights

    net = copy.deepcopy(cpu_model.model.model).to(device="meta", dtype=torch.float16)
    model = rfdetr_view(cpu_model, model=net)
    width = net.keypoint_embed.layers[-1].weight.shape[1]

    def fit(rf_model, gen):  # the forward pass cannot run on meta: its results, placed as the real ones are
        like = {"device": "meta", "dtype": torch.float16}
        return torch.zeros(2, width, **like), torch.zeros(width, **like)

    monkeypatch.setattr(random_weights, "_fit_template", fit)
    seed_random_model(model)
    assert {(p.device.type, p.dtype) for p in net.parameters()} == {("meta", torch.float16)}


# -- 2. a ZeroGPU start whose model fails ------------------------------------------------------------------------
@pytest.mark.browser
def test_a_zero_gpu_start_whose_checkpoint_cannot_load_serves_the_page_with_the_reason(browser, monkeypatch, tmp_path):
    """``serve.main``'s steps under SPACES_ZERO_GPU=true: ``start_models`` runs before ``launch()``."""
    from playwright.sync_api import expect

    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs, model_registry, start_models
    from rfdetr_demo.config import load_settings
    from tests.helpers import free_port

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    missing = tmp_path / "missing.pth"
    argv = ["--checkpoint", str(missing), "--no-pretrained", "--host", "127.0.0.1", "--port", str(free_port())]
    settings = load_settings(argv, environ={})
    demo = create_app(settings)
    configure_queue(demo, settings)
    registry = model_registry(settings)
    demo.launch(**launch_kwargs(settings, start_models(registry, timeout=120), registry), prevent_thread_lock=True,
                quiet=True)  # fmt: skip
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"http://127.0.0.1:{settings.port}/", wait_until="domcontentloaded")
        status = page.locator("#model-status")
        expect(status).to_contain_text("Checkpoint file not found", timeout=30_000)
        expect(status).to_contain_text("missing.pth")
        page.close()
    finally:
        demo.close()


def test_a_zero_gpu_warm_up_shows_its_choice_or_its_failure_on_the_status_line(monkeypatch) -> None:
    from rfdetr_demo.app_factory import start_models
    from rfdetr_demo.models.registry import ModelRegistry
    from rfdetr_demo.results.schema import KeypointSchema
    from rfdetr_demo.ui.models_panel import status_markdown
    from tests.conftest import replay_info
    from tests.support.replay import ReplayPredictor

    class Warmed(ReplayPredictor):
        def __init__(self, outcome: str) -> None:
            super().__init__(lambda img: None)
            self.outcome = outcome

        def warm_up(self, resolution: int) -> str:
            if self.outcome == "no gpu":  # what spaces raises when the lease cannot start
                raise RuntimeError("No GPU was available")
            return self.outcome

    def loader(outcome: str):
        return lambda: (Warmed(outcome), KeypointSchema.coco(), replay_info())

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    registry = ModelRegistry([("a", loader("no gpu")), ("b", loader("fp16 (autocast)"))], max_loaded=2)
    assert start_models(registry) is registry.peek("a")
    failed, chosen = (registry.peek(name).status() for name in "ab")
    assert failed.state == chosen.state == "ready"
    assert "**precision:** fp32 (warm-up failed: RuntimeError: No GPU was available)" in status_markdown(failed)
    assert "**precision:** fp16 (autocast)" in status_markdown(chosen)


# -- 3. a failed fp16 warm-up ----------------------------------------------------------------------------------------
class _Fake:
    def predict(self, batch, threshold, shape, include_source_image):
        return [sv.KeyPoints.empty() for _ in batch]


class _Raising(_Fake):
    def predict(self, batch, threshold, shape, include_source_image):
        raise RuntimeError("simulated: fp16 kernel failed")


def test_a_view_that_raises_in_the_warm_up_is_not_kept(monkeypatch) -> None:
    monkeypatch.setattr(cuda, "inference_view", lambda model, resolution, dtype: _Raising())
    monkeypatch.setattr(cuda.RFDETRPredictor, "predict", lambda self, images, *a: [sv.KeyPoints.empty()] * len(images))
    pred = cuda.CUDAPredictor(_Fake(), device="cuda", precision="fp16")
    label = pred.warm_up(288, runs=1)
    assert pred.mode in {"autocast", "plain"} and label == pred.label and "model.inference" not in label
    assert "fp16 kernel failed" in (pred.view_failure or "")
    assert len(pred.predict([np.zeros((8, 8, 3), np.uint8)], 0.5, 288)) == 1  # requests are served


def test_a_warm_up_where_every_mode_fails_serves_fp32_and_says_so(monkeypatch) -> None:
    def broken(self, images, *a):
        raise RuntimeError("simulated: CUDA error: unspecified launch failure")

    monkeypatch.setattr(cuda, "inference_view", lambda model, resolution, dtype: _Raising())
    monkeypatch.setattr(cuda.RFDETRPredictor, "predict", broken)
    pred = cuda.CUDAPredictor(_Fake(), device="cuda", precision="fp16")
    assert pred.warm_up(288, runs=1) == "fp32 (warm-up failed: RuntimeError)"
    assert pred.mode == "plain" and pred.precision == "fp32" and "launch failure" in pred.warmup_failure


# -- 6. smaller ones -------------------------------------------------------------------------------------------------
def test_engine_torch_on_cuda_gets_the_live_model_not_fp16_views() -> None:
    assert dispatch.plan_engine("torch", "cuda", True) == ("torch", None)
    assert dispatch.plan_engine("auto", "cuda", True) == ("torch-cuda", None)


@pytest.mark.model
def test_half_precision_views_post_process_in_fp32(cpu_model) -> None:
    """bf16 (runs on CPU; fp16 has the same flaw, finer) would round a 2.4k-px photo's coordinates to 16 px."""
    import torch

    view = cuda.inference_view(cpu_model, 96, torch.bfloat16)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (2400, 2400, 3), dtype=np.uint8)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (kp,) = view.predict([photo], threshold=0.0, shape=(96, 96), include_source_image=False)
    coords = np.concatenate([kp.xy.ravel(), kp.data["xyxy"].ravel()])
    high = coords[(coords >= 2048) & (coords < 2400)]
    assert high.size >= 10 and np.mean(high % 16 != 0) > 0.5  # bf16 arithmetic at ≥ 2048 moves in steps of 16
    assert np.isfinite(kp.detection_confidence).all() and np.isfinite(kp.keypoint_confidence).all()


def test_unloading_a_model_hands_cached_cuda_memory_back(replay_service, monkeypatch) -> None:
    import torch

    released: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: released.append(1))
    replay_service.wait(30)
    assert replay_service.unload() and released == [1]


# -- 5. a sticky CUDA error replaces the ZeroGPU worker --------------------------------------------------------------
def test_cuda_failures_are_told_apart_from_the_rest() -> None:
    import torch

    from rfdetr_demo.errors import UserError

    assert zerogpu.is_cuda_failure(torch.AcceleratorError("CUDA error: an illegal memory access was encountered"))
    assert zerogpu.is_cuda_failure(RuntimeError("CUDA error: device-side assert triggered"))
    assert not zerogpu.is_cuda_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not zerogpu.is_cuda_failure(UserError("resolution must be a positive multiple of 24"))
    assert not zerogpu.is_cuda_failure(RuntimeError("The model is still loading"))


# -- 7. bench/gpu_check.py -----------------------------------------------------------------------------------------
def test_gpu_check_on_a_machine_without_cuda_says_so_runs_the_cpu_parts_and_exits_0() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [sys.executable, "bench/gpu_check.py"], cwd=repo, capture_output=True, text=True, timeout=400,
        env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert any(line.startswith("no CUDA device: GPU checks skipped") for line in lines), run.stdout
    assert any(line.startswith("first request") for line in lines), run.stdout
    video = next(line for line in lines if line.startswith("video"))
    assert "keyframes 1:" in video and "keyframes auto:" in video


def test_gpu_check_matches_people_by_box_before_measuring_joint_shifts() -> None:
    from bench.gpu_check import match_deviation

    def people(boxes, joints, scores):
        kp = sv.KeyPoints(xy=np.asarray(joints, np.float32), confidence=np.ones((len(boxes), 2), np.float32))
        kp.data["xyxy"] = np.asarray(boxes, np.float32)
        kp.detection_confidence = np.asarray(scores, np.float32)
        return kp

    ref = people([[0, 0, 10, 10], [100, 100, 120, 140]], [[[1, 1], [2, 2]], [[101, 101], [110, 130]]], [0.9, 0.8])
    got = people([[101, 100, 121, 140], [0, 0, 10, 11]], [[[104, 105], [110, 130]], [[1, 1], [2, 3]]], [0.7, 0.9])
    assert sorted(match_deviation(ref, got)) == [0.0, 0.0, 1.0, 5.0]  # in the other order, still matched
    assert match_deviation(ref, people(np.zeros((0, 4)), np.zeros((0, 2, 2)), [])) == []
