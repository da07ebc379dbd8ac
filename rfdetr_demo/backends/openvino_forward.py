"""The OpenVINO graph as the torch module rfdetr's ``predict`` expects: positional outputs → rfdetr's output dict.

Kept apart from the predictor (caching, background exports, fallbacks) because it is the one place that knows the
export's output layout; bench/bench_backend.py uses :func:`as_output_dict` to compare raw outputs with torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class EngineUnavailable(RuntimeError):
    """OpenVINO is not installed or cannot run this model; callers fall back to torch."""


def as_output_dict(outputs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Map the export's positional outputs (boxes, logits, keypoints) to the names rfdetr's post-processing reads."""
    import torch

    if len(outputs) != 3:
        raise EngineUnavailable(f"expected 3 outputs (boxes, logits, keypoints), got {len(outputs)}")
    boxes, logits, keypoints = outputs
    if boxes.shape[-1] != 4 or keypoints.ndim != 4:
        raise EngineUnavailable(f"unexpected output shapes {[o.shape for o in outputs]}")
    return {
        "pred_boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
        "pred_logits": torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)),
        "pred_keypoints": torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32)),
    }


def compiled_forward_module(compiled: Any) -> Any:
    """An ``nn.Module`` without parameters whose forward runs ``compiled`` (so rfdetr's eval/device checks pass)."""
    from torch import nn

    class OpenVINOForward(nn.Module):
        def forward(self, batch: Any) -> dict[str, Any]:
            data = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
            # The graph is compiled for batch 1 (static shapes run ~8 % faster than a dynamic batch axis, and on
            # CPU a batch costs about the same as its images one by one), so frames go through one at a time.
            parts = [compiled(data[i : i + 1]) for i in range(data.shape[0])]
            return as_output_dict([np.concatenate([p[out] for p in parts]) for out in compiled.outputs])

    return OpenVINOForward().eval()
