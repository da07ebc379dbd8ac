"""What the tabs share: controls with one set of defaults, handler binding, error mapping, sessions and Cancel.

Handlers are module-level functions whose first argument is the page's :class:`UiContext`; ``bind(handler, ctx)``
hands them to Gradio, tests call them directly.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import shutil
import tempfile
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from rfdetr_demo.config import Settings, on_spaces
from rfdetr_demo.defaults import (
    DEFAULT_KEYPOINT_THRESHOLD,
    DEFAULT_RESOLUTION,
    DEFAULT_THRESHOLD,
    RESOLUTION_PRESETS,
    examples_dir,
)
from rfdetr_demo.disk_budget import BUDGET
from rfdetr_demo.errors import UserError, log_user_error, report_internal
from rfdetr_demo.latency import LatencyBook, labelled_resolution_choices
from rfdetr_demo.registry import ModelRegistry
from rfdetr_demo.render import ALL_VIEWS, DEFAULT_VIEWS
from rfdetr_demo.service import ModelService, ModelUnavailable

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def page_error(exc: BaseException, where: str) -> gr.Error:
    """The one message the page shows for ``exc`` (see :mod:`rfdetr_demo.errors` for what is logged).

    Gradio prints the traceback of every ``gr.Error`` unless told not to; ours are logged here instead.
    """
    if isinstance(exc, gr.Error):
        if not getattr(exc, "reported", False):  # raised by a handler, not yet logged (a nested handler's is)
            log_user_error(exc, where)
        error = exc
        error.print_exception = False
    elif isinstance(exc, UserError):
        log_user_error(exc, where)
        error = gr.Error(str(exc), title="Cannot process this input", print_exception=False)
    elif isinstance(exc, ModelUnavailable):
        log_user_error(exc, where)
        error = gr.Error(str(exc), title="Model not ready", print_exception=False)
    else:
        error = gr.Error(report_internal(exc, where), title="Server error", print_exception=False)
    error.reported = True  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class Refused:
    """A page's state after a failed run: the input and the message shown (a repeated event repeats it)."""

    input: Any
    message: str


