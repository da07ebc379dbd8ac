"""Where the model is: weights (:mod:`.loading`, :mod:`.catalog`) → a :class:`~.predictor.Predictor` built by an engine
(:mod:`.backends`) → one :class:`~.service.ModelService` per model, held by the :class:`~.registry.ModelRegistry`.

ZeroGPU leases (:mod:`.zerogpu`) and handing freed memory back (:mod:`.malloc_trim`) belong to running the model.
"""
