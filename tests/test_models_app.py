"""Several checkpoints in one app, end to end: /models, ``model=`` on every endpoint, compare, LRU and reload.

Three seeded random-weight checkpoints saved in rfdetr's format (two K=17 that differ, one K=5), served at 192²
with at most two in memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from rfdetr_demo.config import Settings
from tests.conftest import REPO
from tests.helpers import free_port
from tests.support.checkpoints import write_seeded_checkpoint

pytestmark = pytest.mark.model

RES = 192


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "body_a": write_seeded_checkpoint(root / "a.pth", seed=1, resolution=RES),
        "body_b": write_seeded_checkpoint(root / "b.pth", seed=2, resolution=RES),
        "hand": write_seeded_checkpoint(root / "hand5.pth", seed=3, num_keypoints=5, resolution=RES),
    }


def models_settings(checkpoints: dict[str, Path], schema: Path | None = None) -> Settings:
    entries = ",".join(f"{name}={path}" for name, path in checkpoints.items())
    return Settings(
        checkpoint=entries, pretrained=False, max_loaded_models=2, resolution=RES, device="cpu", engine="torch",
        keypoint_schema=f"hand={schema}" if schema else None, port=free_port(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def hand_schema(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "hand.json"
    path.write_text('{"keypoints": ["wrist", "thumb", "index", "middle", "ring"], "skeleton": [[0, 1], [0, 2]]}')
    return path


@pytest.fixture(scope="module")
def served(checkpoints, hand_schema):
    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs, model_registry

    settings = models_settings(checkpoints, hand_schema)
    demo = create_app(settings)
    configure_queue(demo, settings)
    kwargs = {k: v for k, v in launch_kwargs(settings).items() if k != "share"}
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    registry = model_registry(settings)
    registry.peek().wait(300)
    try:
        yield f"http://127.0.0.1:{settings.port}/", registry
    finally:
        demo.close()


def test_models_endpoint_and_model_on_every_endpoint_with_lru_reload(served, coco_image_paths, coco_json, video_dir):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, registry = served
    client = Client(url, verbose=False)
    listed = client.predict(api_name="/models")
    assert [m["name"] for m in listed] == ["body_a", "body_b", "hand"]
    assert listed[0]["status"] == "ready" and listed[0]["num_keypoints"] == 17 and listed[0]["default_resolution"]
    assert listed[1]["status"] == listed[2]["status"] == "not loaded" and listed[2]["num_keypoints"] is None
    photo = handle_file(str(coco_image_paths[196141]))

    outputs = client.predict(image=photo, threshold=0.0, model="body_b", api_name="/predict_image")
    result = outputs[3]
    assert sorted(Path(f).name for f in outputs[4])[0] == "000000196141_body_b.csv"  # downloads carry the model
    assert result["model"]["name"] == "body_b" and len(result["keypoint_names"]) == 17 and result["instances"]
    default = client.predict(image=photo, threshold=0.0, api_name="/predict_image")[3]
    assert default["model"]["name"] == "body_a"  # no model given: the first
    assert default["instances"][0]["keypoints"] != result["instances"][0]["keypoints"]  # two different models

    # hand is the third model: the least recently used (body_b, then body_a was used after it) goes
    _image, frame, _timing = client.predict(
        photo, 0.0, 0.0, RES, ["Combined"], False, "hand", api_name="/predict_frame"
    )
    assert frame["model"]["name"] == "hand" and frame["keypoint_names"] == ["wrist", "thumb", "index", "middle", "ring"]
    states = {m["name"]: m["status"] for m in client.predict(api_name="/models")}
    assert states == {"body_a": "ready", "body_b": "not loaded", "hand": "ready"}
    assert registry.loads["body_b"] == 1

    clip = handle_file(str(sorted(video_dir.glob("*.mp4"))[0]))
    video, _summary, _frames, files = client.predict(
        video=clip, threshold=0.0, resolution=RES, end=0.2, smoothing="off", model="body_b", api_name="/predict_video"
    )
    assert Path(video).stat().st_size > 0 and '"persons"' in Path(files[1]).read_text()[:2000]
    assert registry.loads["body_b"] == 2  # reloaded on its next request ...
    assert sorted(registry.loaded()) == ["body_b", "hand"]  # ... and body_a, now least recent, made room

    _summary, metrics, *_ = client.predict(
        annotations=handle_file(str(coco_json)), images=[handle_file(str(p)) for p in coco_image_paths.values()],
        threshold=0.0, resolution=RES, model=["body_a", "body_b"], api_name="/evaluate",
    )  # fmt: skip
    assert [row[0] for row in metrics["data"]] == ["body_a", "body_b"]  # one row each, same labels
    with pytest.raises(AppError, match="predicts 5 keypoints but"):
        client.predict(annotations=handle_file(str(coco_json)), images=[photo], model=["hand"], api_name="/evaluate")
    with pytest.raises(AppError, match="nope is not in the list of choices"):  # Gradio's own check of the picker
        client.predict(image=photo, model="nope", api_name="/predict_image")
    with pytest.raises(AppError, match="unknown model 'nope'; choose one of: body_a, body_b, hand"):
        client.predict(photo, 0.5, 0.3, RES, ["Combined"], False, "nope", api_name="/predict_frame")


def test_compare_two_schemas_side_by_side(served, coco_image_paths):
    from gradio_client import Client, handle_file

    url, _registry = served
    client = Client(url, verbose=False)
    views, persons_a, persons_b, line, diff, files = client.predict(
        image=handle_file(str(coco_image_paths[196141])), threshold=0.0, views=["Skeleton", "Labels"],
        model="body_a", other_model="hand", api_name="/compare_image",
    )  # fmt: skip
    assert [v["caption"] for v in views] == [
        "A · body_a · Skeleton", "B · hand · Skeleton", "A · body_a · Labels", "B · hand · Labels",
    ]  # fmt: skip
    assert len(persons_a["data"]) == diff["people"][0] > 0 and len(persons_b["data"]) == diff["people"][1] > 0
    assert diff["same_schema"] is False and "schemas differ" in line
    names = sorted(Path(f).name for f in files)
    assert names == sorted(
        f"000000196141_{m}{suffix}" for m in ("body_a", "hand") for suffix in (".csv", ".json", "_coco_results.json")
    )
    hand_csv = next(Path(f) for f in files if f.endswith("_hand.csv")).read_text()
    assert "thumb" in hand_csv and "left_knee" not in hand_csv  # tabulated with its own schema
    same = client.predict(
        image=handle_file(str(coco_image_paths[196141])), threshold=0.0, keypoint_threshold=0.0, model="body_a",
        other_model="body_a", api_name="/compare_image",
    )  # fmt: skip
    # the same model twice: each person with a joint shown matches itself (OKS 1, no shift)
    table = same[1]
    with_joints = sum(row[table["headers"].index("visible_keypoints")] > 0 for row in table["data"])
    assert same[4]["same_schema"] and len(same[4]["pairs"]) == with_joints > 0 and same[4]["mean_shift_px"] == 0
    assert all(p["a"] == p["b"] and p["oks"] == 1.0 for p in same[4]["pairs"])


def _pick(page, elem_id: str, name: str) -> None:
    """Choose ``name`` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=name, exact=True).click()


