"""Write web/ort-pin.json: the pinned onnxruntime-web version and the SRI hashes of the files the page loads.

Run after changing web/package.json (``cd web && npm install && cd .. && python tools/pin_ort.py``). The hashes are
those of the npm package's files, which the public CDN serves byte for byte, so a page without web/node_modules
(a Space installs only pip packages) loads the very same files from the CDN and the browser checks them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "web"
FILES = (
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)


def sri(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def main() -> None:
    lock = json.loads((WEB / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    dist = WEB / "node_modules" / "onnxruntime-web" / "dist"
    pin = {
        "version": version,
        "cdn": f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{version}/dist/",
        "integrity": {name: sri(dist / name) for name in FILES},
        "bytes": {name: (dist / name).stat().st_size for name in FILES},
    }
    (WEB / "ort-pin.json").write_text(json.dumps(pin, indent=2) + "\n")


if __name__ == "__main__":
    main()
