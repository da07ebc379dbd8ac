"""The pieces of ``bench/bench_load.py``: the app as a subprocess, its RSS and temp disk, and one function per phase."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COCO = REPO.parent / "shared" / "data" / "coco"
VIEWS = ["Combined"]


# -- the server ----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


class Server:
    """``python app.py --random-weights`` on a free loopback port with a private Gradio temp dir."""

    def __init__(self, work: Path, flags: list[str]) -> None:
        self.work, self.flags = work, flags
        self.temp_dir = work / "gradio_tmp"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GRADIO_TEMP_DIR": str(self.temp_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
        cmd = [sys.executable, "app.py", "--random-weights", "--port", str(self.port), "--cache-examples", "off"]
        self.log = (self.work / "server.log").open("w")
        self.proc = subprocess.Popen([*cmd, *self.flags], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()
        self.image(COCO_IMAGES()[0], 288)  # loads the model and warms the image path
        return self

    def _wait_ready(self, timeout_s: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the app exited (see {self.work / 'server.log'})")
            try:
                if httpx.get(self.url + "gradio_api/info", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise TimeoutError("the app did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError("no VmRSS")

    def client(self) -> Any:
        from gradio_client import Client

        return Client(self.url, verbose=False, download_files=False)

    def image(self, path: Path, resolution: int, client: Any = None) -> float:
        """One ``/predict_image`` call (a fresh session unless ``client`` is given); returns its latency."""
        from gradio_client import handle_file

        client = client or self.client()
        t0 = time.perf_counter()
        client.predict(handle_file(str(path)), 0.1, 0.3, resolution, VIEWS, api_name="/predict_image")
        return time.perf_counter() - t0

    def video(self, path: Path, resolution: int, client: Any = None) -> float:
        from gradio_client import handle_file

        client = client or self.client()
        t0 = time.perf_counter()
        client.predict(
            handle_file(str(path)), 0.1, 0.3, resolution, VIEWS, "combined", 1, 0, 0, True, "off",
            api_name="/predict_video",
        )  # fmt: skip
        return time.perf_counter() - t0


class PeakRSS:
    """Samples the server's RSS every 0.2 s in a thread; ``peak`` is the highest seen."""

    def __init__(self, server: Server) -> None:
        self.server, self.peak, self._stop = server, server.rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.server.rss_mb())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- inputs --------------------------------------------------------------------------------------------------------
def COCO_IMAGES() -> list[Path]:
    return sorted(COCO.glob("*.jpg"))


