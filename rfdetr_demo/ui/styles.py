"""The page's CSS (passed to ``launch()``, where Gradio 6 takes it): view sizing, wide tables and the phone layout.

Why CSS and not a second layout: the desktop page keeps inputs left and results right, and on a narrow screen
(where Gradio stacks the two columns anyway) the same components are reordered so a visitor sees the result right
under its source (the photo, the camera) instead of below every control and the examples. ``display: contents``
lifts the two columns' children into the tab's row, where ``order`` places them; the ids are ``elem_id`` values of
the tab modules, listed in :data:`PHONE_ORDER`.
"""

from __future__ import annotations

# At or below this viewport width a two-column tab is one column with its result first (Gradio stacks its
# 320 + 480 px minimum-width columns a little below it anyway).
PHONE_MAX_WIDTH_PX = 860

# Per tab: (row id, (input column id, result column id), ids that come first on a phone, in this order).
# Everything else in the two columns follows them in its desktop order.
PHONE_ORDER: tuple[tuple[str, tuple[str, str], tuple[str, ...]], ...] = (
    ("image-row", ("image-inputs", "image-results"), ("input-image", "views-gallery", "image-summary")),
    ("webcam-row", ("webcam-inputs", "webcam-results"), ("webcam-input", "webcam-output", "webcam-readout")),
)

# The views keep their own aspect ratio instead of square letterboxed tiles, so the gallery (height max-content)
# shows every chosen view without an inner scroll box.
VIEW_CSS = """
#views-gallery .thumbnail-item { aspect-ratio: auto !important; }
#views-gallery .thumbnail-item img { height: auto !important; }
"""


def _phone_order_css() -> str:
    rules = []
    for row, columns, first in PHONE_ORDER:
        cols = ", ".join(f"#{c}" for c in columns)
        children = ", ".join(f"#{c} > *" for c in columns)
        rules.append(f"  #{row} {{ flex-direction: column; flex-wrap: nowrap; }}")
        rules.append(f"  {cols} {{ display: contents; }}")
        rules.append(f"  {children} {{ order: 10; width: 100%; min-width: 0; }}")
        rules += [f"  #{row} #{item} {{ order: {i}; }}" for i, item in enumerate(first, 1)]
    return "\n".join(rules)


PHONE_CSS = f"""
@media (max-width: {PHONE_MAX_WIDTH_PX}px) {{
{_phone_order_css()}
  #views-gallery .grid-container {{ grid-template-columns: minmax(0, 1fr) !important; }}
  #webcam-input, #webcam-input .image-frame {{ height: auto !important; }}
  /* A phone's first screen: a smaller intro and the four tabs on one row leave room for camera and result. */
  #page-intro p, #model-status p, #webcam-intro p {{ font-size: var(--text-sm); }}
  #main-tabs > .tab-wrapper button {{ padding: 0 var(--size-2); }}
}}
"""

APP_CSS = VIEW_CSS + PHONE_CSS
