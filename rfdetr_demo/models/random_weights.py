"""Untrained weights that still draw people: the ``--random-weights`` model for offline demos and tests.

rfdetr builds ``RFDETRKeypointPreview(pretrain_weights=None)`` with a 90-class head and zero-initialised keypoint
heads, so every joint has confidence 0 and nothing is ever drawn. Here the model gets the pretrained checkpoint's
class layout (one "person" class plus the no-object slot) and seeded keypoint heads: the joint positions are fitted
so that each detection carries a rough standing-person skeleton (plus noise from the image) and joint confidences
and covariance ellipses vary. The person score is a rank within the photo (:func:`ranked_person_score`): the best
three queries of every photo, frame and resolution score the same, so three people pass the default threshold on
any picture and a clip is tracked in every frame. The numbers mean nothing; the page can be demonstrated and every
drawing path exercised.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
# Class logit of a photo's best query, and logits lost per place in the photo's ranking. rfdetr fuses the class
# probability p with the joints' covariance into the shown score (sigmoid(log p + ~1.6) here), so the shown scores run
# 0.82, 0.78, 0.65, 0.35, ...: three people pass the default 0.5 on every photo, frame and size; more when lowered.
TOP_LOGIT = 2.7
LOGIT_PER_RANK = 1.6
BACKGROUND_LOGIT = -10.0  # the no-object slot never wins
# The class layer's no-object bias, which the ranked score never reads, marks a checkpoint written by
# :func:`write_random_checkpoint`: loaded with ``--checkpoint``, it gets the ranked score back (:func:`rank_if_marked`).
RANKED_MARK = -1234.5
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


@functools.cache
def ranked_person_score() -> type:
    """The class layer that scores each query against the best one of its photo (built lazily: torch loads late).

    A plain linear score of untrained features drifts with the picture and the input size (the same weights found
    7 people on one photo at 288² and none on another at 576²; scaled by the photo's spread, 1 to 40): the rank
    within the photo keeps the count fixed.
    Still an ``nn.Linear`` (same parameters, ``out_features``) so rfdetr's code that reads them keeps working.
    """
    import torch

    class RankedPersonScore(torch.nn.Linear):
        def forward(self, hs: torch.Tensor) -> torch.Tensor:
            """Logits ``(..., queries, classes)``: person by the query's rank in its photo, background constant."""
            z = torch.nn.functional.linear(hs, self.weight, self.bias)[..., :1]
            # How many queries score higher (0 for the best): comparisons rather than a sort, so every engine
            # (ONNX, OpenVINO) exports it exactly.
            # The count is summed in z's float type: onnxruntime-web's WebGPU backend runs no int64 ReduceSum (it
            # would put the sum and its Cast on the CPU), and 0/1 sums of a few hundred queries are exact in fp16.
            rank = (z.transpose(-1, -2) > z).to(z.dtype).sum(-1, keepdim=True)
            ranked = TOP_LOGIT - LOGIT_PER_RANK * rank
            rest = torch.full_like(z, BACKGROUND_LOGIT).expand(*z.shape[:-1], self.out_features - 1)
            return torch.cat([ranked, rest], -1)

    return RankedPersonScore


def seed_random_model(rf_model: Any, seed: int = DEFAULT_SEED) -> None:
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
        weight_xy, mean_features = _fit_template(rf_model, gen)
        last = layers[-1]
        last.weight.copy_(
            torch.randn(last.weight.shape, generator=gen).to(**like) * torch.tensor(ROW_NOISE, **like)[:, None]
        )
        last.weight[:2] = weight_xy
        last.weight[7] = 0.0  # no per-joint share of the person score: it comes from the ranked class layer alone
        target = torch.tensor(ROW_BIAS, **like)
        target[:2] = (torch.tensor(PERSON_TEMPLATE, **like) * torch.tensor(BOX_GROWTH, **like)).mean(0)
        last.bias.copy_(target - last.weight @ (mean_features + PASS_OFFSET))
        old = net.class_embed
        scorer = ranked_person_score()(old.in_features, old.out_features).to(**like)
        scorer.weight.copy_(torch.randn(scorer.weight.shape, generator=gen).to(**like))
        scorer.bias.zero_()
        scorer.bias[-1] = RANKED_MARK
        net.class_embed = scorer
        box_bias = net.bbox_embed.layers[-1].bias
        box_bias[2:] = torch.log(torch.tensor(BOX_GROWTH, **like))
        for head in getattr(net.transformer, "enc_out_keypoint_embed", []):
            head.load_state_dict(net.keypoint_embed.state_dict())


def _placement(net: Any) -> dict[str, Any]:
    """``device`` and ``dtype`` of the network's parameters, for the tensors made next to them."""
    param = next(net.parameters())
    return {"device": param.device, "dtype": param.dtype}


def _fit_template(rf_model: Any, gen: Any) -> tuple[Any, Any]:
    """Rows placing each joint on :data:`PERSON_TEMPLATE` and the mean features.

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
    return weight, mean[0, 0]


def rank_if_marked(rf_model: Any) -> bool:
    """A checkpoint of :func:`write_random_checkpoint` loaded as a plain model: its class layer ranked again."""
    import torch

    net = rf_model.model.model
    old = net.class_embed
    if type(old) is not torch.nn.Linear or old.out_features < 2 or float(old.bias.detach()[-1]) != RANKED_MARK:
        return False
    scorer = ranked_person_score()(old.in_features, old.out_features)
    scorer.load_state_dict(old.state_dict())
    net.class_embed = scorer
    rf_model.model.class_names = list(PERSON_CLASSES)
    return True


def write_random_checkpoint(path: str | Path, seed: int) -> Path:
    """A second ``--random-weights`` model to try "Compare with…" offline: seeded with ``seed``, saved the way
    rfdetr saves weights (``{"model": state_dict, "args": args}``), loaded with ``--checkpoint NAME=PATH``."""
    import torch
    from rfdetr import RFDETRKeypointPreview

    with seeded(seed):
        model = RFDETRKeypointPreview(pretrain_weights=None, num_classes=len(PERSON_CLASSES), device="cpu")
    seed_random_model(model, seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.model.model.state_dict(), "args": model.model.args}, out)
    return out
