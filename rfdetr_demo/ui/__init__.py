"""Gradio UI: the Blocks page with one tab per input kind, all sharing one model service."""

from rfdetr_demo.ui.app import build_demo

__all__ = ["build_demo"]
