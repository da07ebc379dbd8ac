"""The Image tab's "Share this result": a link ``?share=<id>`` that reopens the photo, its settings and its model.

Why not ``gr.DeepLinkButton``: Gradio keeps a deep link's state in its temp dir, which this app makes new per
process and Gradio empties at start, and ages its images out within 1-2 h; so such links died at every restart.
Here the photo and settings go to :class:`~rfdetr_demo.image.share.ShareStore` (``--share-dir``: lasting when the
host gives a lasting folder), and opening a link runs the model again on them (why: share_store.py). Opening is two
events: the page load reads the link (unqueued, instant for the pages without one) and sets the controls; then the
run, in the model's queue, shows the photo and its result.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from rfdetr_demo.config import Settings
from rfdetr_demo.disk import BUDGET, GB, new_request_dir
from rfdetr_demo.image.share import SharedInput, ShareError, ShareStore, safe_name
from rfdetr_demo.results.render import DEFAULT_VIEWS
from rfdetr_demo.ui.controls import Controls, parse_resolution
from rfdetr_demo.ui.handlers import UiContext, bind, in_place, keyed, user_errors

EXPIRED = (
    "⚠️ **This shared link has expired or does not exist.** Shared results are kept until the server restarts or "
    "its disk budget for them is used up; ask for a new link, or upload the photo."
)
OPENING = "⏳ Opening the shared photo with its settings and model…"
# The link box gets the id as "?share=<id>"; the page turns it into its own address (whatever proxy is in front)
# and copies it to the clipboard where the browser allows it (https or localhost; the box has a copy button).
LINK_JS = """(value) => {
  if (!value || !value.startsWith("?share=")) return value;
  const url = window.location.origin + window.location.pathname + value;
  navigator.clipboard?.writeText(url).catch(() => {});
  return url;
}"""

_stores: dict[tuple[str | None, float], ShareStore] = {}


def share_store(settings: Settings) -> ShareStore:
    """The process-wide store for these settings; without ``--share-dir`` a folder removed at exit."""
    key = (settings.share_dir, settings.share_max_gb)
    if key not in _stores:
        root = settings.share_dir
        if not root:
            root = tempfile.mkdtemp(prefix="rfdetr-demo-shares-")
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        _stores[key] = ShareStore(Path(root).expanduser(), int(settings.share_max_gb * GB))
    return _stores[key]


@user_errors
def share_result(
    ctx: UiContext, image: str | None, threshold: float, keypoint_threshold: float, resolution: Any,
    views: list[str] | None, model: str | None,
) -> Any:  # fmt: skip
    """Keep the shown photo and settings under a new id; the link box shows ``?share=<id>`` (the page completes it)."""
    if not image:
        raise gr.Error("Upload, paste or pick a photo first, then share it.", title="No image")
    assert ctx.registry is not None
    shared = SharedInput(
        model=ctx.registry.resolve(model), threshold=float(threshold), keypoint_threshold=float(keypoint_threshold),
        resolution=parse_resolution(resolution, ctx.default_resolution), views=list(views or DEFAULT_VIEWS),
        photo_name=safe_name(Path(image).name),
    )  # fmt: skip
    try:
        share_id = share_store(ctx.settings).save(image, shared)
    except ShareError as exc:
        raise gr.Error(str(exc), title="Cannot share") from exc
    return gr.Textbox(value=f"?share={share_id}", visible=True)


def read_link(ctx: UiContext, request: gr.Request) -> dict[str, Any]:
    """Page load: a link's settings and model into the controls, and its id to run (nothing without a link)."""
    share_id = request.query_params.get("share") if request is not None else None
    if share_id is None:
        return {}
    found = share_store(ctx.settings).load(share_id)
    if found is None:
        return {"summary": EXPIRED}
    shared, _photo = found
    assert ctx.registry is not None
    if shared.model not in ctx.registry.names:
        return {
            "summary": f"⚠️ This shared result used the model **{shared.model}**, which this server no longer offers."
        }
    return {
        "threshold": shared.threshold, "keypoint_threshold": shared.keypoint_threshold,
        "resolution": shared.resolution, "views": shared.views, "model": shared.model, "summary": OPENING,
        "pending": share_id,
    }  # fmt: skip


def open_link(ctx: UiContext, share_id: str | None, run: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The link's photo (a private copy for this page) and its result, run again with the stored settings.

    ``run`` is the Image tab's page run (its ``detect``), handed in so this panel does not import the tab.
    """
    if not share_id:
        return {}
    found = share_store(ctx.settings).load(share_id)
    if found is None:
        return {"summary": EXPIRED}
    shared, photo = found
    with BUDGET.in_use():  # the copy's folder is held until the run has read it
        copy = new_request_dir("share_") / shared.photo_name
        shutil.copyfile(photo, copy)
        outputs = run(ctx, str(copy), shared.threshold, shared.keypoint_threshold, shared.resolution,
                      shared.views, shared.model)  # fmt: skip
    return {"image": str(copy), **outputs}


def build_share_panel(ctx: UiContext, image: gr.Image, controls: Controls, model: gr.Dropdown) -> gr.Textbox:
    """The button and the link box (under the results); returns the box."""
    with gr.Row(elem_id="share-row"):
        button = gr.Button("Share this result", size="sm", scale=0, min_width=160, elem_id="share-button")
        link = gr.Textbox(
            label="Link to this photo, its settings and model", visible=False, interactive=False,
            buttons=["copy"], elem_id="share-link", scale=4,
        )  # fmt: skip
    button.click(
        bind(share_result, ctx), [image, *controls, model], link, api_visibility="private", queue=False
    ).success(None, link, link, js=LINK_JS, api_visibility="private", queue=False)
    return link


def wire_share_links(
    ctx: UiContext, demo: gr.Blocks, image: gr.Image, controls: Controls, model: gr.Dropdown, out: dict[str, Any],
    run: Callable[..., dict[str, Any]], cleared: Callable[[], dict[str, Any]],
) -> None:  # fmt: skip
    """Reopen ``?share=<id>`` when the page loads (see the module's docstring).

    ``out`` is the Image tab's result components by name; ``run`` and ``cleared`` its page run and cleared outputs.
    """
    pending = gr.Textbox(visible=False, elem_id="share-pending")
    on_load = {**vars(controls), "model": model, "summary": out["summary"], "pending": pending}
    demo.load(keyed(bind(read_link, ctx), on_load), None, list(on_load.values()), api_visibility="private", queue=False)
    shown = {"image": image, **out}

    def opened(share_id: str | None) -> dict[str, Any]:
        return open_link(ctx, share_id, run)

    page_open = in_place(opened, lambda: {"image": None, **cleared()}, "share_id")
    pending.change(
        keyed(page_open, shown), pending, list(shown.values()), api_visibility="private", concurrency_id="model"
    )
