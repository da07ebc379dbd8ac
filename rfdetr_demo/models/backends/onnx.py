"""ONNX exports of the loaded checkpoint for the in-browser engine (onnxruntime-web), cached on disk.

Why rfdetr's own ``export(format="onnx")``: it is the graph rfdetr tests for parity with ``predict``. Our one edit
(:func:`gather_topk_rows`) keeps the query selection on a WebGPU device and leaves the outputs bit-identical. One file
per resolution (the graph bakes the position embeddings for one shape), made in a background thread on first request
(~10-20 s on 2 cores, ~140 MB fp32), cached like the OpenVINO exports (:mod:`~rfdetr_demo.models.backends.cache`: keyed
by the weights' hash, the resolution and the tool versions), named by the SHA-256 of its bytes so the page can fetch it
at an immutable, content-addressed URL. Each resolution also gets an fp16 copy for WebGPU adapters with ``shader-f16``
(:mod:`rfdetr_demo.models.backends.onnx`, ~70 MB), cached the same way with the precision in its key; a failed fp16
conversion leaves the fp32 file in service.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rfdetr_demo.disk import file_sha256
from rfdetr_demo.models.backends.cache import (
    ExportCache,
    cache_key,
    export_model,
    lower_this_threads_priority,
    weights_fingerprint,
)
from rfdetr_demo.models.predictor import validate_resolution

log = logging.getLogger(__name__)

ARTEFACT = "model.onnx"
DIGEST_FILE = "model.onnx.sha256"
PRECISIONS = ("fp32", "fp16")
GRAPH_EDIT = "gather-topk-rows"  # in the cache key: files made before the edit are not reused


@dataclass(frozen=True)
class OnnxFile:
    """One cached export: where it is, its SHA-256 (the URL's name) and its size in bytes."""

    path: Path
    sha256: str
    size: int
    resolution: int
    precision: str = "fp32"


def _tool_versions() -> dict[str, str]:
    import rfdetr
    import torch

    try:
        import onnx

        onnx_version = onnx.__version__
    except ImportError:
        onnx_version = "missing"
    return {"format": "onnx", "rfdetr": getattr(rfdetr, "__version__", "?"), "torch": torch.__version__,
            "onnx": onnx_version}  # fmt: skip


class OnnxExports:
    """The ONNX file per resolution for one loaded rfdetr model: from the disk cache, else exported once.

    ``status(resolution, precision)`` never blocks: it answers ``ready`` (with the file), ``preparing`` (an export
    runs in the background; ``start`` began it) or ``failed`` (with one sentence). ``by_digest`` finds a file for
    the URL route. Files are keyed by ``(resolution, precision)``; fp16 is converted from the fp32 export.
    """

    def __init__(self, model: Any, cache: ExportCache | None = None) -> None:
        # Weakly: the exports outlive an unloaded model (their files stay servable), its weights must not.
        self._model = weakref.ref(model)
        self.cache = cache or ExportCache()
        self.export_count = 0
        self.failed: dict[tuple[int, str], str] = {}
        self._files: dict[tuple[int, str], OnnxFile] = {}
        self._pending: set[int] = set()
        self._fingerprint: str | None = None
        self._lock = threading.Lock()
        self._serial = threading.Lock()  # one export at a time: two would split the same cores, double the memory

    @property
    def model(self) -> Any:
        """The rfdetr model these files are exported from (None once it was unloaded and collected)."""
        return self._model()

    def _live_model(self) -> Any:
        model = self.model
        if model is None:
            raise RuntimeError("the model was unloaded; its exports can no longer be made")
        return model

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self._live_model().model.model.state_dict())
        return self._fingerprint

    def _export(self, resolution: int, precision: str, out_dir: Path) -> Path:
        if precision == "fp16":
            path = convert_to_fp16(self.prepare(resolution, "fp32").path, out_dir / ARTEFACT)
        else:
            path = export_model(self._live_model(), out_dir, resolution, "onnx")
            gather_topk_rows(path)
        (out_dir / DIGEST_FILE).write_text(file_sha256(path))
        with self._lock:
            self.export_count += 1
        return path

    def prepare(self, resolution: int, precision: str = "fp32") -> OnnxFile:
        """The export for ``resolution`` and ``precision``, made now if the cache lacks it (blocks for the export)."""
        resolution = validate_resolution(resolution)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        with self._lock:
            found = self._files.get((resolution, precision))
        if found is not None and found.path.is_file():
            return found
        with self._serial:
            versions = {**_tool_versions(), "graph": GRAPH_EDIT}
            if precision == "fp16":
                versions = {**versions, **converter_versions()}  # fp32 keys stay as they were
            key = cache_key(self.fingerprint, resolution, versions)
            meta = {"resolution": resolution, "weights_sha256": self.fingerprint, **versions}
            make = lambda d: self._export(resolution, precision, d)  # noqa: E731
            path, created = self.cache.get_or_create(key, ARTEFACT, make, meta)
        digest_file = path.parent / DIGEST_FILE
        digest = digest_file.read_text().strip() if digest_file.is_file() else file_sha256(path)
        size = path.stat().st_size
        onnx_file = OnnxFile(path=path, sha256=digest, size=size, resolution=resolution, precision=precision)
        with self._lock:
            self._files[(resolution, precision)] = onnx_file
            self.failed.pop((resolution, precision), None)
        state = "made" if created else "cached"
        log.info("ONNX export at %d² %s %s (%.0f MB)", resolution, precision, state, onnx_file.size / 1e6)
        return onnx_file

    def start(self, resolution: int) -> None:
        """Export ``resolution`` (fp32, then fp16) in a daemon thread unless each is ready or failed, or one runs."""
        resolution = validate_resolution(resolution)
        with self._lock:
            settled = set(self._files) | set(self.failed)
            if resolution in self._pending or all((resolution, p) in settled for p in PRECISIONS):
                return
            self._pending.add(resolution)
        threading.Thread(target=self._job, args=(resolution,), name=f"onnx-export-{resolution}", daemon=True).start()

    def _job(self, resolution: int) -> None:

        lower_this_threads_priority()
        try:
            for precision in PRECISIONS:
                if (resolution, precision) in self.failed:
                    continue
                try:
                    self.prepare(resolution, precision)
                except Exception as exc:  # noqa: BLE001 - recorded for the page; server mode is unaffected
                    log.warning("ONNX export at %d² (%s) failed: %s", resolution, precision, exc)
                    with self._lock:
                        self.failed[(resolution, precision)] = f"{exc.__class__.__name__}: {exc}"
                    if precision == "fp32":
                        break  # no fp16 without the fp32 file
        finally:
            with self._lock:
                self._pending.discard(resolution)

    def status(self, resolution: int, precision: str = "fp32") -> tuple[str, OnnxFile | None]:
        """``("ready", file)``, ``("preparing", None)``, ``("failed", None)`` or ``("absent", None)``."""
        with self._lock:
            if (resolution, precision) in self._files:
                return "ready", self._files[(resolution, precision)]
            if resolution in self._pending:
                return "preparing", None
            if (resolution, precision) in self.failed:
                return "failed", None
        return "absent", None

    def by_digest(self, sha256: str) -> OnnxFile | None:
        with self._lock:
            return next((f for f in self._files.values() if f.sha256 == sha256 and f.path.is_file()), None)


