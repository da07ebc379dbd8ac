"""ZeroGPU: each request (an image, a clip, an evaluation) is one ``spaces.GPU`` lease; elsewhere a direct call.

A lease runs in a worker forked at its function's first call and reused: arguments cross pickled, services and
predictors as handles (:class:`Shared`); progress goes through ``gr.Progress``, which ``spaces`` forwards. See
docs/hosting.md.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
import math
import os
import sys
import traceback
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import supervision as sv

F = TypeVar("F", bound=Callable[..., Any])

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


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (it sets SPACES_ZERO_GPU): GPU work runs in forked, leased workers there."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "t", "true"}


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


# -- long-lived objects cross as handles --------------------------------------------------------------------------
_shared: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


class Shared:
    """Crosses into a lease as a handle, not a copy: the ZeroGPU worker forked after it was made holds it already.

    For services and predictors, made at start-up. Their weights reach the worker on the CPU: ``spaces`` moves to
    the GPU only tensors this process put on ``cuda`` (none: rfdetr defers its move), and rfdetr moves them at the
    first inference in each worker (``BASE_DURATION_S`` budgets it).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__new__(cls)
        _shared[id(obj)] = obj
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_shared_object, (id(self),))


def _shared_object(key: int) -> Any:
    try:
        return _shared[key]
    except KeyError:
        raise RuntimeError("the GPU worker started before this model was created; please retry") from None


# Messages of CUDA failures that older torch raises as a plain RuntimeError (newer: torch.AcceleratorError).
_CUDA_FAILURE_MARKS = ("CUDA error", "CUDA driver error", "CUBLAS_STATUS_", "CUDNN_STATUS_", "cuDNN error")


def is_cuda_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA failure that leaves the process's CUDA context unusable (illegal memory access,
    device-side assert, launch failure): after one, every later call in that process fails too.

    Out-of-memory is not one (the context survives; the next, smaller request can run).
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return False
    if torch is not None and isinstance(exc, getattr(torch, "AcceleratorError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in _CUDA_FAILURE_MARKS)


def _gpu_failed(exc: BaseException) -> Exception:
    """What the visitor is told after a CUDA failure in a lease: a ``gr.Error`` (``spaces`` passes its message
    through; any other exception reaches the page as its class name alone) that says a retry gets a new worker."""
    import gradio as gr  # lazy: only a ZeroGPU worker (spaces runs inside Gradio) gets here

    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return gr.Error(f"The GPU failed during this request ({first_line}); please try again: the next request gets a "
                    "fresh GPU worker.", title="GPU error")  # fmt: skip


@dataclasses.dataclass
class _Raised:
    """An exception raised in the lease, returned as a value so its type and message reach the request.

    Only for errors that leave the worker usable: returned as a value, the lease counts as a success and ``spaces``
    reuses the worker (``zero/wrappers.py``). CUDA failures are raised instead (:func:`is_cuda_failure`).
    """

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
            token = _depth.set(_depth.get() + 1)
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if is_cuda_failure(exc) and on_zero_gpu():  # raised: spaces fails the lease, forks a fresh worker
                    raise _gpu_failed(exc) from exc
                return _Raised(exc)  # handed back whole (spaces would keep only the class name)
            finally:
                _depth.reset(token)

        functools.update_wrapper(in_lease, func)
        self.leased = spaces.GPU(duration=self._seconds)(in_lease)

    def _seconds(self, *args: Any, **kwargs: Any) -> int:
        if self.duration is None:
            return DEFAULT_DURATION_S
        if not callable(self.duration):
            return lease_seconds(self.duration)
        try:
            return lease_seconds(float(self.duration(*args, **kwargs)))
        except (TypeError, ValueError, AttributeError):  # an odd call shape must not fail the request
            return DEFAULT_DURATION_S

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.leased is None or inside_gpu_call():
            return self.func(*args, **kwargs)
        result = self.leased(*args, **kwargs)
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
