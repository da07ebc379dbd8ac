"""Several models behind one front: a :class:`ModelService` per model, at most N of them in memory (LRU).

Why in front of the service rather than inside it: each model keeps today's service (background load, status,
load errors for the page), so one-model code paths are unchanged; the registry only decides which of them hold
weights. A model that is loading holds no lock a request needs, so a loaded model keeps answering meanwhile; the
services share one inference lock, so the device still runs one inference at a time.

The bound holds while models load: a load is admitted (in its own background thread, before any weights are read)
only when fewer than N models hold weights, ready or loading; it unloads the least recently used ready one to make
room, or waits until a load in progress has finished and can be unloaded.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rfdetr_demo.errors import UserError
from rfdetr_demo.models import malloc_trim
from rfdetr_demo.models.service import Loader, ModelService

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


ROOM_POLL_S = 0.1  # how often a load waiting for room looks again (a load in progress becomes ready meanwhile)


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

    def __init__(
        self,
        loaders: Sequence[tuple[str, Loader]],
        max_loaded: int = DEFAULT_MAX_LOADED,
        planned_resolution: Callable[[str], int | None] | None = None,
    ) -> None:
        """``planned_resolution(name)``: the default resolution a model will have, known before it loads."""
        if not loaders:
            raise ValueError("a registry needs at least one model")
        self._setup(max_loaded, planned_resolution)
        lock = threading.Lock()
        self._services = {
            name: ModelService(self._admitted(labelled(load, name, self.loads), name), infer_lock=lock)
            for name, load in loaders
        }

    def _setup(self, max_loaded: int, planned: Callable[[str], int | None] | None) -> None:
        self.loads: dict[str, int] = {}
        self.max_loaded = max(1, int(max_loaded))
        self._used: dict[str, int] = {}  # name → use counter value (higher = more recent)
        self._clock = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._holding: set[str] = set()  # models with weights in memory or being read: ready, or admitted loads
        self._known: dict[str, Any] = {}  # name → last ModelInfo seen (facts for /models after an unload)
        self._planned = planned
        self._planned_seen: dict[str, int | None] = {}

    @classmethod
    def single(cls, service: ModelService, name: str | None = None) -> ModelRegistry:
        """A registry around an existing service (tests, one-model callers)."""
        registry = cls.__new__(cls)
        registry._setup(1, None)
        label = name or (service.status().info.name if service.status().info else "model")
        registry._services = {label: service}
        return registry

    def _admitted(self, loader: Loader, name: str) -> Loader:
        """``loader`` that first waits for room (in the load's own thread), and gives the room back if it fails."""

        def load() -> Any:
            self._admit(name)
            try:
                return loader()
            except BaseException:
                with self._room:
                    self._holding.discard(name)
                    self._room.notify_all()
                raise

        return load

    def _admit(self, name: str) -> None:
        """Block until ``name`` may read weights: fewer than ``max_loaded`` others hold any (LRU ready ones go)."""
        with self._room:
            while True:
                others = self._holding - {name}
                if len(others) < self.max_loaded:
                    self._holding.add(name)
                    return
                ready = sorted((n for n in others if self._services[n].status().state == "ready"), key=self._last_use)
                if ready:
                    self._unload(ready[0])
                    continue
                self._room.wait(ROOM_POLL_S)  # every other slot is a load in progress: wait until one is ready

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
        service.start()  # the load waits for room in its own thread (_admit)
        return service

    def _unload(self, victim: str) -> None:
        """Unload a ready model (the caller holds the lock) and give its memory back now."""
        info = self._services[victim].status().info
        if info is not None:
            self._known[victim] = info
        if self._services[victim].unload():
            log.info("unloaded model %s (least recently used; at most %d loaded)", victim, self.max_loaded)
        self._holding.discard(victim)

        gc.collect()  # the model's tensors go now, not at some later collection
        malloc_trim.release_freed_memory()

    def holding(self) -> list[str]:
        """Models with weights in memory or being read (never more than ``max_loaded``)."""
        with self._lock:
            return sorted(self._holding)

    def _planned_resolution(self, name: str) -> int | None:
        """The default resolution of a model not loaded yet (read once, without its weights)."""
        if self._planned is None:
            return None
        if name not in self._planned_seen:
            try:
                self._planned_seen[name] = self._planned(name)
            except Exception:  # a fact for a listing; the load itself reports real problems
                log.debug("planned resolution of %s failed", name, exc_info=True)
                self._planned_seen[name] = None
        return self._planned_seen[name]

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
                    default_resolution=info.default_resolution if info else self._planned_resolution(name),
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
