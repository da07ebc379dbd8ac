"""Container health check: is the app answering on its API info route?

``python -m rfdetr_demo.healthcheck`` exits 0 when ``/gradio_api/info`` answers 200 (or 401 when the app runs with
``--auth``: the server is up and correctly refusing strangers), 1 otherwise. It uses only the standard library
so the check costs no imports of torch or gradio every 30 seconds. The port comes from the same variables the app
reads (``RFDETR_DEMO_PORT``, then ``GRADIO_SERVER_PORT``, then 7860).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

HEALTHY_STATUSES = frozenset({200, 401})
INFO_ROUTE = "/gradio_api/info"


def health_url(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    port = env.get("RFDETR_DEMO_PORT") or env.get("GRADIO_SERVER_PORT") or "7860"
    return f"http://127.0.0.1:{int(port)}{INFO_ROUTE}"


def check(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(healthy, reason)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # a fixed local http URL
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"
    return status in HEALTHY_STATUSES, f"{url}: HTTP {status}"


def main() -> int:
    healthy, reason = check(health_url())
    print(reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
