"""On-disk cache of exported models, keyed by the weights' hash, the resolution and the tool versions.

Keyed by the weights, not the checkpoint path: the same path can hold a retrained file, the pretrained default has
no path, and random weights differ on every start; hashing the state dict covers all three.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rfdetr_demo.models.predictor import rfdetr_view

log = logging.getLogger(__name__)

CACHE_ENV = "RFDETR_DEMO_ENGINE_CACHE"


def default_cache_root() -> Path:
    """``$RFDETR_DEMO_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/rfdetr_demo/engines`` (``~/.cache/...``)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rfdetr_demo" / "engines"


def weights_fingerprint(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 over parameter names, dtypes, shapes and bytes of a torch state dict."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        # view as bytes so dtypes numpy lacks (bf16) hash too
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def cache_key(fingerprint: str, resolution: int, versions: Mapping[str, str]) -> str:
    """Folder name for one export: weights hash + resolution + a short hash of the tool versions."""
    version_hash = hashlib.sha256(json.dumps(dict(versions), sort_keys=True).encode()).hexdigest()[:8]
    return f"{fingerprint[:20]}-r{int(resolution)}-v{version_hash}"


class ExportCache:
    """Directory of exported models: ``root/<key>/`` holds the artefacts and a ``meta.json``.

    Writes are atomic (export into a temporary sibling folder, then rename), so a crash or a second process never
    leaves a half-written model that a later start would try to load.
    """

    def __init__(self, root: Path | str | None = None, max_entries: int = 6) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        # Each export is the size of the model (docs/speed.md), and random weights add one per start: keep a few.
        self.max_entries = max_entries

    def lookup(self, key: str, artefact: str) -> Path | None:
        path = self.root / key / artefact
        meta = self.root / key / "meta.json"
        if not (path.is_file() and meta.is_file()):
            return None
        with contextlib.suppress(OSError):
            meta.touch()  # recently used entries survive pruning
        return path

    def entries(self) -> list[Path]:
        """Complete entries, least recently used first."""
        if not self.root.is_dir():
            return []
        found = [d for d in self.root.iterdir() if d.is_dir() and (d / "meta.json").is_file()]
        return sorted(found, key=lambda d: (d / "meta.json").stat().st_mtime)

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used entries beyond ``max_entries`` (never ``keep``); return what went."""
        removed = []
        entries = [e for e in self.entries() if e != keep]
        excess = len(entries) + (1 if keep is not None else 0) - self.max_entries
        for entry in entries[: max(0, excess)]:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        return removed

    def sweep_abandoned(self, older_than_s: float = 3600.0) -> list[Path]:
        """Delete half-written export folders left by a process killed mid-export.

        Only folders untouched for an hour go: an export takes a minute or two, so a younger one may belong to
        another process that is still writing it.
        """
        removed = []
        now = time.time()
        for tmp in self.root.glob(".*"):
            try:
                stale = tmp.is_dir() and now - tmp.stat().st_mtime > older_than_s
            except OSError:
                continue
            if stale:
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        return removed

    def get_or_create(
        self, key: str, artefact: str, build: Callable[[Path], Path], meta: Mapping[str, Any] | None = None
    ) -> tuple[Path, bool]:
        """Return ``(path to artefact, created)``; ``build(tmp_dir)`` must write the artefact and return its path."""
        found = self.lookup(key, artefact)
        if found is not None:
            return found, False
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep_abandoned()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            built = Path(build(tmp))
            if built.parent != tmp:
                raise RuntimeError(f"export wrote {built}, outside its folder {tmp}")
            if built.name != artefact:
                # keep the companion weights file (.bin) next to the renamed graph
                for sibling in tmp.glob(built.stem + ".*"):
                    sibling.rename(tmp / (Path(artefact).stem + sibling.suffix))
            (tmp / "meta.json").write_text(json.dumps(dict(meta or {}), indent=2, sort_keys=True))
            final = self.root / key
            try:
                tmp.rename(final)
            except OSError:
                if self.lookup(key, artefact) is None:  # not a lost race with another process: a real failure
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        path = self.lookup(key, artefact)
        if path is None:
            raise RuntimeError(f"export cache entry {key} is incomplete after writing it")
        self.prune(keep=path.parent)
        return path, True


def cpu_copy(net: Any) -> Any:
    """A deep copy of the torch module ``net`` with every parameter and buffer on the CPU; ``net`` is only read.

    Each tensor is copied straight to the CPU (through ``deepcopy``'s memo), so a network on a GPU is never
    duplicated in GPU memory and nothing initialises CUDA (on ZeroGPU, CUDA outside a lease raises).
    """
    import torch

    memo: dict[int, Any] = {}
    for tensor in [*net.parameters(), *net.buffers()]:
        cpu = tensor.detach().to("cpu", copy=True)
        if isinstance(tensor, torch.nn.Parameter):
            cpu = torch.nn.Parameter(cpu, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = cpu
    return copy.deepcopy(net, memo)


def export_model(model: Any, out_dir: Path, resolution: int, fmt: str, **options: Any) -> Path:
    """rfdetr's own ``export()`` of ``model`` at ``resolution``² into ``out_dir`` (the OpenVINO and ONNX engines).

    Exported from a CPU copy of the network, never from the live one: rfdetr's ``export()`` moves the network it is
    given to the CPU, copies it back to the model's device and moves it back again (rfdetr 1.11 ``detr.py``), outside
    any lock of ours. On the live model a request running meanwhile would meet CPU weights on a GPU server, and on
    ZeroGPU the move back to CUDA raises in this background thread. The copy costs one model's size in RAM for the
    export's duration.
    """
    import torch

    staged = rfdetr_view(model, model=cpu_copy(model.model.model), device=torch.device("cpu"), inference_model=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings from the export are expected and not actionable
        path = staged.export(output_dir=str(out_dir), format=fmt, shape=(resolution, resolution), output_name="model",
                             verbose=False, **options)  # fmt: skip
    return Path(path)


def lower_this_threads_priority(niceness: int = 10) -> None:
    """Let requests win the cores over a background export (Linux: ``nice`` applies per thread; no-op elsewhere).

    Only this thread and the threads it creates are lowered; OpenVINO's and torch's worker pools started earlier
    (at load) keep their priority, so requests still slow down while the conversion runs (docs/speed.md). 10, not
    19: under a steady stream of requests a 19 would starve the export for many minutes.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError) as exc:
        log.debug("could not lower the export thread's priority: %s", exc)
