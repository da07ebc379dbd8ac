"""Gradio-free video pipeline: PyAV decode → batched inference → tracking/smoothing → render → H.264 encode."""
