"""Stream sources: only public addresses unless allow-listed, FFmpeg pinned to the checked address, no redirects,
no playlists, and failures that say nothing about the network behind the server. DNS is a stub (no network)."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time

import numpy as np
import pytest

from rfdetr_demo.live.stream_policy import StreamSourceError, is_public, validate_stream_url
from rfdetr_demo.live.stream_source import FrameIterator, StreamReader
from tests.conftest import _real_getaddrinfo
from tools.mjpeg_server import MjpegServer, encode_jpegs


def dns(table: dict[str, list[str]]):
    """A resolver answering from ``table`` (what a hostile DNS server could answer), counting its calls."""

    def resolve(host, port, **_kwargs):
        resolve.calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, host)
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]
        ]

    resolve.calls = []
    return resolve


APP_PORT = 7860


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:169.254.169.254]/latest/meta-data",  # IPv4-mapped link-local (cloud metadata)
        "http://[fd00:ec2::254]/latest/meta-data",  # unique-local (AWS IMDS over IPv6)
        "http://100.100.100.200/latest/meta-data",  # shared address space (Alibaba metadata)
        "http://0.0.0.0:7860/",  # unspecified: the server itself
        f"http://127.0.0.1:{APP_PORT}/gradio_api/",  # loopback: the app's own port
        "http://169.254.169.254/latest/meta-data",
        "rtsp://10.0.0.6:554/s",
        "http://172.16.5.4/",
        "https://192.168.1.1/",
        "http://[::1]:8080/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://[2002:a9fe:a9fe::1]/",  # 6to4 wrapping 169.254.169.254
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 wrapping 169.254.169.254
        "http://224.0.0.251/",  # multicast
    ],
)
def test_non_public_addresses_are_refused_without_an_allow_list(url):
    with pytest.raises(StreamSourceError, match="not a public address"):
        validate_stream_url(url, enabled=True, resolver=dns({}))


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
def test_numeric_spellings_of_loopback_are_refused(host):
    """The C resolver reads these as 127.0.0.1 (no DNS query): they are checked as the address they become."""
    with pytest.raises(StreamSourceError, match="not a public address"):
        validate_stream_url(f"http://{host}:{APP_PORT}/", enabled=True, resolver=_real_getaddrinfo)


def test_a_name_is_checked_once_and_ffmpeg_gets_the_checked_address():
    resolver = dns({"cam.example": ["93.184.216.34"]})
    target = validate_stream_url("http://user:pw@cam.example:8080/v.mjpg?x=1", True, resolver=resolver)
    assert resolver.calls == ["cam.example"]
    assert target.url == "http://user:pw@93.184.216.34:8080/v.mjpg?x=1"
    assert target.display == "http://user:***@cam.example:8080/v.mjpg?x=1"
    assert target.options["headers"] == "Host: cam.example:8080\r\n"
    assert target.options["max_redirects"] == "0" and target.options["protocol_whitelist"] == "http,tcp"
    assert "hls" not in target.options["format_whitelist"] and "mpjpeg" in target.options["format_whitelist"]
    six = validate_stream_url("https://cam6.example/live", True, resolver=dns({"cam6.example": ["2606:4700::1"]}))
    assert six.url == "https://[2606:4700::1]/live" and six.options["verifyhost"] == "cam6.example"
    rtsp = validate_stream_url("rtsp://cam.example/s", True, resolver=resolver)
    assert rtsp.url == "rtsp://93.184.216.34/s" and rtsp.options["rtsp_transport"] == "tcp"
    assert rtsp.options["protocol_whitelist"] == "rtsp,tcp"


def test_a_name_with_any_internal_answer_or_none_is_refused():
    mixed = dns({"rebind.example": ["93.184.216.34", "169.254.169.254"]})
    with pytest.raises(StreamSourceError, match="non-public"):
        validate_stream_url("http://rebind.example/", True, resolver=mixed)
    with pytest.raises(StreamSourceError, match="could not be resolved"):
        validate_stream_url("http://nowhere.example/", True, resolver=dns({}))
    with pytest.raises(StreamSourceError, match="not a public address"):
        validate_stream_url("http://internal.example/", True, resolver=dns({"internal.example": ["10.1.2.3"]}))


def test_allow_listed_hosts_may_be_internal_and_are_still_pinned():
    resolver = dns({"cam1.lan": ["10.0.0.7"]})
    target = validate_stream_url("rtsp://admin:s3cret@CAM1.lan:554/live", True, "cam1.lan, 10.0.0.5", resolver)
    assert target.url == "rtsp://admin:s3cret@10.0.0.7:554/live" and target.host == "cam1.lan"
    assert validate_stream_url("http://10.0.0.5/v", True, "10.0.0.5", resolver).url == "http://10.0.0.5/v"
    with pytest.raises(StreamSourceError, match="allow-list"):
        validate_stream_url("http://10.0.0.6/v", True, "10.0.0.5", resolver)


def test_is_public():
    import ipaddress

    assert is_public(ipaddress.ip_address("93.184.216.34")) and is_public(ipaddress.ip_address("2606:4700::1"))
    assert not is_public(ipaddress.ip_address("100.64.0.1")) and not is_public(ipaddress.ip_address("::ffff:10.0.0.1"))


# -- what FFmpeg does with a pinned target, on loopback (allow-listed) -----------------------------------------------
@pytest.fixture()
def mjpeg():
    with MjpegServer(encode_jpegs([np.full((48, 64, 3), 90, np.uint8)]), fps=20) as server:
        yield server


def _serve(handler_body) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            handler_body(self)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def test_ffmpeg_connects_to_the_checked_address_with_the_name_as_host(mjpeg):
    """The name resolves (once, by us) to loopback; FFmpeg, which cannot resolve it, streams from the address."""
    port = mjpeg.httpd.server_address[1]
    resolver = dns({"cam.test": ["127.0.0.1"]})
    target = validate_stream_url(f"http://cam.test:{port}/stream.mjpg", True, "cam.test", resolver)
    frames = FrameIterator(target, 5.0)
    try:
        rgb, _pts = next(iter(frames))
    finally:
        frames.close()
    assert rgb.shape == (48, 64, 3) and abs(int(rgb.mean()) - 90) < 5
    assert mjpeg.hosts == [f"cam.test:{port}"] and resolver.calls == ["cam.test"]


def test_redirects_are_not_followed(mjpeg):
    def redirect(h):
        h.send_response(302)
        h.send_header("Location", mjpeg.url)
        h.end_headers()

    server, where = _serve(redirect)
    try:
        target = validate_stream_url(f"http://{where}/cam", True, "127.0.0.1")
        with pytest.raises(StreamSourceError, match=r"^Could not open http://127\.0\.0\.1:\d+/cam\.$"):
            FrameIterator(target, 3.0)
    finally:
        server.shutdown()
    assert mjpeg.connections == 0


def test_a_playlist_naming_another_host_is_not_followed(mjpeg):
    def playlist(h):
        segment = mjpeg.url.replace("/stream.mjpg", "/segment0.ts")  # the other host's address
        body = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{segment}\n#EXT-X-ENDLIST\n".encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.apple.mpegurl")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    server, where = _serve(playlist)
    try:
        target = validate_stream_url(f"http://{where}/live.m3u8", True, "127.0.0.1")
        with pytest.raises(StreamSourceError, match="Could not open"):
            FrameIterator(target, 3.0)
    finally:
        server.shutdown()
    assert mjpeg.hosts == [], "FFmpeg fetched a URL named by the playlist"


def test_network_failures_are_logged_not_shown(caplog):
    caplog.set_level(logging.INFO)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = validate_stream_url(f"http://127.0.0.1:{port}/x.mjpg", True, "127.0.0.1")
    reader = StreamReader(target, lambda f: None, backoff_s=0.05, max_failures=2, timeout_s=2.0).start()
    seen = set()
    deadline = time.monotonic() + 20
    while reader.alive and time.monotonic() < deadline:
        seen.add(reader.status().message)
        time.sleep(0.02)
    seen.add(reader.status().message)
    final = reader.status()
    assert (
        final.state == "failed" and f"Could not read http://127.0.0.1:{port}/x.mjpg after 2 attempts." in final.message
    )
    shown = " ".join(seen).lower()
    assert "refused" not in shown and "errno" not in shown and "error" not in shown
    assert "refused" in caplog.text.lower() or "errno" in caplog.text.lower()  # the operator still sees why


def test_the_page_shows_a_refused_source_in_the_readout_and_logs_one_line(caplog):
    from rfdetr_demo.config import Settings
    from rfdetr_demo.models.service import ModelService
    from rfdetr_demo.ui.handlers import UiContext
    from rfdetr_demo.ui.webcam_tab import run_source

    caplog.set_level(logging.INFO)
    ctx = UiContext(ModelService(lambda: None), Settings(enable_stream_source=True))
    shown = list(run_source(ctx, "http://[::ffff:169.254.169.254]/latest", 0.5, 0.3, 288, ["Combined"], None))
    assert len(shown) == 1 and shown[0][1].startswith("⚠️ **Stream source refused.** Host '::ffff:169.254.169.254'")
    ours = [r for r in caplog.records if r.name.startswith("rfdetr_demo")]
    assert len(ours) == 1 and ours[0].levelno == logging.INFO and ours[0].exc_info is None
