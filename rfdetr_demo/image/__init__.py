"""The Image feature, Gradio-free: decode an upload, run the model once, render; compare two models; share links."""
