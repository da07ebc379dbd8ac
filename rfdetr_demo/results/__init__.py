"""What one inference gives and every way it is shown: :class:`~.prediction.Prediction` (normalised once),
the keypoint schema, the rendered views, the tables and the downloads. Gradio-free."""
