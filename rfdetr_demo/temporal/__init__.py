"""What happens across frames: person ids, smoothing and keyframes, behind one stage protocol (:mod:`.stages`).

The video pipeline, the live frame handler and the in-browser engine's parameters all use :mod:`.stages`; a filter is
one module (:mod:`.kalman`, :mod:`.one_euro`) plus its entry in ``stages.SMOOTHERS``.
"""
