"""Seeded random-weight checkpoints in rfdetr's own format (``{"model": state_dict, "args": args}``).

For the several-models tests: two K=17 checkpoints that differ (their seeds) and a K=5 one, each with keypoint
heads filled with seeded noise (:func:`fill_zero_keypoint_heads`) so they draw keypoints, at a small resolution.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.synthetic import fill_zero_keypoint_heads


def write_seeded_checkpoint(path: Path, seed: int, num_keypoints: int = 17, resolution: int = 192) -> Path:
    """Build an untrained model with ``seed``, fill its zero keypoint heads, save it the way rfdetr saves weights."""
    import torch
    from rfdetr import RFDETRKeypointPreview

    torch.manual_seed(seed)
    # Two classes, as a person fine-tune has: with the preview's 90-class head some untrained rows land on ids
    # without a name, which the app drops, and a seed could then find nobody.
    model = RFDETRKeypointPreview(
        pretrain_weights=None, resolution=resolution, device="cpu", num_keypoints_per_class=[num_keypoints],
        num_classes=2,
    )  # fmt: skip
    fill_zero_keypoint_heads(model.model.model, std=0.5, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.model.model.state_dict(), "args": model.model.args}, path)
    return path
