"""ZeroGPU support: one GPU lease per request on Hugging Face Spaces, and no change anywhere else.

On a ZeroGPU Space the process has no GPU of its own: a ``spaces.GPU`` function runs in a forked worker that holds
a GPU for at most ``duration`` seconds; each call waits in the GPU queue and counts against the visitor's quota, so
a whole request (one image, a whole clip, a whole evaluation) is one call. Arguments and results are pickled across
that boundary: what cannot be pickled (the model service, progress callbacks, cancel events) crosses as a handle to
this process's object table, which the forked worker inherits. Functions are decorated at import time (Spaces looks
for them at start-up); a call made inside a lease (any thread it started included) runs directly in that lease.

Without the ``spaces`` package (local runs, Docker, CI) :func:`gpu` returns the function itself; with ``spaces``
installed but off a ZeroGPU Space, ``spaces.GPU`` is itself a pass-through.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
import logging
import math
import pickle
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import supervision as sv

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)

DEFAULT_DURATION_S = 60
# Budget for one lease: a fixed part (worker start, weights to the GPU) plus a per-image part at the preview
# checkpoint's resolution, scaled by pixel count. Generous on purpose: running out aborts the request.
BASE_DURATION_S = 15.0
SECONDS_PER_IMAGE_576 = 0.25
MAX_DURATION_S = 120  # the most a visitor without a login may request


def _import_spaces() -> ModuleType | None:
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


# Imported as early as possible: on ZeroGPU `spaces` must patch torch before anything initialises CUDA.
_import_spaces()

_depth: contextvars.ContextVar[int] = contextvars.ContextVar("rfdetr_demo_gpu_lease", default=0)


def inside_gpu_call() -> bool:
    """True while a :func:`gpu` function runs in this context (threads started with the context count too)."""
    return _depth.get() > 0


def estimate_seconds(num_images: int, resolution: int) -> float:
    """GPU seconds to request for ``num_images`` at ``resolution`` (e.g. every sampled frame of a clip)."""
    scale = (max(int(resolution), 24) / 576.0) ** 2
    return BASE_DURATION_S + SECONDS_PER_IMAGE_576 * max(int(num_images), 0) * scale


def lease_seconds(estimate: float) -> int:
    """The duration actually asked for: whole seconds, at least 1, at most :data:`MAX_DURATION_S`."""
    return int(min(MAX_DURATION_S, max(1, math.ceil(estimate))))


# -- objects that cannot be pickled cross as handles -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Ref:
    key: int


_objects: dict[int, Any] = {}
_pinned: set[int] = set()
_objects_lock = threading.Lock()
_PLAIN = (int, float, str, bytes, bool, type(None), Path, np.ndarray)


def pin(obj: Any) -> None:
    """Keep ``obj`` in the object table for the process lifetime (objects made before the workers fork: services)."""
    with _objects_lock:
        _objects[id(obj)] = obj
        _pinned.add(id(obj))


def _crosses(value: Any) -> bool:
    if id(value) in _pinned:
        return False
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)) and all(isinstance(v, _PLAIN) for v in value):
        return True
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - anything unpicklable crosses by handle
        return False
    return True


def _to_refs(values: list[Any], added: list[int]) -> list[Any]:
    out = []
    for value in values:
        if _crosses(value):
            out.append(value)
            continue
        with _objects_lock:
            if id(value) not in _objects:
                _objects[id(value)] = value
                added.append(id(value))
        out.append(_Ref(id(value)))
    return out


def _resolve(value: Any) -> Any:
    if not isinstance(value, _Ref):
        return value
    found = _objects.get(value.key)
    if found is None:  # a worker forked before this object existed: degrade (no progress, no cancel)
        log.warning("object %s is not known in this GPU worker", value.key)
    return found


def _resolved(args: tuple, kwargs: dict) -> tuple[list[Any], dict[str, Any]]:
    return [_resolve(a) for a in args], {k: _resolve(v) for k, v in kwargs.items()}


@dataclasses.dataclass
class _Raised:
    """An exception raised in the lease, returned as a value so its type and message reach the request."""

    exc: Exception

    def __reduce__(self) -> tuple[Any, ...]:
        # Crossing from a ZeroGPU worker drops the traceback: keep it as a note for the request's log.
        self.exc.add_note("In the GPU lease:\n" + "".join(traceback.format_exception(self.exc)))
        return (_Raised, (self.exc,))


# -- the decorator -----------------------------------------------------------------------------------------------
class _GpuFunction:
    """A function run in one ``spaces.GPU`` lease (built at import; :func:`rebuild_leases` redoes it for tests)."""

    def __init__(self, func: Callable[..., Any], duration: Callable[..., float] | float | None) -> None:
        functools.update_wrapper(self, func)
        self.func, self.duration = func, duration
        self.leased: Callable[..., Any] | None = None
        self.build()

    def build(self) -> None:
        spaces = _import_spaces()
        if spaces is None:
            self.leased = None
            return
        func = self.func

        def in_lease(*args: Any, **kwargs: Any) -> Any:
            real_args, real_kwargs = _resolved(args, kwargs)
            token = _depth.set(_depth.get() + 1)
            try:
                return func(*real_args, **real_kwargs)
            except Exception as exc:  # noqa: BLE001 - handed back whole (spaces would keep only the class name)
                return _Raised(exc)
            finally:
                _depth.reset(token)

        functools.update_wrapper(in_lease, func)
        self.leased = spaces.GPU(duration=self._seconds)(in_lease)

    def _seconds(self, *args: Any, **kwargs: Any) -> int:
        if self.duration is None:
            return DEFAULT_DURATION_S
        if not callable(self.duration):
            return lease_seconds(self.duration)
        real_args, real_kwargs = _resolved(args, kwargs)
        try:
            return lease_seconds(float(self.duration(*real_args, **real_kwargs)))
        except (TypeError, ValueError, AttributeError):  # an odd call shape must not fail the request
            return DEFAULT_DURATION_S

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.leased is None or inside_gpu_call():
            return self.func(*args, **kwargs)
        added: list[int] = []
        try:
            values = _to_refs([*args, *kwargs.values()], added)
            ref_args, ref_kwargs = values[: len(args)], dict(zip(kwargs, values[len(args) :], strict=True))
            result = self.leased(*ref_args, **ref_kwargs)
        finally:
            with _objects_lock:
                for key in added:
                    if key not in _pinned:
                        _objects.pop(key, None)
        if isinstance(result, _Raised):
            raise result.exc
        return result


_functions: list[_GpuFunction] = []


def gpu(duration: Callable[..., float] | float | None = None) -> Callable[[F], F]:
    """Run the decorated function in one GPU lease; ``duration`` is seconds or a function of the call's arguments.

    Without ``spaces`` installed the wrapper calls the function directly.
    """

    def decorate(func: F) -> F:
        wrapped = _GpuFunction(func, duration)
        _functions.append(wrapped)
        return wrapped  # type: ignore[return-value]

    return decorate


def rebuild_leases() -> None:
    """Decorate every :func:`gpu` function again with the ``spaces`` module now importable (tests use a fake)."""
    for function in _functions:
        function.build()


def _to_numpy(value: Any) -> Any:
    """Torch tensors (possibly on the GPU) → CPU numpy; everything else unchanged."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


def cpu_key_points(kp: sv.KeyPoints) -> sv.KeyPoints:
    """A copy of ``kp`` whose arrays are CPU numpy (the only thing allowed back across the lease boundary)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kp):
        value = getattr(kp, f.name)
        if f.name == "data":
            data = value or {}
            values["data"] = {k: v if isinstance(v, list) else np.asarray(_to_numpy(v)) for k, v in data.items()}
        else:
            values[f.name] = None if value is None else np.asarray(_to_numpy(value))
    return sv.KeyPoints(**values)
