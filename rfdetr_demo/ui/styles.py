"""The page's CSS (passed to ``launch()``, where Gradio 6 takes it): view sizing and the phone layout.

Why CSS and not a second layout: the desktop page keeps inputs left and results right, and on a narrow screen
(where Gradio stacks the two columns anyway) the same components are reordered so a visitor sees the views right
under the photo instead of below every control and the examples. ``display: contents`` lifts the two columns'
children into the tab's row, where ``order`` places them; the ids are the ``elem_id`` values of
:mod:`rfdetr_demo.ui.image_tab`.
"""

from __future__ import annotations

# At or below this viewport width the Image tab is one column with the views first (Gradio stacks its
# 320 + 480 px minimum-width columns a little below it anyway).
PHONE_MAX_WIDTH_PX = 860

# The views keep their own aspect ratio instead of square letterboxed tiles, so the gallery (height max-content)
# shows every chosen view without an inner scroll box.
VIEW_CSS = """
#views-gallery .thumbnail-item { aspect-ratio: auto !important; }
#views-gallery .thumbnail-item img { height: auto !important; }
"""

PHONE_CSS = f"""
@media (max-width: {PHONE_MAX_WIDTH_PX}px) {{
  #image-row {{ flex-direction: column; flex-wrap: nowrap; }}
  #image-inputs, #image-results {{ display: contents; }}
  #image-inputs > *, #image-results > * {{ order: 10; width: 100%; min-width: 0; }}
  #image-inputs > #input-image {{ order: 1; }}
  #image-results > #views-gallery {{ order: 2; }}
  #image-results > #image-summary {{ order: 3; }}
  #views-gallery .grid-container {{ grid-template-columns: minmax(0, 1fr) !important; }}
}}
"""

APP_CSS = VIEW_CSS + PHONE_CSS
