"""How two models' results on one photo differ: people found by each, pairs matched by OKS, joint shift in px.

Pure numpy on two shown (display-thresholded) results so it is testable without Gradio or a model. Matching is
greedy on OKS (best pair first, each person used once), the way COCOeval matches detections to ground truth; a
pair counts when its OKS reaches :data:`MATCH_OKS`. The scale is the mean of the two people's box areas, and only
joints shown in both results count. Two models with different keypoint schemas cannot be matched joint by joint:
the diff then says so instead of inventing a correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv

from rfdetr_demo.results.prediction import BOXES
from rfdetr_demo.results.schema import MATCH_OKS, KeypointSchema, oks_sigmas


@dataclass(frozen=True)
class Pair:
    a: int  # person index in A
    b: int  # person index in B
    oks: float
    shift_px: float | None  # mean distance of the joints shown in both (None: no joint shown in both)


@dataclass(frozen=True)
class Diff:
    name_a: str
    name_b: str
    people_a: int
    people_b: int
    same_schema: bool
    pairs: tuple[Pair, ...] = ()

    @property
    def mean_shift_px(self) -> float | None:
        shifts = [p.shift_px for p in self.pairs if p.shift_px is not None]
        return float(np.mean(shifts)) if shifts else None

    def line(self) -> str:
        """The diff as one line of Markdown for the page."""
        found = f"**{self.name_a}** found {self.people_a} · **{self.name_b}** found {self.people_b}"
        if not self.same_schema:
            return f"{found} · the keypoint schemas differ, so people are not matched joint by joint"
        shift = self.mean_shift_px
        shift_text = f"mean joint shift **{shift:.1f} px**" if shift is not None else "no joint shown in both"
        if not self.pairs:
            return f"{found} · no pair matched by OKS ≥ {MATCH_OKS}"
        mean_oks = float(np.mean([p.oks for p in self.pairs]))
        return (
            f"{found} · **{len(self.pairs)}** pairs matched by OKS ≥ {MATCH_OKS} (mean {mean_oks:.2f}) · {shift_text}"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "models": [self.name_a, self.name_b],
            "people": [self.people_a, self.people_b],
            "same_schema": self.same_schema,
            "pairs": [{"a": p.a, "b": p.b, "oks": round(p.oks, 4), "shift_px": p.shift_px} for p in self.pairs],
            "mean_shift_px": self.mean_shift_px,
        }


def sigmas_for(schema: KeypointSchema) -> np.ndarray:
    """The schema's OKS sigmas, COCO's for K=17, else the mean COCO sigma for every joint."""
    return oks_sigmas(schema.num_keypoints, (schema, "keypoint schema"))[0]


def _areas(kp: sv.KeyPoints) -> np.ndarray:
    boxes = np.asarray(kp.data[BOXES], float).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def oks_matrix(a: sv.KeyPoints, b: sv.KeyPoints, sigmas: np.ndarray) -> np.ndarray:
    """OKS of every (A person, B person) pair over the joints shown in both (0 where none is)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    d2 = ((a.xy[:, None, :, :] - b.xy[None, :, :, :]) ** 2).sum(-1)  # (Na, Nb, K)
    both = np.asarray(a.visible, bool)[:, None, :] & np.asarray(b.visible, bool)[None, :, :]
    area = (_areas(a)[:, None] + _areas(b)[None, :]) / 2.0 + np.spacing(1)
    var = (2.0 * sigmas) ** 2
    e = np.exp(-d2 / (2.0 * area[..., None] * var[None, None, :]))
    count = both.sum(-1)
    return np.where(count > 0, (e * both).sum(-1) / np.maximum(count, 1), 0.0)


def match(a: sv.KeyPoints, b: sv.KeyPoints, sigmas: np.ndarray, min_oks: float = MATCH_OKS) -> list[Pair]:
    """Greedy one-to-one matching, highest OKS first, pairs at or above ``min_oks``."""
    oks = oks_matrix(a, b, sigmas)
    pairs: list[Pair] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for flat in np.argsort(-oks, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, oks.shape)
        if oks[i, j] < min_oks:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(int(i))
        used_b.add(int(j))
        both = np.asarray(a.visible[i], bool) & np.asarray(b.visible[j], bool)
        shift = float(np.linalg.norm(a.xy[i][both] - b.xy[j][both], axis=-1).mean()) if both.any() else None
        pairs.append(Pair(int(i), int(j), float(oks[i, j]), shift))
    return pairs


def diff(
    name_a: str, shown_a: sv.KeyPoints, schema_a: KeypointSchema, name_b: str, shown_b: sv.KeyPoints,
    schema_b: KeypointSchema,
) -> Diff:  # fmt: skip
    """Compare two shown results of the same photo (each with its own schema)."""
    same = schema_a.names == schema_b.names
    pairs = tuple(match(shown_a, shown_b, sigmas_for(schema_a))) if same else ()
    return Diff(name_a, name_b, len(shown_a), len(shown_b), same, pairs)
