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
#page-scripts { display: none !important; }
#views-gallery .thumbnail-item { aspect-ratio: auto !important; }
#views-gallery .thumbnail-item img { height: auto !important; }
"""

# Table cells wrap between words, never inside one (a narrow phone column read "p/r/e/c/i/s/i/o/n", "1.00/0"); a
# table too wide for its box scrolls sideways instead (Gradio's table viewport does), and small header text keeps
# the Persons table's nine columns inside 1366 px. File lists show whole names, wrapped, instead of "0000001… .json"
# twice. Labels stop before a block's corner buttons instead of running under them.
TABLE_CSS = """
.header-cell span.text.wrap, .body-cell span.text.wrap { word-break: normal; overflow-wrap: normal; }
.header-cell span.text { font-size: var(--text-sm); }
.block:has(> .icon-button-wrapper.top-panel) > label { max-width: calc(100% - 4.5rem); }
.file-preview .filename > span { display: none; }
.file-preview .filename::after { content: attr(aria-label); overflow-wrap: anywhere; min-width: 0; }
"""

# Evaluate: the 12 metrics columns fit the 798-px result column of a 1366-px screen at the small text size with
# tighter cells (measured in tests/test_layout_browser.py); plot titles start below the label chip and buttons;
# the worst-images gallery shows whole images and whole captions.
EVALUATE_CSS = """
#eval-metrics table, #eval-metrics .virtual-body, #eval-metrics span { font-size: var(--text-sm) !important; }
#eval-metrics .cell-wrap { padding: var(--size-1) var(--size-1-5) !important; }
#eval-metrics td { padding-left: 0 !important; padding-right: 0 !important; }
#eval-keypoint-plot .image-container, #eval-calibration-plot .image-container { padding-top: var(--size-10); }
#eval-gallery > label { position: relative; }
#eval-gallery .thumbnail-item { aspect-ratio: auto !important; }
#eval-gallery .thumbnail-item img { height: auto !important; }
#eval-gallery .caption-label {
  position: static; white-space: normal; overflow: visible; text-overflow: clip; max-width: none; margin: var(--size-1);
}
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
  #views-gallery .grid-container, #eval-gallery .grid-container {{ grid-template-columns: minmax(0, 1fr) !important; }}
  .file-preview .download {{ min-width: 5.5rem; }}
  #webcam-input, #webcam-input .image-frame {{ height: auto !important; }}
  /* A phone's first screen: a smaller intro, the four tabs on one row and no Webcam how-to (the camera box says
     "Click to Access Webcam" itself) leave room for the camera and its result. */
  #page-intro p, #model-status p {{ font-size: var(--text-sm); }}
  #webcam-intro {{ display: none; }}
  #main-tabs > .tab-wrapper button {{ padding: 0 var(--size-2); }}
}}
"""

APP_CSS = VIEW_CSS + TABLE_CSS + EVALUATE_CSS + PHONE_CSS
