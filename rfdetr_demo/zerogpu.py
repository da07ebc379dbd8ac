"""ZeroGPU support: borrow a GPU per call on Hugging Face Spaces, and change nothing anywhere else.

On a ZeroGPU Space the process has no GPU of its own; a function decorated with ``spaces.GPU`` runs in a worker
that holds a GPU for at most ``duration`` seconds, and its arguments and results are pickled across that boundary.
Three consequences shape this module:

* the decorator must exist at import time (Spaces looks for ``@spaces.GPU`` functions at start-up), so the model
  call is decorated once, when :mod:`rfdetr_demo.service` is imported;
* what crosses the boundary must be small and picklable: the decorated function takes an integer handle for the
  predictor (never the service with its locks) plus numpy images, and returns ``sv.KeyPoints`` holding CPU numpy
  arrays only;
* the requested duration is estimated from the work (images x resolution²), because short requests get a GPU
  sooner and an underestimate aborts the call.

Without the ``spaces`` package (local runs, Docker, CI) :func:`gpu` returns the function itself; with ``spaces``
installed but off a ZeroGPU Space, ``spaces.GPU`` is itself a pass-through, so behaviour is identical.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import supervision as sv

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DURATION_S = 60
# Budget for one GPU lease: a fixed part (worker start, moving weights to the GPU) plus a per-image part at the
# preview checkpoint's resolution, scaled by pixel count. Generous on purpose: running out aborts the request.
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

_local = threading.local()


def inside_gpu_call() -> bool:
    """True while a :func:`gpu`-decorated function runs (nested ones then run directly, in the same lease)."""
    return getattr(_local, "depth", 0) > 0


def gpu(duration: Callable[..., float] | float | None = None) -> Callable[[F], F]:
    """Decorate a function that needs the GPU; ``duration`` is seconds or a function of the call's arguments.

    Returns the function unchanged when ``spaces`` is not installed. Otherwise the function is wrapped with
    ``spaces.GPU(duration=...)`` (a no-op off ZeroGPU); a call made from inside another decorated call skips the
    wrapper, so a whole-clip function can hold one lease while it calls the per-batch model function.
    """

    def decorate(func: F) -> F:
        spaces = _import_spaces()
        if spaces is None:
            return func

        @functools.wraps(func)
        def in_lease(*args: Any, **kwargs: Any) -> Any:
            _local.depth = getattr(_local, "depth", 0) + 1
            try:
                return func(*args, **kwargs)
            finally:
                _local.depth -= 1

        if duration is None:
            leased = spaces.GPU(in_lease)
        elif callable(duration):
            leased = spaces.GPU(duration=_clamped(duration))(in_lease)
        else:
            leased = spaces.GPU(duration=math.ceil(duration))(in_lease)

        @functools.wraps(func)
        def outer(*args: Any, **kwargs: Any) -> Any:
            if inside_gpu_call():
                return func(*args, **kwargs)
            return leased(*args, **kwargs)

        return outer  # type: ignore[return-value]

    return decorate


def _clamped(estimate: Callable[..., float]) -> Callable[..., int]:
    @functools.wraps(estimate)
    def seconds(*args: Any, **kwargs: Any) -> int:
        try:
            value = float(estimate(*args, **kwargs))
        except (TypeError, ValueError):  # an odd call shape must not fail the request: ask for the default
            return DEFAULT_DURATION_S
        return int(min(MAX_DURATION_S, max(1, math.ceil(value))))

    return seconds


def estimate_seconds(num_images: int, resolution: int) -> float:
    """GPU seconds to request for ``num_images`` at ``resolution`` (e.g. every sampled frame of a clip)."""
    scale = (max(int(resolution), 24) / 576.0) ** 2
    return BASE_DURATION_S + SECONDS_PER_IMAGE_576 * max(int(num_images), 0) * scale


# -- the model call ----------------------------------------------------------------------------------------------
# Predictors are passed across the lease boundary by handle: the worker is a fork of this process, so it finds the
# same object in this table without pickling the model (or the service's locks).
_predictors: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_strong: dict[int, Any] = {}


def _handle(predictor: Any) -> int:
    key = id(predictor)
    try:
        _predictors[key] = predictor
    except TypeError:  # objects without weak-reference support stay registered for the process lifetime
        _strong[key] = predictor
    return key


def _lookup(handle: int) -> Any:
    predictor = _predictors.get(handle)
    return predictor if predictor is not None else _strong[handle]


def _predict_seconds(handle: int, images: Sequence[np.ndarray], threshold: float, resolution: int) -> float:
    return estimate_seconds(len(images), resolution)


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


def _predict_raw(handle: int, images: Sequence[np.ndarray], threshold: float, resolution: int) -> list[sv.KeyPoints]:
    predictor = _lookup(handle)
    return [cpu_key_points(kp) for kp in predictor.predict(list(images), threshold, resolution)]


def make_predict_on_gpu() -> Callable[[int, Sequence[np.ndarray], float, int], list[sv.KeyPoints]]:
    """Build the decorated model call (tests rebuild it with a fake ``spaces`` module in place)."""
    return gpu(_predict_seconds)(_predict_raw)


_predict_on_gpu = make_predict_on_gpu()


def run_predictor(
    predictor: Any, images: Sequence[np.ndarray], threshold: float, resolution: int
) -> list[sv.KeyPoints]:
    """Run ``predictor.predict`` through the ZeroGPU lease when on a ZeroGPU Space, directly otherwise."""
    return _predict_on_gpu(_handle(predictor), list(images), float(threshold), int(resolution))
