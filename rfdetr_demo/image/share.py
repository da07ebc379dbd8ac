"""Shared results: a link ``?share=<id>`` reopens a photo with its settings and model, across restarts when the host
gives the store a lasting folder (``--share-dir``; docs/hosting.md "Sharing a result").

What is kept: the photo, content-addressed (``photos/<sha256><ext>``: shared twice, stored once), and one small JSON
record per link (model name, thresholds, resolution, views, the photo's name). Not the result: opening a link runs
the model once more, so a link costs the photo's bytes only and never shows what an older model or older drawing
code made. Ids are 128 random bits (``secrets``), so a link cannot be guessed; a photo is written here only when its
uploader presses Share. A byte budget bounds the folder: the links shared or opened least recently go first, then
the photos no link names. No Gradio here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rfdetr_demo.disk import file_sha256

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
RECORDS, PHOTOS = "links", "photos"
ORPHAN_GRACE_S = 120.0  # a photo no link names yet may be a save in progress in another process
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SharedInput:
    """What a link reopens: the photo and everything the Image tab needs to run it again as it was."""

    model: str
    threshold: float
    keypoint_threshold: float
    resolution: int
    views: list[str]
    photo_name: str
    photo: str = ""  # file name under photos/
    created: float = field(default_factory=time.time)


class ShareError(ValueError):
    """A photo that cannot be shared (gone, or larger than the whole budget); the message is for the page."""


def safe_name(name: str) -> str:
    """A file name that is safe in any folder (the photo's name names the restored copy and its downloads)."""
    cleaned = _NAME.sub("_", Path(name).name).strip("._") or "photo"
    return cleaned[:100]


class ShareStore:
    """Photos and link records under ``root``, at most ``max_bytes`` together (oldest use first)."""

    def __init__(self, root: Path | str, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        (self.root / RECORDS).mkdir(parents=True, exist_ok=True)
        (self.root / PHOTOS).mkdir(parents=True, exist_ok=True)

    def save(self, photo: Path | str, shared: SharedInput) -> str:
        """Store ``photo`` (once per content) and a new record for it; returns the link's id."""
        source = Path(photo)
        if not source.is_file():
            raise ShareError("The photo is no longer on the server; upload it again, then share.")
        size = source.stat().st_size
        if size > self.max_bytes:
            raise ShareError(f"The photo ({size / 2**20:.0f} MB) is larger than this server keeps for shared links.")
        suffix = source.suffix.lower() if _SUFFIX.fullmatch(source.suffix) else ".img"
        stored = file_sha256(source) + suffix
        share_id = secrets.token_urlsafe(16)
        record = asdict(shared) | {"photo": stored, "created": time.time()}
        with self._lock:
            target = self.root / PHOTOS / stored
            if target.is_file():
                os.utime(target)
            else:
                _atomic_copy(source, target)
            _atomic_write(self.root / RECORDS / f"{share_id}.json", json.dumps(record).encode())
            self._prune()
        return share_id

    def load(self, share_id: str | None) -> tuple[SharedInput, Path] | None:
        """The record and stored photo of a link (and a use: it is pruned later); None when unknown or gone."""
        if not share_id or not ID_PATTERN.fullmatch(share_id):
            return None
        path = self.root / RECORDS / f"{share_id}.json"
        try:
            data = json.loads(path.read_text())
            shared = SharedInput(
                model=str(data["model"]), threshold=float(data["threshold"]),
                keypoint_threshold=float(data["keypoint_threshold"]), resolution=int(data["resolution"]),
                views=[str(v) for v in data["views"]], photo_name=safe_name(str(data["photo_name"])),
                photo=Path(str(data["photo"])).name, created=float(data["created"]),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            return None
        photo = self.root / PHOTOS / shared.photo
        if not photo.is_file():
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
            os.utime(photo)
        return shared, photo

    def prune(self) -> int:
        """Drop the least recently used links until the folder fits the budget; returns the links dropped."""
        with self._lock:
            return self._prune()

    def _prune(self) -> int:
        records = _files(self.root / RECORDS, ".json")
        photos = {p.name: p for p in _files(self.root / PHOTOS)}
        names: dict[Path, str] = {}
        for record in records:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                names[record] = Path(str(json.loads(record.read_text())["photo"])).name
        users: dict[str, int] = {}
        for name in names.values():
            users[name] = users.get(name, 0) + 1
        now = time.time()
        for name, photo in list(photos.items()):  # photos no link names (a crash between the two writes)
            if not users.get(name) and now - _mtime(photo) > ORPHAN_GRACE_S and _remove(photo):
                del photos[name]
        total = sum(_size(p) for p in records) + sum(_size(p) for p in photos.values())
        dropped = 0
        for record in sorted(records, key=_mtime):
            if total <= self.max_bytes:
                break
            size = _size(record)
            if not _remove(record):
                continue
            total -= size
            dropped += 1
            name = names.get(record)
            if name is not None:
                users[name] -= 1
                if users[name] == 0 and name in photos:
                    total -= _size(photos[name])
                    _remove(photos.pop(name))
        if dropped:
            log.info(
                "shared links: dropped the %d least recently used (budget %.0f MB)", dropped, self.max_bytes / 2**20
            )
        return dropped


def _files(folder: Path, suffix: str = "") -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffix) and not p.name.startswith(".")]
    except FileNotFoundError:
        return []


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _atomic_copy(source: Path, target: Path) -> None:
    """Copy under a temporary name, then rename: another process never reads half a photo."""
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".")
    os.close(fd)
    try:
        shutil.copyfile(source, staging)
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise


def _atomic_write(target: Path, data: bytes) -> None:
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise
