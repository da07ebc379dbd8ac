"""What the page's in-browser engine needs to turn the ONNX outputs into the same keypoints as ``predict``.

The page runs rfdetr's own ONNX export with onnxruntime-web and decodes it in JavaScript (``web/src/decode.js``).
Everything model-specific comes from here, read off the loaded model exactly where ``RFDETR.predict`` reads it: the
top-k size and uncertainty-fusion weight of rfdetr's post-processor, the keypoints per class, the class name of
every logit slot (so the page drops the background by name, as
:func:`rfdetr_demo.results.prediction.drop_background` does), and the keypoint schema (any K). No Gradio here.
"""

from __future__ import annotations

import threading
from typing import Any

from rfdetr_demo.models.backends.onnx import OnnxExports
from rfdetr_demo.models.registry import ModelRegistry
from rfdetr_demo.results.render import _SIDE_COLOR, side_of
from rfdetr_demo.results.schema import KeypointSchema
from rfdetr_demo.temporal.stages import live_params

BACKGROUND = "__background__"


def slot_class_names(model: Any, num_slots: int) -> list[str]:
    """The class name ``predict`` gives each logit slot (``"__background__"`` or ``""`` for non-objects).

    Mirrors the three layouts of ``RFDETR.predict`` (rfdetr 1.11): COCO-pretrained sparse ids, legacy
    background-first keypoint schemas (``[0, 17]``: slot 0 is background) and 0-based fine-tunes.
    """
    from rfdetr.assets.coco_classes import COCO_CLASS_NAMES, COCO_CLASSES
    from rfdetr.utilities.keypoints import _is_bg_first_schema

    names = list(getattr(model, "class_names", []) or [])
    n = len(names)
    args = getattr(model.model, "args", None)
    num_logit_slots = int(getattr(args, "num_classes", n))
    per_class = list(getattr(args, "num_keypoints_per_class", []) or [])
    bg_first = _is_bg_first_schema(per_class)
    if num_logit_slots > n and names == list(COCO_CLASS_NAMES):
        by_id = {coco_id: names[i] for i, coco_id in enumerate(COCO_CLASSES) if i < n}
        return [by_id.get(slot, "") for slot in range(num_slots)]
    if bg_first:
        foreground = [slot for slot, k in enumerate(per_class) if k > 0]
        by_id = {slot: names[i] for i, slot in enumerate(foreground) if i < n}
        sentinel = 0
    else:
        by_id = dict(enumerate(names))
        sentinel = num_logit_slots
    return [BACKGROUND if slot == sentinel else by_id.get(slot, "") for slot in range(num_slots)]


def schema_dict(schema: KeypointSchema) -> dict[str, Any]:
    """Names, 0-based edges, each joint's side and the server's colours, so both modes draw alike."""

    return {
        "names": list(schema.names),
        "edges": [list(e) for e in schema.edges],
        "sides": [side_of(n) for n in schema.names],
        "colors": {side: color.as_hex() for side, color in _SIDE_COLOR.items()},
        "ellipse_colors": ["#00dc00", "#ff3c3c"],  # 1σ green, 2σ red, as render._ellipse_annotator
    }


def decode_params(model: Any, num_slots: int) -> dict[str, Any]:
    """rfdetr's post-processing constants for this model (read, not copied, so a fine-tune's values travel)."""
    post = model.model.postprocess
    return {
        "num_select": int(post.num_select),
        "trace_alpha": float(post.trace_alpha),
        "num_keypoints_per_class": [int(k) for k in post.num_keypoints_per_class],
        "class_names": slot_class_names(model, num_slots),
        "mean": [float(v) for v in model.means],
        "std": [float(v) for v in model.stds],
    }


def num_logit_slots(model: Any) -> int:
    """Width of the exported ``labels`` output: the classification head's outputs."""
    return int(model.model.model.class_embed.out_features)


