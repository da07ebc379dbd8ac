"""Several models: the option parsing, the LRU registry (load in the background, unload, reload), the diff."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import supervision as sv

from rfdetr_demo.config import load_settings
from rfdetr_demo.image.compare import diff, match, sigmas_for
from rfdetr_demo.models.catalog import model_catalog
from rfdetr_demo.models.loading import PRETRAINED_NAME, ModelSpec
from rfdetr_demo.models.registry import ModelRegistry
from rfdetr_demo.models.service import ModelUnavailable
from rfdetr_demo.results.prediction import normalize
from rfdetr_demo.results.schema import MATCH_OKS, KeypointSchema
from tests.conftest import replay_info
from tests.support.replay import ReplayPredictor


def test_checkpoints_are_named_listed_in_order_and_the_preview_added():
    entries = model_catalog(ModelSpec(device="cpu"), "base=/w/a.pth,hf://o/r/dir/b.pth", "base=hand.yaml", True)
    assert [e.name for e in entries] == ["base", "b.pth", PRETRAINED_NAME]
    assert entries[0].spec.checkpoint == "/w/a.pth" and entries[0].spec.schema_path == "hand.yaml"
    assert entries[1].spec.checkpoint == "hf://o/r/dir/b.pth" and entries[1].spec.schema_path is None
    assert entries[2].spec.checkpoint is None and entries[2].spec.device == "cpu"
    # a bare schema is every checkpoint's, not the preview's (COCO); alone it is the preview's, as before
    shared = model_catalog(ModelSpec(), "/w/a.pth", "s.yaml", True)
    assert [e.spec.schema_path for e in shared] == ["s.yaml", None]
    assert model_catalog(ModelSpec(random_weights=True), None, "s.yaml", True)[0].spec.schema_path == "s.yaml"


def test_flags_and_environment_take_the_same_list():
    flags = load_settings(["--checkpoint", "a=/w/a.pth", "--checkpoint", "/w/b.pth", "--no-pretrained"], environ={})
    env = load_settings([], environ={"RFDETR_DEMO_CHECKPOINT": "a=/w/a.pth,/w/b.pth", "RFDETR_DEMO_PRETRAINED": "0"})
    assert flags == env and [e.name for e in flags.model_catalog()] == ["a", "b.pth"]
    assert flags.model_catalog()[0].spec.checkpoint == "/w/a.pth" and flags.max_loaded_models == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint", "/w/a.pth", "--checkpoint", "/v/a.pth"], "two models are named 'a.pth'"),
        (["--checkpoint", "x=/w/a.pth", "--keypoint-schema", "y=s.yaml"], "names 'y', which is none"),
        (["--no-pretrained"], "needs at least one --checkpoint"),
        (["--checkpoint", "bad name!=/w/a.pth"], "model name 'bad name!'"),
        (["--max-loaded-models", "0"], "at least 1"),
    ],
)
def test_bad_model_options_fail_at_start(argv, message):
    with pytest.raises(ValueError, match=message):
        load_settings(argv, environ={})


def _people(n: int, k: int = 17, dx: float = 0.0) -> sv.KeyPoints:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (n, k, 2)).astype(np.float32) + np.arange(n)[:, None, None] * 300
    kp = sv.KeyPoints(
        xy=xy + np.float32(dx),
        keypoint_confidence=np.full((n, k), 0.9, np.float32),
        detection_confidence=np.linspace(0.9, 0.6, n).astype(np.float32),
        class_id=np.zeros(n, int),
        data={"class_name": np.array(["person"] * n, dtype=object)},
    )
    return normalize(kp, k)


def _loader(name: str, loads: list[str], gate: threading.Event | None = None):
    def load():
        loads.append(name)
        if gate is not None:
            assert gate.wait(30)
        return ReplayPredictor(lambda img: _people(1)), KeypointSchema.coco(), replay_info()

    return load


def test_least_recently_used_model_is_unloaded_and_reloads_on_its_next_request():
    loads: list[str] = []
    registry = ModelRegistry([(n, _loader(n, loads)) for n in ("a", "b", "c")], max_loaded=2)
    image = np.zeros((32, 32, 3), np.uint8)
    assert [r.state for r in registry.rows()] == ["not loaded"] * 3
    for name in ("a", "b", "a", "c"):  # b is now the least recently used of the two loaded
        pred = registry.service(name).predict(image)
        assert pred.model_info.name == name  # the registry's label travels with every result
    assert sorted(registry.loaded()) == ["a", "c"] and loads == ["a", "b", "c"]
    rows = {r.name: r for r in registry.rows()}
    assert rows["b"].state == "not loaded" and rows["b"].num_keypoints == 17  # facts kept after the unload
    registry.service("b").predict(image)
    assert loads == ["a", "b", "c", "b"] and sorted(registry.loaded()) == ["b", "c"]
    with pytest.raises(ValueError, match="unknown model 'zz'; choose one of: a, b, c"):
        registry.service("zz")


def test_a_model_being_loaded_never_blocks_a_loaded_one():
    loads: list[str] = []
    gate = threading.Event()
    registry = ModelRegistry([("fast", _loader("fast", loads)), ("slow", _loader("slow", loads, gate))], 2)
    image = np.zeros((16, 16, 3), np.uint8)
    registry.service("fast").predict(image)
    slow = registry.service("slow")  # starts loading in the background and stays there until the gate opens
    with pytest.raises(ModelUnavailable, match="still loading"):
        slow.predict_batch([image], timeout=0.2)
    t0 = time.perf_counter()
    for _ in range(5):
        registry.service("fast").predict(image)
    assert time.perf_counter() - t0 < 5 and registry.peek("slow").status().state == "loading"
    assert {r.name: r.state for r in registry.rows()} == {"fast": "ready", "slow": "loading"}
    gate.set()
    assert slow.predict(image).model_info.name == "slow"


def test_the_bound_holds_while_a_model_loads():
    """At most one model in memory: a second load waits for the first to finish, then unloads it, then reads."""
    loads: list[str] = []
    gate = threading.Event()
    reading = [0]  # loaders running now
    seen: list[int] = []
    stop = threading.Event()

    def counted(name: str, wait: threading.Event | None = None):
        inner = _loader(name, loads, wait)

        def load():
            reading[0] += 1
            try:
                return inner()
            finally:
                reading[0] -= 1

        return load

    registry = ModelRegistry([("a", counted("a", gate)), ("b", counted("b"))], max_loaded=1)

    def sample() -> None:  # weights in memory or being read, every 2 ms
        while not stop.is_set():
            seen.append(reading[0] + len(registry.loaded()))
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    image = np.zeros((16, 16, 3), np.uint8)
    registry.service("a")  # loading, held at the gate
    b = registry.service("b")
    time.sleep(0.5)
    assert loads == ["a"] and registry.holding() == ["a"]  # b's load has not started reading
    assert {r.name: r.state for r in registry.rows()} == {"a": "loading", "b": "loading"}
    gate.set()
    assert b.predict(image).model_info.name == "b"
    stop.set()
    sampler.join(5)
    assert loads == ["a", "b"] and registry.loaded() == ["b"] and registry.holding() == ["b"]
    assert len(seen) > 50 and max(seen) == 1  # never two models' weights at once
    assert registry.peek("a").status().state == "idle"  # a made room only once it had finished loading


def test_default_resolution_is_listed_before_the_first_load():
    asked: list[str] = []

    def planned(name: str) -> int:
        asked.append(name)
        return {"a": 384, "b": 576}[name]

    loads: list[str] = []
    registry = ModelRegistry([(n, _loader(n, loads)) for n in "ab"], 2, planned_resolution=planned)
    rows = {r.name: r for r in registry.rows()}
    assert (rows["a"].default_resolution, rows["b"].default_resolution) == (384, 576) and loads == []
    registry.rows()
    assert asked == ["a", "b"]  # read once per model
    registry.service("a").wait(10)
    assert registry.rows()[0].default_resolution == replay_info().default_resolution  # the loaded model's own


def test_models_share_one_inference_lock_per_device():
    active, overlaps = [0], []
    lock = threading.Lock()

    def predict(img):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return _people(1)

    def loader():
        return ReplayPredictor(predict), KeypointSchema.coco(), replay_info()

    registry = ModelRegistry([("a", loader), ("b", loader)], 2)
    image = np.zeros((16, 16, 3), np.uint8)
    threads = [threading.Thread(target=registry.service(n).predict, args=(image,)) for n in "abababab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(overlaps) == 8 and max(overlaps) == 1


def test_diff_matches_people_by_oks_and_measures_the_joint_shift():
    coco = KeypointSchema.coco()
    a = _people(3)
    same = diff("A", a, coco, "B", _people(3), coco)
    assert len(same.pairs) == 3 and same.mean_shift_px == 0.0 and all(p.oks == pytest.approx(1.0) for p in same.pairs)
    shifted = diff("A", a, coco, "B", _people(2, dx=3.0)[::-1], coco)  # B finds two people, listed the other way
    assert [(p.a, p.b) for p in shifted.pairs] == [(0, 1), (1, 0)]
    assert shifted.mean_shift_px == pytest.approx(np.hypot(3.0, 3.0), abs=1e-4)
    assert "**A** found 3 · **B** found 2 · **2** pairs matched by OKS" in shifted.line()
    assert "mean joint shift **4.2 px**" in shifted.line()
    far = match(a, _people(3, dx=80.0), sigmas_for(coco))
    assert far == []  # 80 px on a ~100 px person is no match at OKS ≥ MATCH_OKS
    assert MATCH_OKS == 0.5


def test_diff_of_different_schemas_says_so_and_matches_nothing():
    hand = KeypointSchema.generic(5)
    d = diff("body", _people(2), KeypointSchema.coco(), "hand", _people(1, k=5), hand)
    assert d.pairs == () and not d.same_schema
    assert d.line() == (
        "**body** found 2 · **hand** found 1 · the keypoint schemas differ, so people are not matched joint by joint"
    )
    assert sigmas_for(hand).shape == (5,)
