"""Live video (webcam and server-side stream sources), free of Gradio.

``frame_handler`` turns one live frame into one annotated frame (un-mirroring, latest-frame-wins dropping, timing
stats); ``stream_policy`` decides which camera URLs the server may open and how (pinned address, whitelists);
``stream_source`` reads them in a background thread with reconnects.
"""
