"""Which stream URLs the server may open, and how FFmpeg must open them (server-side request forgery guard).

Reading a stream makes *the server* connect to an address a visitor typed. So: off unless the operator enables it;
an optional allow-list pins hosts; without one only globally routable addresses are accepted (IPv4-mapped, 6to4,
Teredo and NAT64 forms are unwrapped first); the name is resolved once and FFmpeg connects to the address that was
checked (the name goes in the Host header), so a second DNS answer cannot point elsewhere; no HTTP redirects, a
protocol and demuxer whitelist (no playlist that names other hosts); local capture devices need ``device``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit, urlunsplit

from rfdetr_demo.errors import UserError

NETWORK_SCHEMES: frozenset[str] = frozenset({"rtsp", "rtsps", "http", "https"})
DEVICE_ALLOW_ENTRY = "device"  # allow-list entry that permits local capture devices
_DEVICE_RE = re.compile(r"^(?:/dev/video(\d{1,2})|device:(\d{1,2}))$")
MAX_URL_LENGTH = 2048
# FFmpeg protocols per scheme: nothing else (no file:, no concat:, no nested URLs of another kind).
PROTOCOLS = {"http": "http,tcp", "https": "https,tls,tcp", "rtsp": "rtsp,tcp", "rtsps": "rtsps,rtsp,tls,tcp"}
# Single-connection demuxers: MJPEG (multipart or raw), MPEG-TS, FLV, Matroska/WebM, MP4, raw H.264/HEVC, RTSP.
# HLS/DASH playlists are left out: they make FFmpeg fetch further URLs that were never checked.
DEMUXERS = "mpjpeg,mjpeg,jpeg_pipe,mpegts,flv,matroska,webm,mov,mp4,h264,hevc,rtsp"
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
              "192.168.0.0/16", "::/128", "::1/128", "fc00::/7", "fe80::/10")
)  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Resolver = Callable[..., list]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class StreamSourceError(UserError):
    """A user-facing reason why a stream URL is refused or cannot be read."""


@dataclass(frozen=True)
class StreamTarget:
    """A validated source: a network URL pinned to the checked address, or a local capture device."""

    url: str  # what FFmpeg opens: the URL with the host replaced by the checked address, or /dev/videoN
    kind: str  # "network" | "device"
    host: str | None = None
    display: str = ""  # the URL as typed with any password masked, safe to show and log
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg options (whitelists, Host header, no redirects)


def parse_allow_hosts(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """'cam1.lan, 10.0.0.5:554 ,device' -> ('cam1.lan', '10.0.0.5:554', 'device') (lower-cased, no blanks)."""
    if text is None:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(dict.fromkeys(i.strip().lower() for i in items if i and i.strip()))


def mask_credentials(url: str) -> str:
    """Hide a password in ``scheme://user:password@host`` so it never reaches the page or the logs."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped ``::ffff:a.b.c.d``, 6to4, Teredo server, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[0]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared (100.64/10), unique-local, unspecified."""
    inner = embedded_ipv4(ip)
    if inner is not None and not is_public(inner):
        return False
    if any(ip in net for net in _NOT_GLOBAL if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolver(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise StreamSourceError(f"Host '{host}' could not be resolved.") from exc
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def _pinned(parts: SplitResult, scheme: str, ip: IPAddress, port: int | None, host: str) -> tuple[str, dict[str, str]]:
    """The URL aimed at ``ip`` and the FFmpeg options that keep the name where the server needs it."""
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + literal + (f":{port}" if port is not None else "")
    options = {"protocol_whitelist": PROTOCOLS[scheme], "format_whitelist": DEMUXERS}
    if scheme in ("http", "https"):
        name = f"[{host}]" if ":" in host else host
        options["headers"] = f"Host: {name}{f':{port}' if port is not None else ''}\r\n"
        options["max_redirects"] = "0"
    else:
        options["rtsp_transport"] = "tcp"
    if scheme in ("https", "rtsps"):
        options["verifyhost"] = host  # the TLS name (FFmpeg does not verify certificates by default)
    return urlunsplit((scheme, netloc, parts.path, parts.query, "")), options


def validate_stream_url(
    url: str, enabled: bool, allow_hosts: str | Sequence[str] | None = "", resolver: Resolver | None = None
) -> StreamTarget:
    """Check a user-typed source against the server's policy; raise :class:`StreamSourceError` with the reason."""
    if not enabled:
        raise StreamSourceError(
            "Stream sources are disabled on this server: reading a camera URL makes the server open network "
            "connections. The operator can enable them with --enable-stream-source "
            "(RFDETR_DEMO_ENABLE_STREAM_SOURCE=1), ideally with --stream-allow-hosts."
        )
    text = (url or "").strip()
    if not text:
        raise StreamSourceError("Please enter a stream URL, e.g. rtsp://camera.local:554/stream.")
    if len(text) > MAX_URL_LENGTH or any(ord(c) < 32 or c.isspace() for c in text):
        raise StreamSourceError("The URL is too long or contains spaces or control characters.")
    allowed = parse_allow_hosts(allow_hosts)

    device = _DEVICE_RE.match(text)
    if device:
        if DEVICE_ALLOW_ENTRY not in allowed:
            raise StreamSourceError(
                "Local capture devices are not allowed on this server (the operator must add "
                f"'{DEVICE_ALLOW_ENTRY}' to --stream-allow-hosts)."
            )
        index = device.group(1) or device.group(2)
        return StreamTarget(f"/dev/video{int(index)}", "device", None, f"/dev/video{int(index)}")

    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        raise StreamSourceError(
            f"Unsupported scheme '{parts.scheme or '(none)'}': use one of {', '.join(sorted(NETWORK_SCHEMES))}."
        )
    try:
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise StreamSourceError("The URL is malformed (check the host and port).") from exc
    if not host:
        raise StreamSourceError("The URL has no host name.")
    host_port = f"{host}:{port}" if port is not None else host
    listed = host in allowed or host_port in allowed
    if allowed and not listed:
        raise StreamSourceError(f"Host '{host}' is not in this server's allow-list ({', '.join(allowed)}).")
    default_port = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322}[scheme]
    addresses = _resolve(host, port or default_port, resolver or socket.getaddrinfo)
    usable = addresses if listed else [ip for ip in addresses if is_public(ip)]
    if not usable:
        raise StreamSourceError(
            f"Host '{host}' is not a public address (loopback, private, link-local, shared or unspecified "
            "addresses are refused unless the operator allow-lists them with --stream-allow-hosts)."
        )
    if not listed and len(usable) < len(addresses):  # one answer public, another internal: refuse the name
        raise StreamSourceError(f"Host '{host}' resolves to a non-public address and is refused.")
    pinned, options = _pinned(parts, scheme, usable[0], port, host)
    return StreamTarget(pinned, "network", host, mask_credentials(text), options)