class BrowserEngine:
    """The server side of the in-browser engine: one ONNX export per model and resolution, and the manifest.

    The chosen model (``model``, a name of ``registry``; empty: the default) is read lazily (it loads in the
    background); a predictor without an rfdetr model (the replay oracle) or a failed export makes the manifest say
    so in one sentence, and server mode stays as it is. Exports of a model that was unloaded are let go (they hold
    its weights); their files stay servable by digest.
    """

    def __init__(self, service: Any, cache: Any = None, registry: Any = None) -> None:

        self.service = service
        self.cache = cache
        self.registry = registry or ModelRegistry.single(service)
        self._exports: dict[str, Any] = {}  # model name → OnnxExports of its loaded model
        self._files: dict[str, Any] = {}  # sha256 → OnnxFile named in a manifest
        self._lock = threading.Lock()

    def _name(self, model: str | None) -> str:
        return self.registry.default if model in (None, "") else self.registry.resolve(model)

    def exports(self, model: str | None = None) -> Any:
        """The :class:`~rfdetr_demo.models.backends.onnx.OnnxExports` of a loaded model, or None."""

        name = self._name(model)
        predictor, _schema, _info = self.registry.peek(name).wait(0)
        net = getattr(predictor, "model", None)
        if net is None or not hasattr(net, "export"):
            return None
        with self._lock:
            for other in [n for n in self._exports if n != name]:
                if self.registry.peek(other).status().state != "ready":
                    del self._exports[other]
            found = self._exports.get(name)
            if found is None or found.model is not net:  # first use, or the model was reloaded
                found = self._exports[name] = OnnxExports(net, self.cache)
            return found

    def file(self, sha256: str) -> Any:
        """A served export by its digest (None: unknown or gone)."""
        with self._lock:
            known = self._files.get(sha256)
            live = list(self._exports.values())
        if known is not None and known.path.is_file():
            return known
        return next((f for e in live if (f := e.by_digest(sha256)) is not None), None)

    def manifest(self, resolution: int, url_prefix: str, model: str | None = None) -> dict[str, Any]:
        """What the page needs for ``model`` at ``resolution``; starts its load or export when there is none yet."""
        name = self._name(model)
        service = self.registry.service(name)  # a use of the model: it loads if it is not in memory
        status = service.status()
        if status.state != "ready":
            return {"state": "waiting", "message": "The model is still loading on the server; try again shortly."}
        exports = self.exports(name)
        if exports is None:
            return {"state": "unavailable", "message": "this server's model cannot be exported to run in a browser."}
        state, onnx_file = exports.status(resolution)
        if state == "absent":
            exports.start(resolution)
            state, onnx_file = exports.status(resolution)
        if state == "failed" or (state != "ready" and (resolution, "fp32") in exports.failed):
            return {"state": "failed", "message": f"the model could not be exported at {resolution}² for the browser."}
        fp16_state, fp16_file = exports.status(resolution, "fp16")
        if fp16_state == "absent":  # the fp32 file was made on its own (e.g. prepare()): convert it now
            exports.start(resolution)
            fp16_state, fp16_file = exports.status(resolution, "fp16")
        if onnx_file is None or fp16_state == "preparing":  # one answer with both files: the page chooses once
            return {"state": "preparing", "message": f"Preparing the browser model at {resolution}² (~20 s)…"}
        files = [f for f in (onnx_file, fp16_file) if f is not None]
        with self._lock:
            self._files.update((f.sha256, f) for f in files)
        _predictor, schema, info = service.wait(0)
        net = exports.model
        return {
            "state": "ready",
            "resolution": resolution,
            "model": _file_entry(onnx_file, url_prefix, info),
            "fp16": _file_entry(fp16_file, url_prefix, info) if fp16_file is not None else None,
            "decode": decode_params(net, num_logit_slots(net)),
            "schema": schema_dict(schema),
            "temporal": live_params(),  # the page's tracker and Kalman filter run with server mode's settings
        }


def _file_entry(onnx_file: Any, url_prefix: str, info: Any) -> dict[str, Any]:
    """URL (content-addressed), size and SHA-256 of one file, so the page shows the size before fetching it."""
    return {
        "url": f"{url_prefix}/model/{onnx_file.sha256}.onnx",
        "bytes": onnx_file.size,
        "sha256": onnx_file.sha256,
        "precision": onnx_file.precision,
        "info": info.as_dict(),
    }


def browser_engine_enabled(settings: Any) -> bool:
    """``--browser-engine on`` and no ``--auth``: the model file is served without Gradio's login, so a server
    behind a login keeps its weights to itself."""
    return settings.browser_engine == "on" and not settings.auth
