"""RF-DETR Keypoint demo: model service, results, rendering, tables/exports and the Gradio UI."""

__version__ = "0.1.0"