@pytest.mark.browser
def test_compare_view_and_diff_in_chromium(browser, served, coco_image_paths):
    from playwright.sync_api import expect

    url, _registry = served
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    try:
        page.goto(url)
        expect(page.locator("#models-status")).to_contain_text("body_a", timeout=60_000)
        page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[196141]))
        expect(page.locator("#image-summary")).to_contain_text("instance", timeout=120_000)
        page.get_by_text("Compare with…").click()
        _pick(page, "compare-model", "hand")
        page.locator("#run-compare").click()
        diff_line = page.locator("#compare-diff")
        expect(diff_line).to_contain_text("the keypoint schemas differ", timeout=120_000)
        expect(diff_line).to_contain_text("body_a found")
        captions = page.locator("#compare-gallery .caption-label, #compare-gallery figcaption")
        expect(captions.first).to_be_visible(timeout=30_000)
        texts = captions.all_inner_texts()
        assert texts[:2] == ["A · body_a · Combined", "B · hand · Combined"] and len(texts) % 2 == 0
        assert page.locator("#compare-persons-a tbody tr").count() > 0
        assert page.locator("#compare-persons-b tbody tr").count() > 0
    finally:
        page.close()


def _start_app(checkpoints: dict[str, Path], port: int, share_dir: Path, log: Path) -> subprocess.Popen:
    """``python app.py`` in a process of its own (its own temp dir, as in production) with two models."""
    args = [
        sys.executable, str(REPO / "app.py"), "--checkpoint", f"body_a={checkpoints['body_a']}",
        "--checkpoint", f"body_b={checkpoints['body_b']}", "--no-pretrained", "--resolution", str(RES),
        "--device", "cpu", "--engine", "torch", "--port", str(port), "--share-dir", str(share_dir),
        "--browser-engine", "off", "--cache-examples", "off",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"} | {"OMP_NUM_THREADS": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5):
                return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError(f"the app did not start:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def _table(page) -> list[str]:
    """The persons table's rows as text (the rows of a Gradio table are not all "visible" to Playwright)."""
    rows = page.locator("#persons-table tbody tr")
    rows.first.wait_for(state="attached", timeout=60_000)
    return rows.evaluate_all("rows => rows.map((r) => r.textContent.trim())")


@pytest.mark.browser
def test_a_shared_link_reopens_the_same_result_after_a_restart(browser, checkpoints, coco_image_paths, tmp_path):
    from playwright.sync_api import expect

    port, shares, log = free_port(), tmp_path / "shares", tmp_path / "app.log"
    url = f"http://127.0.0.1:{port}/"
    app = _start_app(checkpoints, port, shares, log)
    try:
        first = browser.new_context(viewport={"width": 1400, "height": 1400})
        page = first.new_page()
        page.goto(url)
        page.locator("#input-image input[type=file]").set_input_files(str(coco_image_paths[785]))
        summary = page.locator("#image-summary")
        expect(summary).to_contain_text("instance", timeout=180_000)
        before = summary.inner_text()
        _pick(page, "image-model", "body_b")  # another model: the photo runs through it
        expect(summary).not_to_have_text(before, timeout=180_000)
        expect(summary).to_contain_text("instance", timeout=180_000)
        page.locator("#image-inputs").get_by_label("Labels", exact=True).uncheck()  # a setting: 3 views, not 4
        expect(page.locator("#views-gallery img")).to_have_count(3, timeout=60_000)
        keypoint_box = page.locator("#image-inputs input[type=number]").nth(1)
        keypoint_box.fill("0.45")
        keypoint_box.blur()  # the slider's release: a redraw
        expect(summary).to_contain_text("keypoints ≥ 0.45", timeout=60_000)  # redrawn with it
        rows = _table(page)
        assert rows and rows[0]
        page.locator("#share-button").click()
        link_box = page.locator("#share-link textarea, #share-link input").first
        expect(link_box).to_have_value(re.compile(r"share="), timeout=30_000)
        link = link_box.input_value()
        first.close()
    finally:
        _stop(app)  # a restart: the next process knows only the share folder
    assert link.startswith(f"{url}?share=") and len(list((shares / "photos").iterdir())) == 1
    app = _start_app(checkpoints, port, shares, log)
    try:
        fresh = browser.new_context(viewport={"width": 1400, "height": 1400})  # no cookies, no session of the first
        again = fresh.new_page()
        again.goto(link)
        expect(again.locator("#views-gallery img")).to_have_count(3, timeout=240_000)
        expect(again.locator("#image-model input")).to_have_value("body_b")
        assert _table(again) == rows  # the same model, settings and photo: the same persons, scores and joints
        expect(again.locator("#image-summary")).to_contain_text("keypoints ≥ 0.45")
        assert not again.locator("#image-inputs").get_by_label("Labels", exact=True).is_checked()
        assert again.locator("#image-inputs input[type=number]").nth(1).input_value() == "0.45"
        image = again.locator("#input-image img")
        expect(image).to_be_visible()
        assert again.evaluate("(img) => img.naturalWidth", image.element_handle()) == 640
        stored = next((shares / "photos").iterdir())  # the share folder itself is never served
        with pytest.raises(urllib.error.HTTPError, match=r"403|404"):
            urllib.request.urlopen(f"{url}gradio_api/file={stored}", timeout=30)
        again.goto(f"{url}?share={'A' * 22}")
        expect(again.locator("#image-summary")).to_contain_text("expired or does not exist", timeout=60_000)
        fresh.close()
    finally:
        _stop(app)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_default_resolution_is_known_before_the_weights_are_read(checkpoints):
    from rfdetr_demo.app_factory import model_registry

    # No --resolution: the listing must say what loading will give (rfdetr's class default), without loading.
    settings = Settings(checkpoint=f"plain={checkpoints['body_a']}", pretrained=False, device="cpu", engine="torch")
    registry = model_registry(settings)
    before = _rss_mb()
    row = registry.rows()[0]
    grown = _rss_mb() - before
    assert row.state == "not loaded" and registry.loads == {} and row.default_resolution == 576
    assert grown < 30, f"listing grew RSS by {grown:.0f} MB (the weights are ~160 MB)"
    service = registry.service("plain")
    assert service.wait(300)[2].default_resolution == row.default_resolution  # what the load gave
    service.unload()


def test_browser_engine_serves_the_picked_model(served, tmp_path):
    import time

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rfdetr_demo.live.browser_engine import BrowserEngine
    from rfdetr_demo.models.backends.cache import ExportCache
    from rfdetr_demo.ui.browser_panel import browser_routes

    _url, registry = served
    engine = BrowserEngine(registry.peek(), ExportCache(tmp_path), registry=registry)
    client = TestClient(FastAPI(routes=browser_routes(engine)))
    bad = client.get(f"/browser-engine/manifest?resolution={RES}&model=nope")
    assert bad.status_code == 400 and "choose one of: body_a, body_b, hand" in bad.text
    deadline = time.monotonic() + 400
    while True:  # the page's loop: the model loads, then its export runs
        body = client.get(f"/browser-engine/manifest?resolution={RES}&model=hand").json()
        if body["state"] not in {"waiting", "preparing"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body["state"] == "ready", body
    assert body["model"]["info"]["name"] == "hand" and body["decode"]["num_keypoints_per_class"] == [5]
    assert body["schema"]["names"] == ["wrist", "thumb", "index", "middle", "ring"]
    part = client.get(body["model"]["url"], headers={"Range": "bytes=0-15"})
    assert part.status_code == 206 and len(part.content) == 16
