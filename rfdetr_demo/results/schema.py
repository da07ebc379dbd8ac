"""Keypoint schema: names and skeleton edges for the loaded checkpoint.

The pretrained preview checkpoint predicts the 17 COCO keypoints. Fine-tuned checkpoints may predict any number K
of keypoints, so names and edges come from an optional JSON/YAML file; without one we fall back to ``kp_0..kp_{K-1}``
and no edges rather than guessing a skeleton that would draw wrong limbs.

Edges are stored 0-based here. supervision's ``EdgeAnnotator`` wants 1-based pairs, so renderers convert with
:meth:`KeypointSchema.edges_one_based` in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# The official COCO person skeleton (1-based in the annotation file), including the ear-shoulder edges that
# supervision's built-in default skeleton lacks.
_COCO_SKELETON_ONE_BASED: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

# Per-keypoint OKS sigmas from the COCO evaluation code: the evaluator's tolerance per joint (and the size of the
# synthetic uncertainty in the replay oracle).
COCO_OKS_SIGMAS: tuple[float, ...] = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062,
    0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
# OKS sigma for keypoints of a K other than COCO's 17 when no schema gives one: the mean of COCO's 17 sigmas, i.e.
# the tolerance of an average COCO joint.
DEFAULT_SIGMA = round(sum(COCO_OKS_SIGMAS) / len(COCO_OKS_SIGMAS), 4)
# OKS at which two poses are "the same person": COCO's loosest AP threshold, COCOeval's first (the Evaluate tab's
# per-keypoint and per-image figures, the two-model comparison).
MATCH_OKS = 0.5


def oks_sigmas(k: int, *sources: tuple[KeypointSchema | None, str]) -> tuple[np.ndarray, str]:
    """The OKS sigmas for K keypoints and where they came from: the first ``(schema, label)`` that gives K of them,
    else COCO's (K=17), else :data:`DEFAULT_SIGMA` for every joint."""
    for schema, label in sources:
        if schema is not None and schema.sigmas is not None and len(schema.sigmas) == k:
            return np.asarray(schema.sigmas, float), label
    if k == len(COCO_OKS_SIGMAS):
        return np.asarray(COCO_OKS_SIGMAS, float), "COCO"
    return np.full(k, DEFAULT_SIGMA), f"default {DEFAULT_SIGMA} for every keypoint (mean of COCO's 17)"


# Joint angles (degrees at the middle joint) measured for the COCO schema: elbows, shoulders, hips, knees.
COCO_ANGLES: tuple[tuple[str, tuple[str, str, str]], ...] = (
    ("left_elbow", ("left_shoulder", "left_elbow", "left_wrist")),
    ("right_elbow", ("right_shoulder", "right_elbow", "right_wrist")),
    ("left_shoulder", ("left_elbow", "left_shoulder", "left_hip")),
    ("right_shoulder", ("right_elbow", "right_shoulder", "right_hip")),
    ("left_hip", ("left_shoulder", "left_hip", "left_knee")),
    ("right_hip", ("right_shoulder", "right_hip", "right_knee")),
    ("left_knee", ("left_hip", "left_knee", "left_ankle")),
    ("right_knee", ("right_hip", "right_knee", "right_ankle")),
)

Angle = tuple[str, tuple[int, int, int]]  # name, 0-based (end, vertex, end)


class SchemaError(ValueError):
    """Raised when a keypoint schema file is malformed or does not match the model."""


@dataclass(frozen=True)
class KeypointSchema:
    """Names of the K keypoints, the 0-based edges that connect them and, optionally, their OKS sigmas.

    ``sigmas`` (one per keypoint) are what the COCO evaluator needs to score a K other than COCO's 17: how far a
    joint may be off, relative to the person's size, and still count as right.
    """

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    sigmas: tuple[float, ...] | None = None
    # Named joint angles (0-based end, vertex, end); None: the COCO angles when the names are COCO's, else none.
    angles: tuple[Angle, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.names)
        for name, joints in self.angles or ():
            if len(joints) != 3 or not all(0 <= j < k for j in joints) or len(set(joints)) != 3:
                raise SchemaError(f"angle {name!r} needs three different keypoints within 0..{k - 1}, got {joints}")
        for a, b in self.edges:
            if not (0 <= a < k and 0 <= b < k):
                raise SchemaError(f"edge ({a}, {b}) refers to a keypoint outside 0..{k - 1}")
        if self.sigmas is not None:
            if len(self.sigmas) != k:
                raise SchemaError(f"the schema names {k} keypoints but gives {len(self.sigmas)} sigmas")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in self.sigmas):
                raise SchemaError("sigmas must be positive numbers")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def edges_one_based(self) -> list[tuple[int, int]]:
        """Edges in the 1-based convention of ``supervision.EdgeAnnotator``."""
        return [(a + 1, b + 1) for a, b in self.edges]

    @classmethod
    def coco(cls) -> KeypointSchema:
        return cls(COCO_KEYPOINT_NAMES, tuple((a - 1, b - 1) for a, b in _COCO_SKELETON_ONE_BASED))

    @classmethod
    def generic(cls, num_keypoints: int) -> KeypointSchema:
        """Fallback for an unknown K: numbered names and no edges (a guessed skeleton would mislead)."""
        return cls(tuple(f"kp_{i}" for i in range(num_keypoints)), ())

    def joint_angles(self) -> tuple[Angle, ...]:
        """The angles to measure: the schema's own, or elbows/shoulders/hips/knees for the COCO keypoints."""
        if self.angles is not None:
            return self.angles
        if self.names == COCO_KEYPOINT_NAMES:
            return tuple((n, tuple(self.names.index(j) for j in js)) for n, js in COCO_ANGLES)  # type: ignore[misc]
        return ()

    def matches(self, num_keypoints: int) -> bool:
        return self.num_keypoints == num_keypoints


