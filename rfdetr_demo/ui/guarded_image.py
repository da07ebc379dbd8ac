"""The Image tab's input component: ``gr.Image`` with clear messages for files that are not images.

In its own module because Gradio's component metaclass writes a ``.pyi`` stub next to the module defining any
component subclass (git-ignored here); keeping the class alone keeps that stub small.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from rfdetr_demo.images import ImageLoadError, load_image


class GuardedImage(gr.Image):
    """``gr.Image`` whose corrupt or empty uploads fail with our clear message instead of Gradio's internal one.

    ``gr.Image`` opens the file with PIL while preprocessing, before our handler runs, and reports failures as a
    "could not preprocess input component" error. A subclass rather than a patched instance: Gradio rebuilds a
    session's copy of a component from its class and constructor arguments (e.g. after an example click updates
    it), which silently dropped a per-instance patch. ``is_template`` keeps the stock ``image`` frontend.
    """

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:
            path = getattr(payload, "path", None)
            message = f"Could not read the uploaded file as an image ({exc})."
            if path:
                try:
                    load_image(path)
                except ImageLoadError as load_exc:
                    message = str(load_exc)
            raise gr.Error(message, title="Cannot process this input") from exc
