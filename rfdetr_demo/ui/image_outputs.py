"""The Image tab's result components (views, tables, JSON, downloads, kept-run state), one place for their order.

Created unrendered so the tab can place the examples (which need them) above them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from rfdetr_demo.tables import KEYPOINT_COLUMNS, PERSON_COLUMNS

# A page session's KeptRun (its prediction, a few KB) is dropped after this long unused or when the page closes.
RUN_TTL_S = 1800


@dataclass
class ImageOutputs:
    """The tab's result components, created unrendered so the examples (which need them) can sit above them."""

    summary: gr.Markdown
    gallery: gr.Gallery
    persons: gr.Dataframe
    keypoints: gr.Dataframe
    result_json: gr.JSON
    files: gr.File
    state: gr.State

    @classmethod
    def create(cls) -> ImageOutputs:
        gallery = gr.Gallery(
            label="Views", show_label=False, columns=2, height="max-content", format="jpeg", object_fit="contain",
            preview=False, elem_id="views-gallery", interactive=False, render=False,
        )  # fmt: skip
        persons = gr.Dataframe(
            headers=PERSON_COLUMNS, label="Persons", interactive=False, elem_id="persons-table", wrap=True,
            render=False,
        )  # fmt: skip
        keypoints = gr.Dataframe(
            headers=KEYPOINT_COLUMNS, label="Keypoints", interactive=False, elem_id="keypoints-table", render=False
        )
        files = gr.File(
            label="Downloads (CSV · JSON · COCO results)", file_count="multiple", interactive=False, render=False,
            elem_id="image-files",
        )  # fmt: skip
        return cls(
            summary=gr.Markdown(elem_id="image-summary", render=False),
            gallery=gallery,
            persons=persons,
            keypoints=keypoints,
            result_json=gr.JSON(label="Result", render=False),
            files=files,
            state=gr.State(None, time_to_live=RUN_TTL_S),
        )

    def all(self) -> list[Any]:
        """In the order the handlers return them."""
        return [self.gallery, self.persons, self.keypoints, self.result_json, self.files, self.summary, self.state]
