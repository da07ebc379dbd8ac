"""Inference engines behind the :class:`~rfdetr_demo.models.predictor.Predictor` seam.

Every engine here keeps rfdetr's own pre- and post-processing (``RFDETR.predict``) and swaps only the network
forward pass, so the page, exports and tests see the same ``sv.KeyPoints`` whichever engine runs.
"""
