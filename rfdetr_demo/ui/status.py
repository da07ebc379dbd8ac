"""The page's model status line: loading, ready (what runs where), or failed (one sentence, details folded away).

Rendering lives here, not in the service, because it is page text: the service reports a state, the model facts
and the load error as data, and the page decides how a visitor reads them.
"""

from __future__ import annotations

import html
import re

from rfdetr_demo.loading import failure_parts
from rfdetr_demo.service import ServiceStatus


def status_markdown(status: ServiceStatus) -> str:
    """One line for the page header (two with the random-weights warning)."""
    if status.state == "ready" and status.info is not None:
        i = status.info
        text = (
            f"**Model:** {i.name} · **source:** {i.source} · **device:** {i.device} · "
            f"**precision:** {i.precision} · **engine:** {i.engine} · **default resolution:** "
            f"{i.default_resolution}² · **keypoints:** {i.num_keypoints}"
        )
        if i.random_weights:
            text = (
                "⚠️ **Random weights: the model is untrained and every result is meaningless.** "
                "This mode only demonstrates the interface.\n\n" + text
            )
        return text
    if status.state == "error":
        return failure_markdown(status)
    return f"⏳ {status.message or 'Loading the model…'}"


def failure_markdown(status: ServiceStatus) -> str:
    """What failed and what to do in one line; the raw error (a URL, a traceback line) in a closed ``<details>``."""
    if status.error is None:
        summary, advice, detail = "The model could not be loaded.", "See the server log.", status.message
    else:
        summary, advice, detail = failure_parts(status.error)
    line = f"❌ **{summary}** {_flags_as_code(advice)}".rstrip()
    if not detail:
        return line
    # HTML-escaped inside <pre>: the detail is an exception text, never markup.
    return f"{line}\n\n<details><summary>Details</summary><pre>{html.escape(detail)}</pre></details>"


def _flags_as_code(text: str) -> str:
    """``--checkpoint /path/x.pth`` → code, so a visitor sees the exact option to pass (advice is plain text)."""
    return re.sub(r"(--[a-z][a-z-]*(?: /\S+)?)", r"`\1`", text)
