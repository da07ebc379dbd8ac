"""Acceptance benchmark of issue 10: a shared link under real traffic (memory, disk and queue per visitor).

Starts ``python app.py --random-weights`` at a small resolution as a separate process with its own Gradio temp dir,
drives it with ``gradio_client`` and plain HTTP, and measures in one run:

(a) N fresh sessions (one ``gradio_client.Client`` each) each sending a 4000×3000 JPEG: RSS growth per session once
    they are done (goal ≤ 2 MB);
(b) 8 clients × 50 requests: failures (goal 0) and RSS growth after warm-up (goal < 5 %);
(c) a flood of simultaneous requests past ``--queue-size``: every refused request gets the clear "busy" answer and
    the server keeps serving;
(d) temp disk after 200 image and video requests against a small ``--max-temp-gb``: under the budget;
(e) large decode: the server's RSS peak for 15000×15000 16-bit gray and RGB PNGs and a 196 MP RGB PNG (goal: no
    accepted upload raises it by more than ~1 GB; larger ones are refused with a clear message);
(f) fairness: an image request's latency while a long video runs, with the video in its own queue group
    (``--video-queue separate``, the default) and sharing the image group (``--video-queue shared``).

    python bench/bench_load.py                 # writes the bench_load section of docs/benchmarks.md
    python bench/bench_load.py --quick         # fewer requests, nothing written (a smoke run)

RSS is read from /proc (the server's resident set); timings are wall-clock and noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.load_support import (  # noqa: E402
    Server,
    decode_phase,
    disk_phase,
    fairness_phase,
    flood_phase,
    make_inputs,
    page_sessions_phase,
    sessions_phase,
    steady_phase,
    webcam_phase,
    write_section,
)
from bench.machine import describe  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=288)
    parser.add_argument("--engine", default="torch", help="the app's --engine (torch: no OpenVINO export at start)")
    parser.add_argument("--sessions", type=int, default=25, help="(a) fresh sessions with a 4000×3000 JPEG")
    parser.add_argument("--clients", type=int, default=8, help="(b) concurrent clients")
    parser.add_argument("--requests", type=int, default=50, help="(b) requests per client")
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--page-sessions", type=int, default=12, help="(a') page sessions with a 4000×3000 JPEG")
    parser.add_argument("--flood", type=int, default=60, help="(c) simultaneous requests")
    parser.add_argument("--disk-requests", type=int, default=200, help="(d) image + video requests")
    parser.add_argument("--disk-videos", type=int, default=20, help="(d) of which videos")
    parser.add_argument("--max-temp-gb", type=float, default=0.01, help="(d) the temp-disk budget")
    parser.add_argument("--quick", action="store_true", help="small numbers, nothing written")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated phases to run (sessions,page_sessions,webcam,steady,flood,disk,decode,fairness); "
        "nothing is written",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.requests, args.flood, args.disk_requests, args.disk_videos = 4, 5, 30, 20, 4
        args.page_sessions = 3
    return args


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_load_"))
    inputs = make_inputs(work)
    report: dict = {
        "machine": describe(),
        "loadavg_at_start": os.getloadavg(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    flags = [
        "--resolution", str(args.resolution), "--engine", args.engine, "--queue-size", str(args.queue_size),
        "--max-temp-gb", str(args.max_temp_gb),
        "--download-grace-s", "5", "--max-video-seconds", "60",
    ]  # fmt: skip
    only = set(filter(None, args.only.split(",")))
    wanted = lambda name: not only or name in only  # noqa: E731
    with Server(work / "separate", flags) as server:
        report["idle_rss_mb"] = server.rss_mb()
        if wanted("sessions"):
            report["sessions"] = sessions_phase(server, inputs, args.sessions, args.resolution)
        if wanted("page_sessions"):
            report["page_sessions"] = page_sessions_phase(server, inputs, args.page_sessions, args.resolution)
        if wanted("webcam"):
            report["webcam"] = webcam_phase(server, 20, args.resolution)
        if wanted("steady"):
            report["steady"] = steady_phase(server, inputs, args.clients, args.requests, args.resolution)
        if wanted("flood"):
            report["flood"] = flood_phase(server, inputs, args.flood, args.resolution)
        if wanted("disk"):
            report["disk"] = disk_phase(server, inputs, args.disk_requests, args.disk_videos, args.resolution)
        if wanted("decode"):
            report["decode"] = decode_phase(server, work, args.resolution)
        if wanted("fairness"):
            report["fairness_separate"] = fairness_phase(server, inputs, args.resolution)
        report["final_rss_mb"] = server.rss_mb()
    if wanted("fairness"):
        with Server(work / "shared", [*flags, "--video-queue", "shared"]) as server:
            report["fairness_shared"] = fairness_phase(server, inputs, args.resolution)
    report["loadavg_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if not args.quick and not only:
        write_section(REPO / "docs" / "benchmarks.md", report, " ".join(["python bench/bench_load.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