def default_schema(num_keypoints: int) -> KeypointSchema:
    """COCO for K=17 (the preview checkpoint), numbered names otherwise."""
    return KeypointSchema.coco() if num_keypoints == len(COCO_KEYPOINT_NAMES) else KeypointSchema.generic(num_keypoints)


def _parse_edges(raw: Any, names: list[str], base: int) -> tuple[tuple[int, int], ...]:
    edges: list[tuple[int, int]] = []
    for item in raw or []:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise SchemaError(f"each skeleton edge must be a pair, got {item!r}")
        pair = []
        for end in item:
            if isinstance(end, str):
                if end not in names:
                    raise SchemaError(f"skeleton edge names unknown keypoint {end!r}")
                pair.append(names.index(end))
            elif isinstance(end, int) and not isinstance(end, bool):
                pair.append(end - base)
            else:
                raise SchemaError(f"skeleton edge ends must be names or integers, got {end!r}")
        edges.append((pair[0], pair[1]))
    return tuple(edges)


def _parse_angles(raw: Any, names: list[str], base: int) -> tuple[Angle, ...] | None:
    """``{"name": [end, vertex, end], ...}`` by keypoint names or indices (``index_base`` applies)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SchemaError("'angles' must map each angle's name to three keypoints [end, vertex, end]")
    out = []
    for name, joints in raw.items():
        if not isinstance(joints, (list, tuple)) or len(joints) != 3:
            raise SchemaError(f"angle {name!r} must list three keypoints [end, vertex, end], got {joints!r}")
        try:
            ends = _parse_edges([[joints[0], joints[1]], [joints[1], joints[2]]], names, base)
        except SchemaError as exc:  # its wording is about skeleton edges; say which angle is wrong
            raise SchemaError(f"angle {name!r}: {str(exc).replace('skeleton edge names', 'names')}") from exc
        out.append((str(name), (ends[0][0], ends[0][1], ends[1][1])))
    return tuple(out)


def schema_from_mapping(data: dict[str, Any]) -> KeypointSchema:
    """Build a schema from a parsed file.

    Accepted shapes:
    - ``{"keypoints": [names...], "skeleton": [[a, b], ...], "index_base": 0, "sigmas": [...]}`` (edges by index
      or by name; ``index_base`` defaults to 0; ``sigmas``, optional, one OKS sigma per keypoint; ``angles``,
      optional, ``{"left_knee": ["left_hip", "left_knee", "left_ankle"], ...}`` with the vertex in the middle),
    - a COCO annotation file or category (``categories[0].keypoints`` / ``skeleton``, 1-based as COCO defines it;
      an optional ``sigmas`` list in the category is read too).
    """
    if "categories" in data:
        cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
        if not cats:
            raise SchemaError("the COCO file has no category with keypoints")
        data = {**cats[0], "skeleton": cats[0].get("skeleton", []), "index_base": 1}
    elif "supercategory" in data and "keypoints" in data:
        data = {**data, "skeleton": data.get("skeleton", []), "index_base": 1}
    names = data.get("keypoints") or data.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SchemaError("the schema needs a non-empty 'keypoints' list of names")
    base = int(data.get("index_base", 0))
    sigmas = data.get("sigmas")
    if sigmas is not None and not isinstance(sigmas, list):
        raise SchemaError("'sigmas' must be a list with one number per keypoint")
    return KeypointSchema(
        tuple(names),
        _parse_edges(data.get("skeleton"), names, base),
        tuple(sigmas) if sigmas is not None else None,
        _parse_angles(data.get("angles"), names, base),
    )


def load_schema(path: str | Path) -> KeypointSchema:
    """Load a schema from a ``.json`` or ``.yaml``/``.yml`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read keypoint schema {p}: {exc}") from exc
    try:
        if p.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise SchemaError(f"cannot parse keypoint schema {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"keypoint schema {p} must be a mapping")
    return schema_from_mapping(data)
