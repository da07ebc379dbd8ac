"""A tiny HTTP MJPEG camera simulator: serves a clip (looped) as ``multipart/x-mixed-replace`` JPEG frames.

Why: IP cameras commonly expose exactly this format, and testing the stream-source path needs a camera that
exists offline. ``python -m tools.mjpeg_server CLIP.mp4 --port 8090`` serves
``http://127.0.0.1:8090/stream.mjpg`` on loopback for trying the Webcam tab's stream source by hand.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

BOUNDARY = "frameboundary"


def read_clip(path: str | Path, max_frames: int = 300) -> list[np.ndarray]:
    """Decode up to ``max_frames`` RGB frames of a local video file with PyAV."""
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"{path} has no decodable video frames")
    return frames


def encode_jpegs(frames: Sequence[np.ndarray], quality: int = 85) -> list[bytes]:
    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


class MjpegServer:
    """Serve JPEG frames at ``fps`` on ``host:port`` (port 0 picks a free one) from a daemon thread.

    ``drop_after`` closes each connection after that many frames, to exercise a client's reconnect logic.
    """

    def __init__(
        self,
        jpegs: Sequence[bytes],
        fps: float = 15.0,
        host: str = "127.0.0.1",
        port: int = 0,
        drop_after: int | None = None,
    ) -> None:
        self.jpegs = list(jpegs)
        self.fps = fps
        self.drop_after = drop_after
        self.connections = 0
        self.hosts: list[str | None] = []  # the Host header of each request (what name the client asked for)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server.hosts.append(self.headers.get("Host"))
                if self.path.split("?")[0] != "/stream.mjpg":
                    self.send_error(404)
                    return
                server.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                try:
                    while not server.stopped.is_set():
                        jpg = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n".encode()
                        )
                        self.wfile.write(jpg + b"\r\n")
                        self.wfile.flush()
                        i += 1
                        if server.drop_after is not None and i >= server.drop_after:
                            return
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.stopped = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mjpeg-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/stream.mjpg"

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--fps", type=float, default=15.0)
    args = parser.parse_args(argv)
    with MjpegServer(encode_jpegs(read_clip(args.clip)), fps=args.fps, port=args.port) as server:
        print(f"serving {args.clip} at {server.url} (Ctrl+C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