# fp16 copy of rfdetr's ONNX export, for WebGPU adapters with ``shader-f16`` (half the download, half the memory).
def converter_versions() -> dict[str, str]:
    """What the fp16 file depends on, for the cache key."""
    import onnxruntime

    return {"precision": "fp16", "onnxruntime": onnxruntime.__version__}


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """Write ``dst``, the fp16 graph of the fp32 ONNX file ``src`` (fp32 inputs and outputs), and check it loads."""
    import onnx
    import onnxruntime
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    del model
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # the CPU lacks fp16 kernels for some ops and says so per node: expected
    onnxruntime.InferenceSession(str(dst), options, providers=["CPUExecutionProvider"])
    return dst


# The one edit to rfdetr's graph: the two-stage query selection gathers the top-k proposals with
# GatherElements(data, Expand(Unsqueeze(TopK indices))), and onnxruntime-web's WebGPU provider runs neither Expand nor
# Cast on int64, so those nodes sat on the CPU: a GPU→CPU→GPU round trip per frame on a real GPU. With batch 1 (the
# export's fixed input) that is Gather(data, indices, axis=1) then Squeeze of the new axis, both on the GPU. The same
# rows are picked, so the outputs are bit-identical (checked here on every export, and by the parity tests).


def gather_topk_rows(path: Path) -> int:
    """Rewrite ``path`` in place: each GatherElements of TopK-selected rows becomes Gather + Squeeze; unused nodes
    left behind are dropped. Returns how many were rewritten (0: the file is left as it was)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    made_by = {out: node for node in graph.node for out in node.output}

    def constant(name: str) -> np.ndarray | None:
        node = made_by.get(name)
        if node is None or node.op_type != "Constant":
            return next((numpy_helper.to_array(t) for t in graph.initializer if t.name == name), None)
        return numpy_helper.to_array(node.attribute[0].t)

    rewritten = []
    for node in graph.node:
        expand = made_by.get(node.input[1]) if node.op_type == "GatherElements" else None
        unsqueeze = made_by.get(expand.input[0]) if expand is not None and expand.op_type == "Expand" else None
        topk = made_by.get(unsqueeze.input[0]) if unsqueeze is not None and unsqueeze.op_type == "Unsqueeze" else None
        axes = constant(unsqueeze.input[1]) if topk is not None and len(unsqueeze.input) > 1 else None
        axis = {a.name: a.i for a in node.attribute}.get("axis", 0)
        if topk is None or topk.op_type != "TopK" or unsqueeze.input[0] != topk.output[1] or axis != 1:
            continue
        if axes is None or [int(a) for a in axes.ravel()] not in ([-1], [2]):
            continue
        rewritten.append((node, topk.output[1]))
    if not rewritten:
        return 0
    axis_one = numpy_helper.from_array(np.array([1], dtype=np.int64), "gather_topk_rows_axis")
    graph.initializer.append(axis_one)
    for node, indices in rewritten:
        picked = f"{node.output[0]}_gathered"
        at = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(at, helper.make_node("Squeeze", [picked, axis_one.name], [node.output[0]],
                                               name=f"{node.name}_squeeze"))  # fmt: skip
        graph.node.insert(at, helper.make_node("Gather", [node.input[0], indices], [picked], axis=1,
                                               name=f"{node.name}_as_gather"))  # fmt: skip
    _drop_unused(graph)
    onnx.save(model, str(path))
    return len(rewritten)


def _drop_unused(graph: Any) -> None:
    """Remove nodes none of whose outputs is used (the Expand/Unsqueeze above and their shape arithmetic)."""
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)
