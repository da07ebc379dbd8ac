"""Bounded temporary disk: the size budget Gradio lacks, over the app's own temp dir (docs/hosting.md, Disk).

Gradio's ``delete_cache`` ages its own files and spares ``keep_in_cache`` examples, but has no size limit. Here every
hash folder and every request folder of ours is a *unit*: our folders past ``max_age_s`` go, and over ``max_bytes``
the oldest units go down to ``LOW_WATER`` of the budget. Gradio-free; clock and roots are injectable for tests.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GB = 1024**3
DEFAULT_MAX_TEMP_GB = 5.0
DEFAULT_MAX_AGE_S = 3600.0
DEFAULT_GRACE_S = 300.0
REQUEST_DIR_NAME = "rfdetr_demo"
LOW_WATER = 0.8  # an over-budget prune frees down to this share of the budget


def gradio_temp_root() -> Path:
    """Gradio's temp dir (uploads, returned files): ``GRADIO_TEMP_DIR`` or ``<system temp>/gradio``."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def use_own_temp_dir() -> Path:
    """Give this process a temp dir of its own (removed at exit) unless ``GRADIO_TEMP_DIR`` names one.

    Call before the app is built: Gradio reads ``GRADIO_TEMP_DIR`` when it creates the Blocks and the server.
    """
    if not os.environ.get("GRADIO_TEMP_DIR"):
        path = tempfile.mkdtemp(prefix="rfdetr-demo-gradio-")
        os.environ["GRADIO_TEMP_DIR"] = path
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return gradio_temp_root()


@dataclass(frozen=True)
class Unit:
    """One prunable folder (or stray file): its total size and its newest modification time."""

    path: Path
    bytes: int
    newest_mtime: float


@dataclass(frozen=True)
class PruneReport:
    removed: int
    freed_bytes: int
    total_bytes: int  # what is left
    kept_in_use: int  # units over budget or too old that were kept because in use or recent


def measure(path: Path) -> Unit | None:
    """Size and newest mtime of a folder's files (or of one file); None if it vanished meanwhile."""
    try:
        if path.is_symlink() or path.is_file():
            st = path.lstat()
            return Unit(path, st.st_size, st.st_mtime)
        total, newest = 0, path.stat().st_mtime
        for dirpath, _dirs, files in os.walk(path):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                total += st.st_size
                newest = max(newest, st.st_mtime)
        return Unit(path, total, newest)
    except FileNotFoundError:
        return None


def scan_units(root: Path) -> list[Unit]:
    """Every unit under Gradio's temp ``root``: its hash folders, and each of our request folders separately."""
    units: list[Unit] = []
    for parent in (root, root / REQUEST_DIR_NAME):
        try:
            children = list(parent.iterdir())
        except FileNotFoundError:
            continue
        for child in children:
            if parent == root and child.name == REQUEST_DIR_NAME:
                continue
            unit = measure(child)
            if unit is not None:
                units.append(unit)
    return units


