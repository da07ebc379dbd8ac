"""Run deploy/nginx.conf for real, in front of two local app processes on loopback, and check sticky sessions.

Docker is not available everywhere (it was not where this was written), so this is the part of
deploy/docker-compose.yml that can be run without it: the same nginx.conf with the two upstreams pointed at
``127.0.0.1`` ports instead of the ``app1``/``app2`` containers. It needs an ``nginx`` binary (Debian:
``apt-get install nginx-light``).

    python deploy/check_local.py --sessions 8 --calls 3

Checks: ``nginx -t`` accepts the config; every ``gradio_client`` session (upload, queue, result stream) succeeds
through nginx; each session's requests all reach one replica; both replicas get sessions.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.load_support import COCO_IMAGES, Server, free_port  # noqa: E402


def local_config(text: str, ports: list[int], listen: int, prefix: Path) -> str:
    """deploy/nginx.conf with loopback upstreams, a loopback listener and logs under ``prefix``."""
    for i, port in enumerate(ports, start=1):
        text = text.replace(f"server app{i}:7860;", f"server 127.0.0.1:{port};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    return text.replace("access_log /dev/stdout replica;", f"access_log {prefix}/access.log replica;")


def run_sessions(url: str, sessions: int, calls: int) -> list[str]:
    from gradio_client import Client, handle_file

    images = COCO_IMAGES()

    def session(i: int) -> str:
        client = Client(url, verbose=False, download_files=False)
        for j in range(calls):
            out = client.predict(
                handle_file(str(images[(i + j) % len(images)])), 0.1, 0.3, 288, ["Combined"],
                api_name="/predict_image",
            )  # fmt: skip
            assert "instance" in out[-1], out[-1]
        return client.cookies.get("rfdetr_replica", "")

    with ThreadPoolExecutor(sessions) as pool:
        return list(pool.map(session, range(sessions)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    prefix = Path(tempfile.mkdtemp(prefix="nginx_check_"))
    flags = ["--resolution", "288", "--engine", "torch"]
    with Server(prefix / "app1", flags) as app1, Server(prefix / "app2", flags) as app2:
        listen = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            local_config((REPO / "deploy" / "nginx.conf").read_text(), [app1.port, app2.port], listen, prefix)
        )
        base = [
            nginx,
            "-p",
            str(prefix),
            "-c",
            str(conf),
            "-g",
            f"pid {prefix}/nginx.pid; error_log {prefix}/error.log;",
        ]
        test = subprocess.run([*base, "-t"], capture_output=True, text=True)
        print("nginx -t:", test.stderr.strip().replace("\n", " | "))
        test.check_returncode()
        proc = subprocess.Popen([*base[:-1], base[-1] + " daemon off;"])
        try:
            time.sleep(1.0)
            cookies = run_sessions(f"http://127.0.0.1:{listen}/", args.sessions, args.calls)
        finally:
            proc.terminate()
            proc.wait(10)
    by_key: dict[str, set[str]] = defaultdict(set)
    for line in (prefix / "access.log").read_text().splitlines():
        m = re.search(r"-> (\S+) key=(\S+)", line)
        if m and m.group(2) in cookies:
            by_key[m.group(2)].add(m.group(1))
    replicas = {addr for addrs in by_key.values() for addr in addrs}
    print(f"{len(cookies)} sessions x {args.calls} calls through nginx: all succeeded")
    print("replicas per session:", sorted(len(v) for v in by_key.values()), "replicas used:", sorted(replicas))
    assert all(cookies) and len(by_key) == len(cookies), "every session got and kept its cookie"
    assert all(len(v) == 1 for v in by_key.values()), "a session's requests reached more than one replica"
    assert len(replicas) == 2, "both replicas should get sessions"


if __name__ == "__main__":
    main()