def distinct_images(folder: Path, n: int) -> list[Path]:
    """``n`` different photos (a COCO image with a random patch each): Gradio stores uploads and returned images by
    content hash, so repeating one file would never fill the disk."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sources = [np.asarray(Image.open(p).convert("RGB")) for p in COCO_IMAGES()]
    out = []
    for i in range(n):
        rgb = sources[i % len(sources)].copy()
        y, x = rng.integers(0, 200, size=2)
        rgb[y : y + 40, x : x + 40] = rng.integers(0, 255, size=3, dtype=np.uint8)
        out.append(folder / f"photo_{i:03d}.jpg")
        Image.fromarray(rgb).save(out[-1], quality=90)
    return out


def make_inputs(work: Path) -> dict[str, Path]:
    """A 4000×3000 phone-size JPEG (a COCO photo scaled up), and a 5-frame and a 60-frame clip."""
    from PIL import Image

    from bench.bench_video import make_clip

    big = work / "phone_4000x3000.jpg"
    Image.open(COCO_IMAGES()[0]).convert("RGB").resize((4000, 3000)).save(big, quality=90)
    return {
        "big": big,
        "short_video": REPO.parent / "shared" / "data" / "video" / "dance_960x540_5f.mp4",
        "long_video": make_clip(work / "long_60f.mp4", 60),
    }


# -- phases --------------------------------------------------------------------------------------------------------
def sessions_phase(server: Server, inputs: dict[str, Path], n: int, resolution: int) -> dict[str, Any]:
    """(a) RSS growth per fresh session, each sending one 4000×3000 JPEG, once they are all done."""
    for _ in range(2):  # warm the decode path and the allocator at this image size
        server.image(inputs["big"], resolution)
    time.sleep(1.0)
    before = server.rss_mb()
    t0 = time.perf_counter()
    latencies, series = [], []
    with PeakRSS(server) as peak:
        for _ in range(n):
            latencies.append(server.image(inputs["big"], resolution))
            series.append(server.rss_mb())
    time.sleep(2.0)
    after = server.rss_mb()
    half = n // 2
    return {
        "sessions": n,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "growth_per_session_mb": round((after - before) / n, 2),
        "growth_per_session_second_half_mb": round((series[-1] - series[half - 1]) / (n - half), 2),
        "rss_series_mb": [round(x) for x in series],
        "peak_active_over_before_mb": round(peak.peak - before, 1),
        "median_latency_s": round(statistics.median(latencies), 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def steady_phase(server: Server, inputs: dict[str, Path], clients: int, requests: int, res: int) -> dict[str, Any]:
    """(b) ``clients`` concurrent sessions × ``requests`` calls: failures and RSS growth after warm-up."""
    images = COCO_IMAGES()
    warm_after = clients * min(5, max(1, requests // 5))
    lock, done, failures, latencies, marks = threading.Lock(), [0], [], [], {}

    def one_client(i: int) -> None:
        client = server.client()
        for j in range(requests):
            try:
                latencies.append(server.image(images[(i + j) % len(images)], res, client))
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                failures.append(f"{exc.__class__.__name__}: {exc}"[:200])
            with lock:
                done[0] += 1
                if done[0] == warm_after:
                    marks["warm_rss_mb"] = server.rss_mb()

    t0 = time.perf_counter()
    with PeakRSS(server) as peak, ThreadPoolExecutor(clients) as pool:
        list(pool.map(one_client, range(clients)))
    time.sleep(1.0)
    end = server.rss_mb()
    warm = marks.get("warm_rss_mb", end)
    return {
        "clients": clients,
        "requests": clients * requests,
        "failures": len(failures),
        "failure_examples": sorted(set(failures))[:3],
        "warm_after_requests": warm_after,
        "rss_after_warmup_mb": round(warm, 1),
        "rss_end_mb": round(end, 1),
        "rss_peak_mb": round(peak.peak, 1),
        "growth_after_warmup_pct": round(100.0 * (end - warm) / warm, 2),
        "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def make_large_pngs(work: Path) -> dict[str, Path]:
    """Small files that decode huge: 15000×15000 16-bit gray and RGB PNGs, and a 14000×14000 RGB PNG (196 MP)."""
    import numpy as np
    from PIL import Image

    out = {}
    for name, shape, dtype in (
        ("gray16_15000", (15000, 15000), np.uint16),
        ("rgb_15000", (15000, 15000, 3), np.uint8),
        ("rgb_14000", (14000, 14000, 3), np.uint8),
    ):
        arr = np.zeros(shape, dtype)
        arr[::97] = np.iinfo(dtype).max // 2  # a few stripes, so the file is not all one value
        out[name] = work / f"{name}.png"
        Image.fromarray(arr).save(out[name], compress_level=1)
        del arr
    return out


def decode_phase(server: Server, work: Path, resolution: int) -> dict[str, Any]:
    """(e) the server's RSS peak while it decodes (or refuses) each large PNG, and what the visitor is told."""
    results = {}
    for name, path in make_large_pngs(work).items():
        time.sleep(1.0)
        before = server.rss_mb()
        t0 = time.perf_counter()
        with PeakRSS(server) as peak:
            try:
                server.image(path, resolution)
                answer = "accepted"
            except Exception as exc:  # noqa: BLE001 - a refusal is the expected answer for some
                answer = f"refused: {str(exc)[:160]}"
        results[name] = {
            "file_kb": round(path.stat().st_size / 1024),
            "answer": answer,
            "peak_over_before_mb": round(peak.peak - before, 1),
            "after_minus_before_mb": round(server.rss_mb() - before, 1),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    return results


def _fn_index(server: Server, api_name: str) -> int:
    import httpx

    config = httpx.get(server.url + "config", timeout=30).json()
    for index, dep in enumerate(config["dependencies"]):
        if dep.get("api_name") == api_name:
            return dep.get("id", index)
    raise KeyError(api_name)


def flood_phase(server: Server, inputs: dict[str, Path], n: int, resolution: int) -> dict[str, Any]:
    """(c) ``n`` simultaneous ``queue/join`` posts (what the page and every client send): who is refused, and how."""
    import httpx

    image = COCO_IMAGES()[1]
    with image.open("rb") as fh:
        uploaded = httpx.post(server.url + "gradio_api/upload", files={"files": fh}, timeout=30).json()[0]
    file_data = {"path": uploaded, "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}
    fn_index = _fn_index(server, "predict_image")
    barrier = threading.Barrier(n)

    def join(_i: int) -> tuple[int, str]:
        body = {
            "data": [file_data, 0.1, 0.3, resolution, VIEWS], "event_data": None, "fn_index": fn_index,
            "trigger_id": None, "session_hash": uuid.uuid4().hex[:11],
        }  # fmt: skip
        barrier.wait()
        r = httpx.post(server.url + "gradio_api/queue/join", json=body, timeout=60)
        return r.status_code, r.json().get("detail", "") if r.status_code != 200 else ""

    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(join, range(n)))
    refused = [detail for code, detail in answers if code == 503]
    other = sorted({f"{code} {detail}" for code, detail in answers if code not in (200, 503)})
    t0 = time.perf_counter()
    retries = 0
    while True:  # what a visitor told "busy, try again" does: try again a moment later
        try:
            after = server.image(COCO_IMAGES()[2], resolution)
            break
        except Exception as exc:
            if "Queue is full" not in str(exc) or time.perf_counter() - t0 > 300:
                raise
            retries += 1
            time.sleep(1.0)
    return {
        "retries_before_served": retries,
        "simultaneous": n,
        "accepted": sum(code == 200 for code, _ in answers),
        "refused_503": len(refused),
        "refused_details": sorted(set(refused))[:2],
        "other_answers": other,
        "all_refused_clear": all("Queue is full" in d for d in refused),
        "served_after_flood": server.alive(),
        "next_request_s": round(after, 1),
        "drain_s": round(time.perf_counter() - t0, 1),
    }


def disk_phase(server: Server, inputs: dict[str, Path], n: int, videos: int, resolution: int) -> dict[str, Any]:
    """(d) temp disk during ``n`` requests (``videos`` of them videos) against the app's ``--max-temp-gb``."""
    images = distinct_images(server.work / "disk_inputs", n)
    clients = [server.client() for _ in range(4)]
    every = max(1, n // max(1, videos))
    samples: list[int] = []
    seen: dict[str, int] = {}
    t0 = time.perf_counter()
    for i in range(n):
        client = clients[i % len(clients)]
        if i % every == every - 1:
            server.video(inputs["short_video"], resolution, client)
        else:
            server.image(images[i], resolution, client)
        samples.append(dir_bytes(server.temp_dir))
        for child in server.temp_dir.rglob("*"):
            if child.is_file():
                seen[str(child)] = max(seen.get(str(child), 0), child.stat().st_size)
    time.sleep(3.0)
    log = (server.work / "server.log").read_text()
    return {
        "prunes": log.count("pruned "),
        "requests": n,
        "videos": n // every,
        "written_at_least_mb": round(sum(seen.values()) / 2**20, 1),
        "peak_mb": round(max(samples) / 2**20, 1),
        "end_mb": round(samples[-1] / 2**20, 1),
        "after_3s_mb": round(dir_bytes(server.temp_dir) / 2**20, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def fairness_phase(server: Server, inputs: dict[str, Path], resolution: int) -> dict[str, Any]:
    """(e) an image request's latency while a 60-frame video runs, against the same request on an idle server."""
    image = COCO_IMAGES()[3]
    idle = statistics.median(server.image(image, resolution) for _ in range(3))
    video_s: list[float] = []
    thread = threading.Thread(target=lambda: video_s.append(server.video(inputs["long_video"], resolution)))
    before = server.rss_mb()
    with PeakRSS(server) as peak:
        thread.start()
        time.sleep(4.0)  # the video is running
        during = [server.image(image, resolution) for _ in range(3)]
        thread.join()
    return {
        "video_peak_mb": round(peak.peak - before, 1),
        "image_idle_s": round(idle, 2),
        "image_during_video_s": [round(x, 2) for x in during],
        "video_s": round(video_s[0], 1) if video_s else None,
    }


def _upload(server: Server, path: Path) -> dict[str, Any]:
    import httpx

    with path.open("rb") as fh:
        uploaded = httpx.post(server.url + "gradio_api/upload", files={"files": fh}, timeout=60).json()[0]
    return {"path": uploaded, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def page_run(server: Server, fn_index: int, data: list[Any]) -> str:
    """What a browser tab does for one event: ``queue/join`` in a new session, then read its event stream to the end."""
    import httpx

    session = uuid.uuid4().hex[:11]
    body = {"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": None, "session_hash": session}
    httpx.post(server.url + "gradio_api/queue/join", json=body, timeout=60).raise_for_status()
    url = server.url + f"gradio_api/queue/data?session_hash={session}"
    with httpx.stream("GET", url, timeout=300) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return "ok" if '"success":true' in line.replace(" ", "") else line[:200]
    return "no completion"


def page_sessions_phase(server: Server, inputs: dict[str, Path], n: int, resolution: int) -> dict[str, Any]:
    """Page sessions (the private ``detect`` event, which keeps its prediction for redraws), each with a 4000×3000
    JPEG: RSS growth after each (the session keeps no pixels, so it should stay flat)."""
    import httpx

    config = httpx.get(server.url + "config", timeout=30).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "detect")
    big = _upload(server, inputs["big"])
    before = server.rss_mb()
    rss, answers = [], []
    for _ in range(n):
        answers.append(page_run(server, fn_index, [big, 0.1, 0.3, resolution, VIEWS]))
        rss.append(round(server.rss_mb() - before, 1))
    return {"sessions": n, "failures": sum(a != "ok" for a in answers), "rss_growth_mb": rss}


def webcam_phase(server: Server, n: int, resolution: int) -> dict[str, Any]:
    """``/predict_frame`` (the webcam's API twin: one frame in, one annotated frame out) with 1280×720 frames."""
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image

    frame = server.work / "frame_1280x720.jpg"
    Image.fromarray(np.asarray(Image.open(COCO_IMAGES()[3]).convert("RGB").resize((1280, 720)))).save(frame)
    client = server.client()
    before = server.rss_mb()
    t0 = time.perf_counter()
    with PeakRSS(server) as peak:
        for _ in range(n):
            client.predict(handle_file(str(frame)), 0.1, 0.3, resolution, VIEWS, True, api_name="/predict_frame")
    return {
        "frames": n,
        "peak_over_before_mb": round(peak.peak - before, 1),
        "after_minus_before_mb": round(server.rss_mb() - before, 1),
        "ms_per_frame": round(1000 * (time.perf_counter() - t0) / n),
    }


# -- report --------------------------------------------------------------------------------------------------------
START, END = "<!-- bench_load:start -->", "<!-- bench_load:end -->"


def write_section(path: Path, r: dict[str, Any], command: str) -> None:
    """Replace (or append) the generated section of docs/benchmarks.md."""
    text = path.read_text()
    section = f"{START}\n{render(r, command)}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """One (what, result, goal) row per phase that ran."""
    args, rows = r["args"], []
    if "sessions" in r:
        a = r["sessions"]
        rows.append((
            f"(a) {a['sessions']} fresh sessions × one 4000×3000 JPEG",
            f"RSS {a['rss_before_mb']:.0f} → {a['rss_after_mb']:.0f} MB: "
            f"**{a['growth_per_session_mb']:+.2f} MB per session**; peak while one is active "
            f"+{a['peak_active_over_before_mb']:.0f} MB; median {a['median_latency_s']} s each",
            "≤ 2 MB",
        ))  # fmt: skip
    if "page_sessions" in r:
        g = r["page_sessions"]
        rows.append((
            f"(a') {g['sessions']} page sessions (each keeps its prediction for redraws) × one 4000×3000 JPEG",
            f"{g['failures']} failures; RSS growth after each session (MB): {', '.join(map(str, g['rss_growth_mb']))}",
            "≤ 2 MB per session",
        ))  # fmt: skip
    if "webcam" in r:
        w = r["webcam"]
        rows.append((
            f"webcam frames (`/predict_frame`, 1280×720) × {w['frames']}",
            f"peak +{w['peak_over_before_mb']:.0f} MB while active, {w['after_minus_before_mb']:+.0f} MB after; "
            f"{w['ms_per_frame']} ms per frame",
            "-",
        ))  # fmt: skip
    if "steady" in r:
        b = r["steady"]
        rows.append((
            f"(b) {b['clients']} clients × {b['requests'] // b['clients']} requests",
            f"**{b['failures']} failures** of {b['requests']}; RSS after warm-up ({b['warm_after_requests']} "
            f"requests) {b['rss_after_warmup_mb']:.0f} MB → end {b['rss_end_mb']:.0f} MB: "
            f"**{b['growth_after_warmup_pct']:+.1f} %** (peak {b['rss_peak_mb']:.0f} MB); median latency "
            f"{b['median_latency_s']} s",
            "0 failures, < 5 %",
        ))  # fmt: skip
    if "flood" in r:
        c = r["flood"]
        detail = c["refused_details"][0] if c["refused_details"] else ""
        rows.append((
            f"(c) {c['simultaneous']} simultaneous requests, queue size {args['queue_size']}",
            f"{c['accepted']} queued, **{c['refused_503']} refused with HTTP 503** `{detail}` (the page shows "
            "\"This application is currently busy. Please try again.\"; `gradio_client` raises `QueueError: Queue is "
            f"full! Please try again.`); other answers: {c['other_answers'] or 'none'}; server alive: "
            f"**{c['served_after_flood']}**, a visitor retrying every second was served after "
            f"{c['drain_s']} s ({c['retries_before_served']} busy answers first)",
            "clear message, keeps serving",
        ))  # fmt: skip
    if "disk" in r:
        d = r["disk"]
        rows.append((
            f"(d) {d['requests']} requests ({d['videos']} videos)",
            f"distinct photos; at least {d['written_at_least_mb']} MB written, {d['prunes']} prunes; "
            f"temp disk peak **{d['peak_mb']} MB**, at the end "
            f"{d['end_mb']} MB (3 s later {d['after_3s_mb']} MB) against a {args['max_temp_gb'] * 1024:.0f} MB budget",
            "under the budget",
        ))  # fmt: skip
    for name, e in r.get("decode", {}).items():
        rows.append((
            f"(e) large decode: `{name}.png` ({e['file_kb']} KB)",
            f"{e['answer']}; server RSS peak **+{e['peak_over_before_mb']:.0f} MB**, "
            f"{e['after_minus_before_mb']:+.0f} MB after; {e['seconds']} s",
            "peak ≤ ~1 GB",
        ))  # fmt: skip
    if "fairness_separate" in r and "fairness_shared" in r:
        fs, fh = r["fairness_separate"], r["fairness_shared"]
        rows.append((
            "(f) an image while a 60-frame video runs",
            f"own queue groups (`--video-queue separate`): idle {fs['image_idle_s']} s, during the video "
            f"{fs['image_during_video_s']} s (video {fs['video_s']} s, peak RSS +{fs['video_peak_mb']:.0f} MB); "
            f"one shared group (`--video-queue shared`): idle {fh['image_idle_s']} s, during "
            f"{fh['image_during_video_s']} s (video {fh['video_s']} s)",
            "images never wait for a whole video",
        ))  # fmt: skip
    return rows


def render(r: dict[str, Any], command: str) -> str:
    args = r["args"]
    loads = [" / ".join(f"{x:.1f}" for x in r[k]) for k in ("loadavg_at_start", "loadavg_at_end")]
    table = "\n".join(f"| {what} | {result} | {goal} |" for what, result, goal in _rows(r))
    return f"""## Load: a shared link under traffic (bench/bench_load.py, issue 10)

`{command}` — {r["started_utc"]}, {r["machine"]}; load average at start {loads[0]}, at end {loads[1]} (**the 2 cores
were shared with other developers' jobs**: RSS and disk figures are unaffected, latencies are noisy). The app ran as
`python app.py --random-weights --resolution {args["resolution"]} --engine {args["engine"]} --queue-size
{args["queue_size"]} --max-temp-gb {args["max_temp_gb"]} --download-grace-s 5`,
driven by `gradio_client` (one client = one session) and plain HTTP. Idle RSS after the first request:
**{r["idle_rss_mb"]:.0f} MB**; at the end {r["final_rss_mb"]:.0f} MB.

| | result | goal |
|---|---|---|
{table}
"""
