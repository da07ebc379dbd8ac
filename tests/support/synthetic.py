"""Make a random-weight model's keypoint output informative, for engine-equivalence tests and benchmarks.

Why: rfdetr zero-initialises the last layer of every keypoint head, so an untrained model reports keypoint
confidence 0 and post-processing zeroes every keypoint. Comparing two engines on that output would pass trivially.
Filling those zero layers with small seeded noise gives varied keypoints and confidences through the same graph.
"""

from __future__ import annotations

from typing import Any


def fill_zero_keypoint_heads(module: Any, std: float = 0.05, seed: int = 0) -> int:
    """Fill all-zero keypoint-head parameters of ``module`` with N(0, std²) noise; return how many were filled."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    filled = 0
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "keypoint" in name and param.numel() and not bool(param.abs().max()):
                param.copy_(torch.randn(param.shape, generator=gen, dtype=param.dtype) * std)
                filled += 1
    return filled
