"""Live video (webcam and server-side stream sources), free of Gradio.

``frame_handler`` turns one live frame into one annotated frame (un-mirroring, latest-frame-wins dropping, timing
stats); ``stream_source`` validates camera URLs and reads them in a background thread with reconnects.
"""