class DiskBudget:
    """Prunes the units under ``root()`` by age and total size. Never pruned, even over budget: a unit holding a
    protected file (:meth:`protect`: the examples), one in use by a running request (:meth:`in_use`, request folders
    made inside it included), or one written within ``grace_s`` (results about to be downloaded, queued uploads).
    """

    def __init__(
        self,
        max_bytes: int = int(DEFAULT_MAX_TEMP_GB * GB),
        max_age_s: float = DEFAULT_MAX_AGE_S,
        grace_s: float = DEFAULT_GRACE_S,
        root: Callable[[], Path] = gradio_temp_root,
        clock: Callable[[], float] = time.time,
        min_interval_s: float = 2.0,
    ) -> None:
        self.max_bytes, self.max_age_s, self.grace_s = int(max_bytes), float(max_age_s), float(grace_s)
        self._root, self._clock, self._min_interval = root, clock, float(min_interval_s)
        self._lock = threading.Lock()
        self._held: Counter[Path] = Counter()
        self._scopes = threading.local()
        self._last_prune = float("-inf")
        self._protected: list[Callable[[], Iterable[str] | None]] = []
        self._after_prune: list[Callable[[], bool]] = []

    def protect(self, files: Callable[[], Iterable[str] | None], after_prune: Callable[[], bool] | None = None) -> None:
        """Never prune a unit holding one of ``files()``; ``files()`` returning None unregisters it.

        ``after_prune`` runs after a prune removed something (e.g. to drop deleted paths from Gradio's file sets);
        it returns False once it is no longer needed.
        """
        self._protected.append(files)
        if after_prune is not None:
            self._after_prune.append(after_prune)

    def _protected_units(self) -> set[Path]:
        units: set[Path] = set()
        for source in list(self._protected):
            files = source()
            if files is None:
                self._protected.remove(source)
                continue
            units.update(u for u in map(self._unit_of, files) if u is not None)
        return units

    def root(self) -> Path:
        return self._root()

    def configure(self, max_bytes: int | None = None, grace_s: float | None = None) -> None:
        if max_bytes is not None:
            self.max_bytes = int(max_bytes)
        if grace_s is not None:
            self.grace_s = float(grace_s)

    # -- in use --------------------------------------------------------------------------------------------------
    def _unit_of(self, path: str | Path) -> Path | None:
        """The unit folder containing ``path`` (a file or folder under the root), or None if outside it."""
        root = self._root().resolve()
        try:
            rel = Path(path).resolve().relative_to(root)
        except (ValueError, OSError):
            return None
        parts = rel.parts
        if not parts:
            return None
        if parts[0] == REQUEST_DIR_NAME:
            return root / REQUEST_DIR_NAME / parts[1] if len(parts) > 1 else None
        return root / parts[0]

    def hold(self, path: str | Path) -> Path | None:
        """Mark the unit holding ``path`` in use until :meth:`release`; returns that unit (None if not ours)."""
        unit = self._unit_of(path)
        if unit is not None:
            with self._lock:
                self._held[unit] += 1
            touch(path)
        return unit

    def refresh(self, *values: object) -> int:
        """Mark the files named anywhere in ``values`` (paths, lists, dicts: a component's value) as just used.

        Gradio stores uploads and returned files by content hash and hands out an existing copy when the same
        content comes again (an example clicked twice, the same photo re-uploaded), without touching it; its age
        would then be the first copy's. Refreshing what a page is shown keeps it from being pruned as old.
        """
        count = 0
        for text in _strings(values):
            if self._unit_of(text) is not None and touch(text):
                count += 1
        return count

    def adopt(self, path: str | Path) -> None:
        """Hold ``path`` until the innermost :meth:`in_use` scope of this thread ends (no scope: nothing)."""
        stack = getattr(self._scopes, "stack", None)
        if stack:
            stack[-1].append(self.hold(path))

    def release(self, unit: Path | None) -> None:
        if unit is None:
            return
        with self._lock:
            self._held[unit] -= 1
            if self._held[unit] <= 0:
                del self._held[unit]

    @contextmanager
    def in_use(self, *paths: str | Path | None) -> Iterator[None]:
        """Hold ``paths`` (a request's inputs) and every request folder created in this thread until the end."""
        stack = self._scopes.__dict__.setdefault("stack", [])
        stack.append([])
        try:
            for p in paths:
                if p:
                    self.adopt(p)
            yield
        finally:
            for unit in stack.pop():
                self.release(unit)

    def is_held(self, path: Path) -> bool:
        with self._lock:
            return self._held.get(path, 0) > 0

    # -- pruning -------------------------------------------------------------------------------------------------
    def maybe_prune(self) -> PruneReport | None:
        """:meth:`prune`, at most once per ``min_interval_s`` (called on every request)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune < self._min_interval:
                return None
            self._last_prune = now
        return self.prune()

    def prune(self) -> PruneReport:
        """Remove our too-old request folders, then (over budget) the oldest units down to the low-water mark.

        Spares units in use, recently written or protected; Gradio's own files are aged by its ``delete_cache``.
        """
        now = self._clock()
        root = self._root().resolve()
        units = sorted(scan_units(root), key=lambda u: u.newest_mtime)
        total = sum(u.bytes for u in units)
        target = int(self.max_bytes * LOW_WATER) if total > self.max_bytes else self.max_bytes
        protected = self._protected_units()
        removed = freed = kept = 0
        for unit in units:
            ours = unit.path.parent.name == REQUEST_DIR_NAME and unit.path.parent.parent == root
            too_old = ours and now - unit.newest_mtime > self.max_age_s
            if not too_old and total <= target:
                continue
            if unit.path in protected or self.is_held(unit.path) or now - unit.newest_mtime < self.grace_s:
                kept += 1
                continue
            if _remove(unit.path):
                removed += 1
                freed += unit.bytes
                total -= unit.bytes
        if removed:
            self._after_prune = [hook for hook in self._after_prune if hook()]
            log.info("pruned %d temp folders (%.1f MB); %.1f MB left", removed, freed / 2**20, total / 2**20)
        if total > self.max_bytes:
            log.warning(
                "temp files use %.2f GB, over the %.2f GB budget: the rest is in use or younger than %.0f s",
                total / GB, self.max_bytes / GB, self.grace_s,
            )  # fmt: skip
        return PruneReport(removed, freed, total, kept)

    def start_background(self, interval_s: float = 60.0) -> threading.Thread:
        """Prune every ``interval_s`` even while no request arrives (uploads alone also fill the disk)."""

        def loop() -> None:
            while True:
                time.sleep(interval_s)
                try:
                    self.prune()
                except OSError:
                    log.exception("pruning temp files failed")

        thread = threading.Thread(target=loop, name="disk-budget", daemon=True)
        thread.start()
        return thread


def touch(path: str | Path) -> bool:
    """Set a file's modification time to now; False if it is not a file (or vanished)."""
    try:
        if not os.path.isfile(path):
            return False
        os.utime(path)
        return True
    except OSError:
        return False


def _strings(value: object, depth: int = 0) -> Iterator[str]:
    if depth > 6:
        return
    if isinstance(value, (str, Path)):
        yield str(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v, depth + 1)
    elif hasattr(value, "path"):  # gradio FileData-like objects
        yield from _strings(getattr(value, "path", None), depth + 1)


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except FileNotFoundError:
        return False
    except OSError:
        log.warning("could not remove %s", path, exc_info=True)
        return False


BUDGET = DiskBudget()


# Per-request temporary folders for downloads and videos, inside the pruned temp area.
def base_dir() -> Path:
    root = BUDGET.root() / REQUEST_DIR_NAME
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_request_dir(prefix: str = "req_") -> Path:
    """A fresh private folder for one request (and a chance to prune old ones)."""
    BUDGET.maybe_prune()
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir()))
    BUDGET.adopt(path)
    return path


# Content digests of files: the names of content-addressed files (model exports, shared photos).
def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (exports are ~140 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