def in_place(
    handler: F, cleared: Callable[[], tuple[Any, ...]], input_name: str, message_at: int = -2, state_at: int | None = -1
) -> F:
    """``handler`` for a page event: a failure is shown in the output at ``message_at`` (the tab's summary).

    One message where the result would have been, instead of a toast: Gradio fires some events twice for one
    action (an image replacing another), which stacks two identical toasts, and a failed event marks every output
    with an "Error" badge. The other outputs are ``cleared()``; after a user error the state at ``state_at`` becomes
    :class:`Refused`, and the same input arriving again with it gets the same answer without a second run or log
    line. API endpoints keep raising (their clients need the exception).
    """

    def shown(message: str, state: Any = None) -> tuple[Any, ...]:
        out = list(cleared())
        out[message_at] = message
        if state_at is not None:
            out[state_at] = state
        return tuple(out)

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        arguments = inspect.signature(handler).bind_partial(*args, **kwargs).arguments
        given = arguments.get(input_name)
        state = next((v for v in arguments.values() if isinstance(v, Refused)), None)
        if state is not None and given and state.input == given:  # Gradio's duplicate event
            return shown(state.message, state)
        try:
            return handler(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - page_error logs it; the page shows it in place
            error = page_error(exc, handler.__name__)
            message = f"⚠️ **{error.title}.** {error.message}"
            refused = isinstance(exc.__cause__ or exc, UserError)  # a model not ready may be ready next time
            return shown(message, Refused(given, message) if refused else None)

    return wrapper  # type: ignore[return-value]


def user_errors(fn: F) -> F:
    """Every exception of ``fn`` becomes one ``gr.Error`` (see :func:`page_error`); the server keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = page_error(exc, fn.__name__)
            if error is exc:
                raise  # a nested handler's, already reported: its cause stays the original exception
            raise error from exc

    return wrapper  # type: ignore[return-value]


def parse_resolution(value: object, default: int | None = None) -> int:
    """Dropdown values may arrive as text from API clients; anything but a multiple of 24 gets a clear error.

    An empty value (a direct call that left the resolution out) means ``default`` when one is given.
    """
    from rfdetr_demo.predictor import validate_resolution

    if value in (None, "") and default is not None:
        return validate_resolution(int(default))
    try:
        number = float(str(value).strip())
    except ValueError:
        raise UserError(f"resolution must be a positive multiple of 24, got {value!r}") from None
    if not number.is_integer():
        raise UserError(f"resolution must be a positive multiple of 24, got {value!r}")
    return validate_resolution(int(number))


def resolution_choices(default: int, book: LatencyBook | None = None) -> list[tuple[str, int]]:
    """Presets plus the model default, labelled for speed vs accuracy and, once measured, with the latency here."""
    return labelled_resolution_choices(default, book or LatencyBook(), RESOLUTION_PRESETS)


def refreshed_resolution_choices(default: int, book: LatencyBook, count: int) -> tuple[gr.Dropdown, ...] | Any:
    """Updates for ``count`` resolution dropdowns with labels from the latency measured so far."""
    updates = tuple(gr.Dropdown(choices=resolution_choices(default, book)) for _ in range(count))
    return updates[0] if count == 1 else updates


@dataclass
class Controls:
    threshold: gr.Slider
    keypoint_threshold: gr.Slider
    resolution: gr.Dropdown
    views: gr.CheckboxGroup

    def __iter__(self) -> Iterator[gr.components.Component]:
        """The controls in handler-argument order: threshold, keypoint threshold, resolution, views."""
        return iter((self.threshold, self.keypoint_threshold, self.resolution, self.views))


def make_controls(
    ctx: UiContext,
    default_views: tuple[str, ...] = DEFAULT_VIEWS,
    threshold_info: str = "Minimum person score.",
    views_label: str = "Views (shown side by side)",
    views_info: str = "All views come from the same single inference.",
    elem_prefix: str | None = None,
    keypoint_info: str = "Hides joints below this confidence (display only, no re-run).",
) -> Controls:
    """The four controls every tab shares, built with their final settings (``elem_prefix`` names their ids)."""
    threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.01, label="Detection threshold", info=threshold_info,
        elem_id=f"{elem_prefix}-threshold" if elem_prefix else None,
    )  # fmt: skip
    keypoint_threshold = gr.Slider(
        0.0, 1.0, value=DEFAULT_KEYPOINT_THRESHOLD, step=0.01, label="Keypoint confidence threshold",
        info=keypoint_info,
    )  # fmt: skip
    resolution = resolution_dropdown(
        ctx, "Square side fed to the model (multiple of 24): lower is faster, higher finds smaller people."
    )
    views = gr.CheckboxGroup(
        choices=list(ALL_VIEWS), value=list(default_views), label=views_label, info=views_info,
        elem_id=f"{elem_prefix}-views" if elem_prefix else None,
    )  # fmt: skip
    return Controls(threshold, keypoint_threshold, resolution, views)


def resolution_dropdown(ctx: UiContext, info: str) -> gr.Dropdown:
    """A resolution picker with the latency-labelled presets, registered so the page refreshes its labels."""
    resolution = gr.Dropdown(
        choices=resolution_choices(ctx.default_resolution), value=ctx.default_resolution,
        label="Inference resolution", allow_custom_value=True, info=info,
    )  # fmt: skip
    ctx.resolution_dropdowns.append(resolution)
    return resolution


@dataclass
class UiContext:
    """What the handlers of every tab need: the one model service and the launch settings.

    While the page is built, ``resolution_dropdowns`` collects its resolution controls (the page refreshes their
    latency labels), ``on_unload`` the tabs' handlers for a closed page (``Blocks.unload``) and ``on_load`` the
    tabs' wiring of the page load (both registered once the tabs are built: a tab has no handle on its Blocks).
    """

    service: ModelService  # the default model's (status line, latency labels)
    settings: Settings = field(default_factory=Settings)
    resolution_dropdowns: list[gr.Dropdown] = field(default_factory=list)
    on_unload: list[Callable[..., Any]] = field(default_factory=list)
    on_load: list[Callable[[gr.Blocks], None]] = field(default_factory=list)  # wiring that needs the page's Blocks
    registry: ModelRegistry | None = None  # every model offered; None: ``service`` alone

    def __post_init__(self) -> None:
        if self.registry is None:
            self.registry = ModelRegistry.single(self.service)

    def model(self, name: str | None = None) -> ModelService:
        """The service of the model a request picked (empty: the default); loads it on first use."""
        assert self.registry is not None
        return self.registry.service(name)

    @property
    def default_resolution(self) -> int:
        """The launch setting, else the preview checkpoint's own (what the controls start at)."""
        return self.settings.resolution or DEFAULT_RESOLUTION

    @property
    def examples(self) -> Path:
        return examples_dir(self.settings.examples_dir)

    @property
    def cache_examples(self) -> bool:
        return examples_cached(self.settings)


def examples_cached(settings: Settings) -> bool:
    """Lazy example caching: on by default on Spaces (shared GPU time), off locally (results would go stale)."""
    if settings.cache_examples == "auto":
        return on_spaces()
    return settings.cache_examples == "lazy"


def bind(handler: Callable[..., Any], ctx: UiContext, **shown_defaults: Any) -> Callable[..., Any]:
    """``handler`` with its first argument (the context) filled in, for a Gradio event.

    A real function rather than ``functools.partial``: Gradio reads the name (API name), the docstring (API docs),
    the signature without the context and the type hints (``gr.Request`` injection) from it, and calls a
    generator handler as a stream only if the bound function is a generator function too. ``shown_defaults``
    replace parameter defaults in that signature, which is what the API page advertises and API clients send
    (e.g. this server's default resolution instead of the handler's ``None``).
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def bound(*args: Any, **kwargs: Any) -> Any:
            yield from handler(ctx, *args, **kwargs)

    else:

        @functools.wraps(handler)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return handler(ctx, *args, **kwargs)

    signature = inspect.signature(handler)
    parameters = [
        p.replace(default=shown_defaults[p.name]) if p.name in shown_defaults else p
        for p in list(signature.parameters.values())[1:]
    ]
    bound.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return bound


def keep_fresh(*shown: Any) -> None:
    """Mark the files a page was just given as used now (see :meth:`~rfdetr_demo.disk_budget.DiskBudget.refresh`)."""
    BUDGET.refresh(*shown)


def session_id(request: gr.Request | None) -> str:
    """The browser session a request comes from (every API client is one); ``"anonymous"`` for direct calls."""
    return getattr(request, "session_hash", None) or "anonymous"


@dataclass(frozen=True)
class CancelToken:
    """A run's cancel flag as a marker file: it pickles, so a GPU worker forked before the request sees it too."""

    path: Path

    def set(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a tmp cleaner may have removed an idle folder
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()


@functools.cache
def _cancel_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="rfdetr-demo-cancel-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


class CancelRegistry:
    """A tab's runs in progress, per session: its Cancel button and a closed page stop that session's runs only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, set[CancelToken]] = defaultdict(set)

    @contextmanager
    def running(self, request: gr.Request | None) -> Iterator[CancelToken]:
        """The token a run polls (set by :meth:`cancel`), registered while the run lasts."""
        session, token = session_id(request), CancelToken(_cancel_dir() / uuid.uuid4().hex)
        with self._lock:
            self._tokens[session].add(token)
        try:
            yield token
        finally:
            with self._lock:
                self._tokens[session].discard(token)
                if not self._tokens[session]:
                    del self._tokens[session]
                token.path.unlink(missing_ok=True)

    def cancel(self, request: gr.Request | None) -> int:
        """Ask the session's runs to stop; how many there were."""
        with self._lock:
            tokens = list(self._tokens.get(session_id(request), ()))
            for token in tokens:
                token.set()
        return len(tokens)

    def cancel_on_unload(self, request: gr.Request) -> None:
        """For ``Blocks.unload``: a closed or reloaded page stops its runs, so they do not hold the model."""
        self.cancel(request)
