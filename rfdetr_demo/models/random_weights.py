"""Untrained weights that still draw people: the ``--random-weights`` model for offline demos and tests.

rfdetr builds ``RFDETRKeypointPreview(pretrain_weights=None)`` with a 90-class head and zero-initialised keypoint
heads, so every joint has confidence 0 and nothing is ever drawn. Here the model gets the pretrained checkpoint's
class layout (one "person" class plus the no-object slot) and seeded keypoint heads: the joint positions are fitted
so that each detection carries a rough standing-person skeleton (plus noise from the image), joint confidences,
covariance ellipses and person scores vary, and a few boxes per photo pass the default thresholds. The numbers mean
nothing; the page can be demonstrated and every drawing path exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from rfdetr_demo.models.predictor import rfdetr_view

PERSON_CLASSES = ["person"]  # the preview checkpoint's class list; rfdetr maps the slot after it to __background__
DEFAULT_SEED = 0

# A standing person facing the camera, COCO joint order, in units of its box (x right, y down, origin at the centre).
PERSON_TEMPLATE = (
    (0.0, -0.40), (0.03, -0.43), (-0.03, -0.43), (0.07, -0.41), (-0.07, -0.41),
    (0.17, -0.25), (-0.17, -0.25), (0.25, -0.05), (-0.25, -0.05), (0.28, 0.12), (-0.28, 0.12),
    (0.11, 0.08), (-0.11, 0.08), (0.12, 0.27), (-0.12, 0.27), (0.12, 0.45), (-0.12, 0.45),
)  # fmt: skip

# Last keypoint-layer rows: (dx, dy, confidence logit, unused, log_l11, l21, log_l22, class-logit share).
# Bias and noise scale per row: most joints above 0.3 confidence, ellipses ~1 % of the image (σ), a person score that
# passes 0.5 for a few boxes per photo.
ROW_BIAS = (0.0, 0.0, 1.0, 0.0, 4.7, 0.0, 4.7, 0.0)
ROW_NOISE = (0.0, 0.0, 0.12, 0.0, 0.03, 1.0, 0.03, 0.0)
CLASS_SHARE = 0.1  # per-joint person-logit share (17 joints add up); COCO photos: 1-7 people at 288², 0-10 at 576²
JOINT_IDENTITY_GAIN = 30.0  # keypoint queries scaled up so each joint's features differ enough to place it
PASS_OFFSET = 10.0  # the keypoint MLP's hidden layers pass features through unchanged (ReLU never clips)
# Boxes and skeletons (width, height) times the encoder's small square proposals they are placed on: person-sized.
BOX_GROWTH = (3.0, 5.0)


@contextmanager
def seeded(seed: int = DEFAULT_SEED) -> Iterator[None]:
    """Build the untrained network from ``seed`` (the same weights every start) without touching the global RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seed_random_model(rf_model: Any, seed: int = DEFAULT_SEED, class_share: float = CLASS_SHARE) -> None:
    """Give an untrained ``RFDETRKeypointPreview`` (built with ``num_classes=1``) drawable, seeded output."""
    import torch

    rf_model.model.class_names = list(PERSON_CLASSES)
    net = rf_model.model.model
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same numbers whatever the device
    like = _placement(net)  # every tensor made here follows the network's device and dtype
    layers = net.keypoint_embed.layers
    with torch.no_grad():
        net.transformer.keypoint_query_initializer.queries.mul_(JOINT_IDENTITY_GAIN)
        for i, layer in enumerate(layers[:-1]):
            layer.weight.copy_(torch.eye(*layer.weight.shape, **like))
            layer.bias.fill_(PASS_OFFSET if i == 0 else 0.0)
        weight_xy, mean_features, person_axis = _fit_template(rf_model, gen)
        last = layers[-1]
        last.weight.copy_(
            torch.randn(last.weight.shape, generator=gen).to(**like) * torch.tensor(ROW_NOISE, **like)[:, None]
        )
        last.weight[:2] = weight_xy
        last.weight[7] = person_axis
        net.class_embed.weight.zero_()  # the person score comes from the keypoint rows alone
        target = torch.tensor(ROW_BIAS, **like)
        target[:2] = (torch.tensor(PERSON_TEMPLATE, **like) * torch.tensor(BOX_GROWTH, **like)).mean(0)
        target[7] = class_share
        last.bias.copy_(target - last.weight @ (mean_features + PASS_OFFSET))
        box_bias = net.bbox_embed.layers[-1].bias
        box_bias[2:] = torch.log(torch.tensor(BOX_GROWTH, **like))
        for head in getattr(net.transformer, "enc_out_keypoint_embed", []):
            head.load_state_dict(net.keypoint_embed.state_dict())


def _placement(net: Any) -> dict[str, Any]:
    """``device`` and ``dtype`` of the network's parameters, for the tensors made next to them."""
    param = next(net.parameters())
    return {"device": param.device, "dtype": param.dtype}


def _fit_template(rf_model: Any, gen: Any) -> tuple[Any, Any, Any]:
    """Rows placing each joint on :data:`PERSON_TEMPLATE`, the mean features, and the person-score axis.

    One forward pass on a seeded noise image records the keypoint features; a weighted least-squares fit (minimum
    response to what varies between queries, exact on the per-joint means) keeps the skeleton shape across images.
    The pass runs where the weights are now (the CPU at load: rfdetr moves them to the model's device on first use),
    through a view, so it neither moves them (on ZeroGPU a move to CUDA raises in the loader thread) nor mixes
    devices.
    """
    import torch

    net = rf_model.model.model
    on = _placement(net)["device"]
    seen: dict[str, Any] = {}
    hook = net.keypoint_embed.register_forward_hook(lambda _m, args, _o: seen.setdefault("hs", args[0].detach()))
    try:
        image = (torch.rand((160, 160, 3), generator=gen) * 255).to(torch.uint8).numpy()
        view = rfdetr_view(rf_model, device=on)
        view.predict([np.ascontiguousarray(image)], threshold=0.0, shape=(192, 192), include_source_image=False)
    finally:
        hook.remove()
    hs = seen["hs"][-1].reshape(-1, *seen["hs"].shape[-2:]).float()  # (queries, joints, dim)
    query_mean, joint_mean, mean = hs.mean(1, keepdim=True), hs.mean(0, keepdim=True), hs.mean((0, 1), keepdim=True)
    residual = (hs - query_mean - joint_mean + mean).reshape(-1, hs.shape[-1])
    spread = (query_mean - mean)[:, 0]
    cov = residual.T @ residual / len(residual) + spread.T @ spread / len(spread)
    cov_inv = torch.linalg.inv(cov + torch.eye(cov.shape[0], device=cov.device, dtype=cov.dtype))
    joints = (joint_mean - mean)[0]
    template = torch.tensor(PERSON_TEMPLATE, device=hs.device) * torch.tensor(BOX_GROWTH, device=hs.device)
    centred = template - template.mean(0)
    weight = centred.T @ torch.linalg.pinv(joints @ cov_inv @ joints.T) @ joints @ cov_inv
    # The person score varies along the direction in which queries differ most (within a photo, not between
    # photos): one logit of spread over a photo's queries, so a similar few pass the threshold on every photo.
    axis = torch.linalg.svd(spread, full_matrices=False).Vh[0]
    axis = axis / ((spread @ axis).std() * len(PERSON_TEMPLATE))
    return weight, mean[0, 0], axis
