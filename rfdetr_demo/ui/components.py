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

LIVE_JPEG_QUALITY = 80


class GuardedImage(gr.Image):
    """``gr.Image`` whose corrupt or empty uploads reach the handler, whose decoder says what is wrong with them.

    ``gr.Image`` opens the file with PIL while preprocessing, before our handler runs, and reports failures as a
    "could not preprocess input component" toast, outside the handler's way of showing errors. ``is_template``
    keeps the stock ``image`` frontend.
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:
            path = getattr(payload, "path", None)
            if not path:
                raise
            return path  # the handler's own decoder refuses it with the reason (and in its event's way)


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


# Gradio 6.31 follows an upload's progress with its own stand-in for EventSource, whose close() only logs
# "Method not implemented." (a console warning); Gradio calls it after every upload of a video or file. The stream
# has ended by then, so nothing is lost: only that exact warning is dropped from the console (a page script).
QUIET_UPLOAD_STREAM_WARNING = """
if (!window.rfdetrQuietUploadStream) {
  window.rfdetrQuietUploadStream = true;
  const warn = console.warn.bind(console);
  console.warn = (...args) => { if (!(args.length === 1 && args[0] === "Method not implemented.")) warn(...args); };
}
"""
