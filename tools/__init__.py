"""Hand-run developer tools (not part of the app): the MJPEG camera simulator."""
