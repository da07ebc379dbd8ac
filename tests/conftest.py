"""Shared fixtures: real data from ../shared/data, a replay (ground-truth) model service, the random-weight model."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

# Each test run gets its own Gradio temp dir, as each served app does (disk_budget.use_own_temp_dir): runs that share
# /tmp/gradio prune and age each other's files (Gradio stores identical content once, under one path). Set before
# gradio is imported: route_utils reads it at import time.
if not os.environ.get("GRADIO_TEMP_DIR"):
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="rfdetr-demo-tests-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)

import pytest

from rfdetr_demo.models.service import ModelService
from rfdetr_demo.results.prediction import ModelInfo
from rfdetr_demo.results.schema import KeypointSchema
from tests.support.replay import ReplayPredictor, load_coco_truth

pytest_plugins = ["tests.support.ci_rules"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RFDETR_DEMO_TEST_DATA") or REPO / ".." / "shared" / "data").resolve()
COCO_DIR = SHARED_DATA / "coco"
COCO_JSON = COCO_DIR / "test_coco.json"
VIDEO_DIR = SHARED_DATA / "video"


_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host, *args, **kwargs):
    """Tests never use the network: any name other than loopback fails to resolve, as it would offline."""
    if host not in _LOCAL_HOSTS and not str(host).startswith("127."):
        raise socket.gaierror(socket.EAI_NONAME, f"network disabled in tests (tried to resolve {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    socket.getaddrinfo = _loopback_only_getaddrinfo
    yield
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True, scope="session")
def _private_engine_cache(tmp_path_factory):
    """Exports made by tests go to a temporary folder, never into the user's ~/.cache (~135 MB each)."""
    from rfdetr_demo.models.backends.cache import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("engine-cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real test data missing: {path} (expected ../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def coco_json() -> Path:
    return _require(COCO_JSON)


@pytest.fixture(scope="session")
def coco_truth(coco_json: Path):
    return load_coco_truth(coco_json)


@pytest.fixture(scope="session")
def coco_image_paths(coco_truth) -> dict[int, Path]:
    return {image_id: _require(COCO_DIR / t.file_name) for image_id, t in coco_truth.items()}


@pytest.fixture(scope="session")
def video_dir() -> Path:
    return _require(VIDEO_DIR)


def replay_info(resolution: int = 576) -> ModelInfo:
    return ModelInfo(
        name="replay",
        source="COCO ground truth (replay)",
        device="cpu",
        precision="fp32",
        default_resolution=resolution,
        num_keypoints=17,
        class_names=["person"],
    )


def make_replay_service(predictor: ReplayPredictor) -> ModelService:
    """A ModelService whose 'model' replays ground truth: the real service code around an oracle."""
    service = ModelService(lambda: (predictor, KeypointSchema.coco(), replay_info()))
    service.start()
    service.wait(30)
    return service


@pytest.fixture()
def replay_predictor(coco_json: Path) -> ReplayPredictor:
    return ReplayPredictor.from_coco(coco_json)


@pytest.fixture()
def replay_service(replay_predictor: ReplayPredictor) -> ModelService:
    return make_replay_service(replay_predictor)


@pytest.fixture(scope="session")
def random_model_service() -> ModelService:
    """The real RFDETRKeypointPreview with random weights (no download), default resolution 288 for speed."""
    from rfdetr_demo.models.loading import ModelSpec, load_rfdetr

    spec = ModelSpec(random_weights=True, device="cpu", resolution=288)
    service = ModelService(lambda: load_rfdetr(spec))
    service.start()
    service.wait(300)
    return service


@pytest.fixture(scope="session")
def playwright_session():
    """One Playwright driver for the whole run (a second sync driver cannot start while one is open).

    Skipped with a reason when Debian's Chromium is not installed (a failure under ``CI=true``).
    """
    from tests.helpers import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found (CHROMIUM_PATH, chromium on PATH, {CHROMIUM}): apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_session):
    """Headless Debian Chromium with the project's standard flags."""
    from tests.helpers import CHROMIUM, CHROMIUM_ARGS

    b = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()
