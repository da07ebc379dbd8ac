"""Several models behind one front: a :class:`ModelService` per model, at most N of them in memory (LRU).

Why in front of the service rather than inside it: each model keeps today's service (background load, status,
load errors for the page), so one-model code paths are unchanged; the registry only decides which of them hold
weights. A model that is loading holds no lock a request needs, so a loaded model keeps answering meanwhile; the
services share one inference lock, so the device still runs one inference at a time.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rfdetr_demo.errors import UserError
from rfdetr_demo.service import Loader, ModelService

log = logging.getLogger(__name__)

DEFAULT_MAX_LOADED = 2


@dataclass(frozen=True)
class ModelRow:
    """What ``/models`` and the page's model line say about one model."""

    name: str
    state: str  # "not loaded" | "loading" | "ready" | "error"
    num_keypoints: int | None
    class_names: list[str]
    default_resolution: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.state,
            "num_keypoints": self.num_keypoints,
            "classes": [c for c in self.class_names if c != "__background__"],
            "default_resolution": self.default_resolution,
            "message": self.message,
        }


def labelled(loader: Loader, name: str, loads: dict[str, int]) -> Loader:
    """``loader`` whose model info carries the registry's label (page, exports and download names use it).

    ``loads`` counts the loads per model (a reload after an unload shows there).
    """

    def load() -> Any:
        loads[name] = loads.get(name, 0) + 1
        predictor, schema, info = loader()
        return predictor, schema, replace(info, name=name)

    return load


class ModelRegistry:
    """Named models, loaded on first use, the least recently used unloaded beyond ``max_loaded``."""

    def __init__(self, loaders: Sequence[tuple[str, Loader]], max_loaded: int = DEFAULT_MAX_LOADED) -> None:
        if not loaders:
            raise ValueError("a registry needs at least one model")
        lock = threading.Lock()
        self.loads: dict[str, int] = {}
        self._services = {
            name: ModelService(labelled(load, name, self.loads), infer_lock=lock) for name, load in loaders
        }
        self.max_loaded = max(1, int(max_loaded))
        self._used: dict[str, int] = {}  # name → use counter value (higher = more recent)
        self._clock = 0
        self._lock = threading.Lock()
        self._known: dict[str, Any] = {}  # name → last ModelInfo seen (facts for /models after an unload)

    @classmethod
    def single(cls, service: ModelService, name: str | None = None) -> ModelRegistry:
        """A registry around an existing service (tests, one-model callers)."""
        registry = cls.__new__(cls)
        label = name or (service.status().info.name if service.status().info else "model")
        registry._services = {label: service}
        registry.max_loaded, registry._used, registry._clock = 1, {}, 0
        registry._lock, registry._known, registry.loads = threading.Lock(), {}, {}
        return registry

    @property
    def names(self) -> list[str]:
        return list(self._services)

    @property
    def default(self) -> str:
        return self.names[0]

    def __len__(self) -> int:
        return len(self._services)

    def resolve(self, name: str | None) -> str:
        """``name``, or the default for an empty one; an unknown name is a clear error listing the choices."""
        if name in (None, ""):
            return self.default
        if str(name) not in self._services:
            raise UserError(f"unknown model {name!r}; choose one of: {', '.join(self.names)}")
        return str(name)

    def peek(self, name: str | None = None) -> ModelService:
        """The service without counting a use or loading anything (status lines, latency labels)."""
        return self._services[self.resolve(name)]

    def service(self, name: str | None = None) -> ModelService:
        """The service for a request: counts as a use and starts its load (unloading the LRU beyond the bound)."""
        key = self.resolve(name)
        service = self._services[key]
        with self._lock:
            self._clock += 1
            self._used[key] = self._clock
            if service.status().state == "idle":
                self._make_room(key)
                service.start()
        return service

    def _make_room(self, incoming: str) -> None:
        """Unload ready models, least recently used first, until ``incoming`` fits (loading ones are left)."""
        held = [n for n, s in self._services.items() if n != incoming and s.status().state in {"ready", "loading"}]
        ready = sorted((n for n in held if self._services[n].status().state == "ready"), key=self._last_use)
        freed = False
        while len(held) + 1 > self.max_loaded and ready:
            victim = ready.pop(0)
            info = self._services[victim].status().info
            if info is not None:
                self._known[victim] = info
            if self._services[victim].unload():
                log.info("unloaded model %s (least recently used; at most %d loaded)", victim, self.max_loaded)
                held.remove(victim)
                freed = True
        if freed:
            from rfdetr_demo import memory

            gc.collect()  # the model's tensors go now, not at some later collection
            memory.release_freed_memory()

    def _last_use(self, name: str) -> int:
        return self._used.get(name, 0)

    def rows(self) -> list[ModelRow]:
        out = []
        for name, service in self._services.items():
            st = service.status()
            info = st.info or self._known.get(name)
            if st.info is not None:
                self._known[name] = st.info
            state = "not loaded" if st.state == "idle" else st.state
            out.append(
                ModelRow(
                    name=name,
                    state=state,
                    num_keypoints=info.num_keypoints if info else None,
                    class_names=list(info.class_names) if info else [],
                    default_resolution=info.default_resolution if info else None,
                    message=st.message,
                )
            )
        return out

    def loaded(self) -> list[str]:
        return [n for n, s in self._services.items() if s.status().state == "ready"]


_shared: dict[object, ModelRegistry] = {}
_shared_lock = threading.Lock()


def shared_registry(key: object, build: Callable[[], ModelRegistry]) -> ModelRegistry:
    """The process-wide registry for ``key``: the app and the CLI load each model once."""
    with _shared_lock:
        registry = _shared.get(key)
        if registry is None:
            registry = _shared[key] = build()
        return registry
