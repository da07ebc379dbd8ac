"""Our two ``gr.Image`` subclasses: the Image tab's input, and the live views that arrive as inline JPEG.

Subclasses rather than patched instances: Gradio rebuilds a session's copy of a component from its class and
constructor arguments (e.g. after an example click updates it), which silently drops a per-instance patch, and a
tab builder then reads as a layout of components with their final settings. In their own module because Gradio's
component metaclass writes a ``.pyi`` stub next to the module defining any component subclass (git-ignored here);
keeping the classes alone keeps that stub small.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import gradio as gr
import numpy as np
from gradio.data_classes import ImageData
from PIL import Image

from rfdetr_demo.images import ImageLoadError, load_image

LIVE_JPEG_QUALITY = 80


class GuardedImage(gr.Image):
    """``gr.Image`` whose corrupt or empty uploads fail with our clear message instead of Gradio's internal one.

    ``gr.Image`` opens the file with PIL while preprocessing, before our handler runs, and reports failures as a
    "could not preprocess input component" error. ``is_template`` keeps the stock ``image`` frontend.
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            from rfdetr_demo.ui.common import page_error  # common imports the service; components stays light

            path = getattr(payload, "path", None)
            reason: Exception = exc
            if path:
                try:
                    load_image(path)
                except ImageLoadError as load_exc:
                    reason = load_exc  # the visitor's file: say what is wrong with it
            raise page_error(reason, "image upload") from exc


class LiveImage(gr.Image):
    """An output ``gr.Image`` that sends frames inline as JPEG data URLs instead of one cache file per frame.

    Per-frame files would fill the cache folder (10 frames/s for minutes) and cost an extra HTTP fetch each.
    """

    is_template = True

    def postprocess(self, value: Any) -> Any:
        if not isinstance(value, np.ndarray):
            return super().postprocess(value)
        buf = io.BytesIO()
        Image.fromarray(value).save(buf, format="JPEG", quality=LIVE_JPEG_QUALITY)
        return ImageData(url="data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
