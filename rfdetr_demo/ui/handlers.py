"""How a tab's handler becomes a Gradio event: the page's :class:`UiContext`, ``bind``, and one error mapping.

Handlers are module-level functions whose first argument is the page's :class:`UiContext`; ``bind(handler, ctx)``
hands them to Gradio, tests call them directly. Failures become one message (``user_errors`` for toasts and API
clients, ``in_place`` for a message where the result would have been).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from rfdetr_demo.config import Settings, on_spaces
from rfdetr_demo.defaults import (
    DEFAULT_RESOLUTION,
    examples_dir,
)
from rfdetr_demo.disk import BUDGET
from rfdetr_demo.errors import UserError, log_user_error, report_internal
from rfdetr_demo.models.registry import ModelRegistry
from rfdetr_demo.models.service import ModelService, ModelUnavailable

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


# A browser-side handler (``js=CLEAR`` with no Python function) emptying a message at once when the visitor acts
# again: a server round trip could arrive after the action's own answer and blank it.
CLEAR = "() => ''"


def in_place(
    handler: F,
    cleared: Callable[[], Any],
    input_name: str,
    message_at: int | str = "summary",
    state_at: int | str | None = "state",
) -> F:
    """``handler`` for a page event: a failure is shown in the output at ``message_at`` (the tab's summary).

    One message where the result would have been, instead of a toast: Gradio fires some events twice for one
    action (an image replacing another), which stacks two identical toasts, and a failed event marks every output
    with an "Error" badge. The other outputs are ``cleared()``; after a user error the state at ``state_at`` becomes
    :class:`Refused`, and the same input arriving again with it gets the same answer without a second run or log
    line. API endpoints keep raising (their clients need the exception).
    """

    def shown(message: str, state: Any = None) -> Any:
        empty = cleared()  # outputs by name (a dict) or by position (a tuple)
        out: Any = dict(empty) if isinstance(empty, dict) else list(empty)
        out[message_at] = message
        if state_at is not None:
            out[state_at] = state
        return out if isinstance(out, dict) else tuple(out)

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
    """Mark the files a page was just given as used now (see :meth:`~rfdetr_demo.disk.DiskBudget.refresh`)."""
    BUDGET.refresh(*shown)


def session_id(request: gr.Request | None) -> str:
    """The browser session a request comes from (every API client is one); ``"anonymous"`` for direct calls."""
    return getattr(request, "session_hash", None) or "anonymous"


def keyed(handler: Callable[..., Any], components: dict[str, Any]) -> Callable[..., Any]:
    """``handler`` returning its outputs by name, for an event whose outputs are ``components`` (same names).

    Gradio takes a dict keyed by component, so a handler never depends on the order of an event's outputs; a name
    left out leaves its component as it is. The wrapper keeps the handler's name, docstring and signature (API docs).
    """

    @functools.wraps(handler)
    def by_component(*args: Any, **kwargs: Any) -> Any:
        shown = {components[name]: value for name, value in handler(*args, **kwargs).items()}
        # Gradio reads an empty dict as one output value: nothing to change is a skip for each component
        return shown or {component: gr.skip() for component in components.values()}

    return by_component
