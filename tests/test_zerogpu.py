"""ZeroGPU: one `spaces.GPU` lease per request (image, clip, evaluation, warm-up), checked with a fake `spaces`."""

from __future__ import annotations

import functools
import pickle
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.evaluate.pipeline import EvaluationRequest, evaluate
from rfdetr_demo.evaluate.runner import RunOptions
from rfdetr_demo.image.task import run_image
from rfdetr_demo.models import zerogpu
from rfdetr_demo.ui.cancel import CancelToken
from rfdetr_demo.video.pipeline import VideoOptions, run_video
from tests.conftest import COCO_DIR
from tests.video_helpers import make_clip


class FakeSpaces(types.ModuleType):
    """Stands in for `spaces`: each GPU call is one lease; arguments and results cross pickled, as on ZeroGPU."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.leases: list[tuple[str, int]] = []
        self.on_request: Callable[[], None] = lambda: None  # runs when a lease is asked for (before it is granted)

    def GPU(self, func=None, *, duration=60):  # mirrors spaces.GPU
        def decorate(fn):
            def leased(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.on_request()
                self.leases.append((fn.__name__, seconds))
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # what crosses must pickle
                return pickle.loads(pickle.dumps(fn(*args, **kwargs)))

            return leased

        return decorate(func) if func is not None else decorate


@pytest.fixture()
def fake_spaces(monkeypatch: pytest.MonkeyPatch):
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    zerogpu.rebuild_leases()
    yield fake
    monkeypatch.undo()
    zerogpu.rebuild_leases()


def _expected(images: int, resolution: int) -> int:
    return zerogpu.lease_seconds(zerogpu.estimate_seconds(images, resolution))


def test_an_image_is_one_lease_and_the_lock_is_free_while_waiting(fake_spaces, replay_service, coco_image_paths):
    freed = threading.Event()
    asked_before_freed: list[bool] = []
    fake_spaces.on_request = lambda: asked_before_freed.append(not freed.is_set())
    holder = threading.Thread(target=replay_service._infer_lock.acquire)  # another request is in the model
    holder.start()
    holder.join()

    def free() -> None:
        replay_service._infer_lock.release()
        freed.set()

    timer = threading.Timer(0.5, free)
    timer.start()
    run = run_image(replay_service, next(iter(coco_image_paths.values())), 0.5, resolution=288)
    timer.join()
    assert len(run.prediction) > 0
    assert fake_spaces.leases == [("_infer", _expected(1, 288))]
    # the lease was asked for while the other request still held the model: the lock is taken inside the lease
    assert asked_before_freed == [True]


REPORTS: list[Any] = []  # module-level: a callback crosses the pickled boundary by reference, as a lease needs


def _record(*values: Any) -> None:
    REPORTS.append(values)


def _cancel_after(frames: int, token: CancelToken, p: Any) -> None:
    if p.done >= frames:
        token.set()


def test_a_clip_is_one_lease_sized_by_its_frames(fake_spaces, replay_service, tmp_path):
    src = make_clip(tmp_path / "clip.mp4", 30, size=(160, 96), fps=10)
    REPORTS.clear()
    result = run_video(replay_service, src, VideoOptions(resolution=288), out_dir=tmp_path / "o", progress=_record)
    assert result.frames_done == 30 and result.video_path.stat().st_size > 0
    assert fake_spaces.leases == [("_run_planned", _expected(30, 288))]  # not one lease per batch
    assert REPORTS and REPORTS[-1][0].done == 30  # progress still reaches the caller
    long_clip = zerogpu.estimate_seconds(3000, 576)
    assert zerogpu.lease_seconds(long_clip) == zerogpu.MAX_DURATION_S  # capped


def test_cancel_reaches_a_clip_inside_its_lease(fake_spaces, replay_service, tmp_path):
    from rfdetr_demo.video.pipeline import VideoCancelled

    src = make_clip(tmp_path / "clip.mp4", 20, size=(160, 96), fps=10)
    cancel = CancelToken(tmp_path / "cancel")
    report = functools.partial(_cancel_after, 3, cancel)
    with pytest.raises(VideoCancelled, match="Cancelled"):
        run_video(
            replay_service, src, VideoOptions(resolution=288), out_dir=tmp_path / "o", progress=report, cancel=cancel
        )
    assert [name for name, _ in fake_spaces.leases] == ["_run_planned"]
    assert not list((tmp_path / "o").glob("*.mp4"))


def test_an_evaluation_is_one_lease_sized_by_its_images(fake_spaces, replay_service, coco_json, coco_truth):
    REPORTS.clear()
    request = EvaluationRequest(coco_json, [COCO_DIR], options=RunOptions(resolution=384, batch_size=2))
    evaluation = evaluate(request, replay_service, on_progress=_record)
    n = len(coco_truth)
    assert evaluation.first.stats["AP"] > 0.9  # the replayed ground truth scores as ground truth
    assert fake_spaces.leases == [("predict_dataset", _expected(n, 384))]
    assert REPORTS[-1] == (n, n)


def test_warm_up_runs_in_a_lease_and_its_choice_comes_back(fake_spaces, monkeypatch):
    from rfdetr_demo.models.backends import cuda

    class Model:
        def predict(self, batch, threshold, shape, include_source_image):
            return [sv.KeyPoints.empty() for _ in batch]

    monkeypatch.setattr(cuda, "inference_view", lambda model, resolution, dtype: Model())
    monkeypatch.setattr(cuda.RFDETRPredictor, "predict", lambda self, *a: [sv.KeyPoints.empty()])
    CLOCK["t"] = 0.0
    pred = cuda.CUDAPredictor(Model(), device="cuda", precision="fp16")
    pred._predict_chunk = _ticking(pred._predict_chunk, CLOCK, pred)  # type: ignore[method-assign]
    assert pred.warm_up(288, runs=3, timer=_clock) == "fp16 (model.inference)"
    assert fake_spaces.leases == [("_measure_modes", _expected(len(cuda.MODES) * 4, 288))]
    assert set(pred.warmup_ms) == set(cuda.MODES)


CLOCK = {"t": 0.0}


def _clock() -> float:
    return CLOCK["t"]


def _ticking(predict_chunk, clock: dict[str, float], pred: Any):
    cost = {"inference": 1.0, "autocast": 2.0, "plain": 3.0}

    def call(images, threshold, resolution):
        clock["t"] += cost[pred.mode]
        return predict_chunk(images, threshold, resolution)

    return call


def test_without_spaces_nothing_is_wrapped(monkeypatch: pytest.MonkeyPatch, replay_service) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces → ImportError
    zerogpu.rebuild_leases()
    calls: list[int] = []
    f = zerogpu.gpu(5)(lambda x: calls.append(x) or x + 1)
    assert f(1) == 2 and calls == [1] and not zerogpu.inside_gpu_call()


def test_nested_calls_and_threads_share_the_outer_lease(fake_spaces) -> None:
    inner = zerogpu.gpu(lambda n: zerogpu.estimate_seconds(n, 576))(lambda n: n * 2)

    def body(n: int) -> int:
        out: list[int] = []
        import contextvars

        t = threading.Thread(target=contextvars.copy_context().run, args=(lambda: out.append(inner(n)),))
        t.start()
        t.join()
        return out[0] + 1

    outer = zerogpu.gpu(10)(body)
    assert outer(3) == 7
    assert fake_spaces.leases == [("body", 10)]  # the inner call (in a thread of the lease) took no lease
    assert inner(3) == 6 and len(fake_spaces.leases) == 2


def test_results_crossing_the_lease_are_cpu_numpy() -> None:
    import torch

    kp = sv.KeyPoints(xy=np.ones((1, 17, 2), np.float32), data={"class_name": np.array(["person"])})
    # A GPU predictor could hand back tensors (supervision validates only at construction): set them afterwards.
    kp.xy, kp.keypoint_confidence, kp.detection_confidence = torch.ones(1, 17, 2), torch.ones(1, 17), torch.ones(1)
    kp.data["covariance"] = torch.zeros(1, 17, 2, 2)
    out = zerogpu.cpu_key_points(kp)
    assert isinstance(out.xy, np.ndarray) and isinstance(out.data["covariance"], np.ndarray)
    assert isinstance(out.keypoint_confidence, np.ndarray) and out.xy.shape == (1, 17, 2)


def test_an_error_in_the_lease_reaches_the_request_whole(fake_spaces, monkeypatch) -> None:
    """Real `spaces` turns any exception but gr.Error into "ZeroGPU worker error"; ours come back as themselves."""
    from rfdetr_demo.errors import UserError

    def strict(fn):
        def leased(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise RuntimeError("ZeroGPU worker error") from exc

        return leased

    gpu = fake_spaces.GPU
    monkeypatch.setattr(fake_spaces, "GPU", lambda func=None, **kw: lambda fn: strict(gpu(**kw)(fn)))
    zerogpu.rebuild_leases()

    def bad(n: int) -> int:
        raise UserError(f"clip {n} has no frames in the selected range")

    with pytest.raises(UserError, match="clip 3 has no frames") as caught:
        zerogpu.gpu(5)(bad)(3)
    assert "In the GPU lease" in "".join(getattr(caught.value, "__notes__", []))  # the worker's traceback, for the log
    assert fake_spaces.leases == [("bad", 5)]


def test_on_zero_gpu_every_model_loads_before_serving_then_warms_up_in_a_lease(fake_spaces, monkeypatch):
    """A ZeroGPU worker is forked at the first lease and reused: every model must be in memory by then."""
    from rfdetr_demo.app_factory import model_registry, start_models
    from rfdetr_demo.config import load_settings
    from rfdetr_demo.models.registry import ModelRegistry
    from rfdetr_demo.results.schema import KeypointSchema
    from tests.conftest import replay_info
    from tests.support.replay import ReplayPredictor

    events: list[str] = []

    class Warmed(ReplayPredictor):
        def __init__(self, name: str) -> None:
            super().__init__(lambda img: None)
            self.name = name

        def warm_up(self, resolution: int) -> str:
            events.append(f"warm {self.name} {resolution}")
            return "fp16"

    def loader(name: str):
        def load():
            events.append(f"load {name}")
            return Warmed(name), KeypointSchema.coco(), replay_info()

        return load

    argv = ["--checkpoint", "a=/w/a.pth", "--checkpoint", "b=/w/b.pth", "--no-pretrained", "--max-loaded-models", "1"]
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert model_registry(load_settings(argv, environ={})).max_loaded == 1
    registry = ModelRegistry([(n, loader(n)) for n in "ab"], max_loaded=1)
    start_models(registry)
    assert events == ["load a"] or events == []  # elsewhere only the default starts, in the background

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert model_registry(load_settings(argv, environ={})).max_loaded == 2  # nothing is unloaded on ZeroGPU
    events.clear()
    registry = ModelRegistry([(n, loader(n)) for n in "ab"], max_loaded=2)
    service = start_models(registry)
    resolution = replay_info().default_resolution
    assert events == ["load a", "load b", f"warm a {resolution}", f"warm b {resolution}"]
    assert [r.state for r in registry.rows()] == ["ready", "ready"]
    assert service is registry.peek("a")
