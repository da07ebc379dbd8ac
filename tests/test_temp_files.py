"""Temp files: the app's own temp dir, Gradio ages its files, our pruner keeps the size budget and spares examples."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from gradio.route_utils import delete_files_created_by_app

from rfdetr_demo import disk
from rfdetr_demo.disk import REQUEST_DIR_NAME, DiskBudget, use_own_temp_dir
from tests.helpers import free_port


def _unit(root: Path, name: str, size: int, age_s: float) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "data.bin").write_bytes(b"\0" * size)
    old = time.time() - age_s
    os.utime(folder / "data.bin", (old, old))
    os.utime(folder, (old, old))
    return folder


def test_age_is_gradios_for_its_files_and_ours_for_request_folders(tmp_path: Path) -> None:
    gradio_file = _unit(tmp_path, "a" * 40, 100, 7200)  # Gradio's upload, two hours old: Gradio's delete_cache
    ours = _unit(tmp_path / REQUEST_DIR_NAME, "video_1", 100, 7200)
    report = DiskBudget(max_bytes=10**6, max_age_s=3600, grace_s=0, root=lambda: tmp_path).prune()
    assert report.removed == 1 and not ours.exists() and gradio_file.exists()


def test_protected_files_are_never_pruned_over_budget(tmp_path: Path) -> None:
    example = _unit(tmp_path, "b" * 40, 5000, 600)
    upload = _unit(tmp_path, "c" * 40, 5000, 500)
    budget = DiskBudget(max_bytes=1000, grace_s=0, root=lambda: tmp_path)
    files: list[str] | None = [str(example / "data.bin")]
    after: list[int] = []
    budget.protect(lambda: files, lambda: after.append(1) or True)
    report = budget.prune()
    assert example.exists() and not upload.exists() and report.kept_in_use == 1 and after == [1]
    files = None  # the page is gone: the protection goes with it
    budget.prune()
    assert not example.exists()


def test_own_temp_dir_unless_one_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    own = use_own_temp_dir()
    try:
        assert own.is_dir() and own.name.startswith("rfdetr-demo-gradio-") and own != Path("/tmp/gradio")
        assert os.environ["GRADIO_TEMP_DIR"] == str(own)
    finally:
        own.rmdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    assert use_own_temp_dir() == tmp_path


@pytest.fixture()
def served(coco_json, tmp_path, monkeypatch):
    """The app on its own temp dir, with a tiny disk budget and no grace period."""
    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs
    from rfdetr_demo.config import Settings
    from tests.conftest import make_replay_service
    from tests.support.replay import ReplayPredictor

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    settings = replace(Settings(), port=free_port(), max_temp_gb=1e-6, download_grace_s=0.0)
    demo = create_app(settings, service=make_replay_service(ReplayPredictor.from_coco(coco_json)))
    configure_queue(demo, settings)
    demo.launch(
        prevent_thread_lock=True, quiet=True, **{k: v for k, v in launch_kwargs(settings).items() if k != "share"}
    )
    try:
        yield demo, f"http://127.0.0.1:{settings.port}/"
    finally:
        demo.close()
        disk.BUDGET.configure(max_bytes=int(disk.DEFAULT_MAX_TEMP_GB * disk.GB), grace_s=300.0)


def _example_urls(url: str) -> list[str]:
    config = httpx.get(url + "config", timeout=30).json()
    samples = [c["props"]["samples"] for c in config["components"] if c.get("type") == "dataset"]
    return [cell["url"] for rows in samples for row in rows for cell in row if isinstance(cell, dict)]


def _statuses(urls: list[str]) -> list[int]:
    return [httpx.get(u, timeout=30).status_code for u in urls]


def test_examples_are_still_served_after_an_over_budget_prune_and_the_age_limit(served, tmp_path) -> None:
    demo, url = served
    root = tmp_path / "gradio"
    examples = _example_urls(url)
    assert len(examples) >= 2 and _statuses(examples) == [200] * len(examples)
    assert all(str(root) in u for u in examples)  # the app's own temp dir, not the shared /tmp/gradio
    # A visitor's upload and a request folder push the total over the (tiny) budget.
    upload = _unit(root, "d" * 64, 50_000, 10)
    demo.upload_file_set.add(str(upload / "data.bin"))
    request = _unit(root / REQUEST_DIR_NAME, "image_x", 50_000, 10)
    report = disk.BUDGET.prune()
    assert not upload.exists() and not request.exists() and report.removed >= 2
    assert str(upload / "data.bin") not in demo.upload_file_set  # Gradio's record of it went with it
    assert _statuses(examples) == [200] * len(examples)
    # The age limit: Gradio's own pruner with every file past its age, then ours.
    delete_files_created_by_app(demo, age=0)
    disk.BUDGET.prune()
    assert _statuses(examples) == [200] * len(examples)
