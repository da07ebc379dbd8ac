"""Render the chosen keypoint views from one prediction.

:func:`render` is the one entry point (Image, Video and Webcam tabs, CLI): every view starts from the same RGB image
and the same normalised, threshold-applied ``sv.KeyPoints``; none re-runs the model. supervision annotators treat
numpy images as BGR, so each frame is flipped to BGR once, every view is drawn, and each output image is flipped
back once: an RGB array handed straight to them would come out with red and blue swapped.

Left and right joints are drawn in different colours (hidden through ``visible`` masks, never by slicing columns),
because a left/right swap is the error people most need to see in a pose demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import supervision as sv

from rfdetr_demo.errors import UserError
from rfdetr_demo.results.prediction import BOXES, CLASS_NAME, IDS, scale_keypoints, with_arrays
from rfdetr_demo.results.schema import KeypointSchema

LEFT_COLOR = sv.Color(66, 135, 245)  # blue
RIGHT_COLOR = sv.Color(245, 130, 48)  # orange
CENTER_COLOR = sv.Color(60, 200, 90)  # green
BOX_COLOR = sv.Color(163, 81, 251)  # supervision purple

VIEW_SKELETON = "Skeleton"
VIEW_VERTICES = "Vertices"
VIEW_LABELS = "Labels"
VIEW_ELLIPSES = "Uncertainty ellipses"
VIEW_HALO = "Uncertainty halo"
VIEW_BOXES = "Boxes"
VIEW_COMBINED = "Combined"

ALL_VIEWS: tuple[str, ...] = (
    VIEW_COMBINED,
    VIEW_SKELETON,
    VIEW_VERTICES,
    VIEW_LABELS,
    VIEW_ELLIPSES,
    VIEW_HALO,
    VIEW_BOXES,
)
DEFAULT_VIEWS: tuple[str, ...] = (VIEW_COMBINED, VIEW_SKELETON, VIEW_ELLIPSES, VIEW_LABELS)
# Drawing order when views are combined on one frame: soft overlays first, text last, so nothing hides the labels.
OVERLAY_ORDER = (VIEW_HALO, VIEW_ELLIPSES, VIEW_BOXES, VIEW_SKELETON, VIEW_COMBINED, VIEW_VERTICES, VIEW_LABELS)

LAYOUT_SEPARATE = "separate"  # one image per view (the Image tab's gallery)
LAYOUT_COMBINED = "combined"  # every view drawn over one image (video default)
LAYOUT_GRID = "grid"  # one tile per view, in one image (video grid, webcam)
LAYOUTS = (LAYOUT_SEPARATE, LAYOUT_COMBINED, LAYOUT_GRID)


def side_of(name: str) -> str:
    """'left', 'right' or 'center' from a keypoint name (COCO and most custom schemas use these prefixes)."""
    lowered = name.lower()
    if lowered.startswith(("left", "l_")):
        return "left"
    if lowered.startswith(("right", "r_")):
        return "right"
    return "center"


def short_label(name: str) -> str:
    """'left_shoulder' -> 'L shoulder': full names overlap on small people."""
    for prefix, short in (("left_", "L "), ("right_", "R ")):
        if name.lower().startswith(prefix):
            return short + name[len(prefix) :].replace("_", " ")
    return name.replace("_", " ")


_SIDE_COLOR = {"left": LEFT_COLOR, "right": RIGHT_COLOR, "center": CENTER_COLOR}


@dataclass(frozen=True)
class Style:
    """Sizes scaled to the image so strokes look the same on a thumbnail and a 4K photo."""

    thickness: int
    radius: int
    text_scale: float
    max_axis: float

    @classmethod
    def for_size(cls, width: int, height: int) -> Style:
        diag = float(np.hypot(width, height))
        return cls(
            thickness=max(1, round(diag / 500)),
            radius=max(2, round(diag / 260)),
            text_scale=round(max(0.3, min(1.2, diag / 2200)), 2),
            max_axis=max(8.0, diag / 40),
        )


@dataclass(frozen=True)
class _SideMasks:
    """Per-keypoint masks for the three colour groups, plus edges grouped the same way (1-based for supervision)."""

    masks: dict[str, np.ndarray]
    edges: dict[str, list[tuple[int, int]]]
    label_colors: list[sv.Color]
    bgr: list[tuple[int, int, int]]  # per keypoint, for direct OpenCV drawing on the BGR scene


@lru_cache(maxsize=8)
def _side_masks(schema: KeypointSchema) -> _SideMasks:
    sides = [side_of(n) for n in schema.names]
    masks = {s: np.array([x == s for x in sides], dtype=bool) for s in _SIDE_COLOR}
    edges: dict[str, list[tuple[int, int]]] = {s: [] for s in _SIDE_COLOR}
    for a, b in schema.edges:
        group = sides[a] if sides[a] == sides[b] else "center"
        edges[group].append((a + 1, b + 1))
    colors = [_SIDE_COLOR[s] for s in sides]
    return _SideMasks(masks, edges, colors, [c.as_bgr() for c in colors])


# Annotators are cheap to build but are created per (style, group); caching keeps per-frame work minimal.
@lru_cache(maxsize=64)
def _edge_annotator(color: sv.Color, thickness: int, edges: tuple[tuple[int, int], ...]) -> sv.EdgeAnnotator:
    return sv.EdgeAnnotator(color=color, thickness=thickness, edges=list(edges))


@lru_cache(maxsize=16)
def _halo_annotator(max_axis: float) -> sv.VertexEllipseHaloAnnotator:
    # One sigma level instead of the default three: measured ~3x cheaper per frame, and one 2-sigma halo reads well.
    return sv.VertexEllipseHaloAnnotator(sigma=(2.0,), color=(sv.Color(255, 220, 0),), opacity=0.55, max_axis=max_axis)


@lru_cache(maxsize=16)
def _ellipse_annotator(max_axis: float, thickness: int) -> sv.VertexEllipseOutlineAnnotator:
    return sv.VertexEllipseOutlineAnnotator(
        sigma=(1.0, 2.0), color=(sv.Color(0, 220, 0), sv.Color(255, 60, 60)), thickness=thickness, max_axis=max_axis
    )


def _draw_edges(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    groups = _side_masks(schema)
    for side, edges in groups.edges.items():
        if edges:
            scene = _edge_annotator(_SIDE_COLOR[side], style.thickness, tuple(edges)).annotate(scene, kp)
    return scene


def _shown_mask(kp: sv.KeyPoints) -> np.ndarray:
    """Joints to draw: visible and with finite coordinates."""
    return np.isfinite(kp.xy).all(axis=-1) & kp.visible


def _draw_vertices(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    """Filled joints coloured by side, in one pass over the shown joints only.

    supervision's ``VertexAnnotator`` takes one colour per call and tests every joint in Python, so three colour
    groups cost three full passes (~25 ms for 5 people at 720p, the largest post-model cost measured by
    ``bench/bench_image.py``); drawing the same circles directly with OpenCV costs well under 1 ms.
    """
    colors = _side_masks(schema).bgr
    for i, j in zip(*np.nonzero(_shown_mask(kp)), strict=True):
        x, y = kp.xy[i, j]
        cv2.circle(scene, (int(x), int(y)), style.radius, colors[j], thickness=-1, lineType=cv2.LINE_AA)
    return scene


def _draw_labels(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    # Each label box is centred on its joint and covers it, so no vertices are drawn underneath.
    annotator = sv.VertexLabelAnnotator(
        color=_side_masks(schema).label_colors,
        text_color=sv.Color.WHITE,
        text_scale=style.text_scale * 0.8,
        text_padding=max(2, style.radius),
        smart_position=False,
    )
    return annotator.annotate(scene, kp, labels=[short_label(n) for n in schema.names])


def _has_covariance(kp: sv.KeyPoints) -> bool:
    cov = kp.data.get("covariance") if kp.data else None
    return cov is not None and np.shape(cov) == (*kp.xy.shape[:2], 2, 2)


def _draw_halo(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    if _has_covariance(kp):
        shown = _shown_mask(kp)
        if shown.any():
            # The halo annotator blends in float over the whole image it is given; give it only the region the
            # halos can reach (joints ± max_axis) so its cost follows the people, not the frame size.
            pts = kp.xy[shown]
            pad = style.max_axis + 4
            h, w = scene.shape[:2]
            x0, y0 = (max(0, int(np.floor(v - pad))) for v in pts.min(axis=0))
            x1, y1 = min(w, int(np.ceil(pts[:, 0].max() + pad))), min(h, int(np.ceil(pts[:, 1].max() + pad)))
            if x1 > x0 and y1 > y0:
                shifted = with_arrays(kp, xy=kp.xy - np.array([x0, y0], dtype=np.float32))
                crop = np.ascontiguousarray(scene[y0:y1, x0:x1])
                scene[y0:y1, x0:x1] = _halo_annotator(round(style.max_axis, 1)).annotate(crop, shifted)
    return _draw_vertices(scene, kp, schema, style)


def _draw_ellipses(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    if _has_covariance(kp):
        scene = _ellipse_annotator(round(style.max_axis, 1), max(1, style.thickness // 2)).annotate(scene, kp)
    return _draw_vertices(scene, kp, schema, style)


def box_labels(kp: sv.KeyPoints) -> list[str]:
    """'person #3 0.91' per row: class name, display id (tracker id when tracking) and detection score."""
    rows = zip(kp.data[CLASS_NAME], kp.data[IDS], kp.detection_confidence, strict=True)
    return [f"{n or 'object'} #{i} {s:.2f}" for n, i, s in rows]


def _draw_boxes(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    if len(kp) == 0:
        return scene
    detections = sv.Detections(xyxy=kp.data[BOXES], class_id=np.zeros(len(kp), dtype=int))
    scene = sv.BoxAnnotator(color=BOX_COLOR, thickness=style.thickness).annotate(scene, detections)
    label = sv.LabelAnnotator(
        color=BOX_COLOR, text_scale=style.text_scale, text_padding=max(2, style.radius), smart_position=False
    )
    return label.annotate(scene, detections, labels=box_labels(kp))


def _draw_combined(scene: np.ndarray, kp: sv.KeyPoints, schema: KeypointSchema, style: Style) -> np.ndarray:
    scene = _draw_boxes(scene, kp, schema, style)
    scene = _draw_edges(scene, kp, schema, style)
    return _draw_vertices(scene, kp, schema, style)


Drawer = Callable[[np.ndarray, sv.KeyPoints, KeypointSchema, Style], np.ndarray]

VIEW_DRAWERS: dict[str, Drawer] = {
    VIEW_SKELETON: _draw_edges,
    VIEW_VERTICES: _draw_vertices,
    VIEW_LABELS: _draw_labels,
    VIEW_ELLIPSES: _draw_ellipses,
    VIEW_HALO: _draw_halo,
    VIEW_BOXES: _draw_boxes,
    VIEW_COMBINED: _draw_combined,
}


def normalize_views(views: Sequence[str] | str | None) -> list[str]:
    """Validate a view selection (API callers may send one string); empty means the defaults."""
    if views is None or views == "" or (not isinstance(views, str) and len(views) == 0):
        return list(DEFAULT_VIEWS)
    chosen = [views] if isinstance(views, str) else list(views)
    unknown = [v for v in chosen if v not in VIEW_DRAWERS]
    if unknown:
        raise UserError(f"unknown view(s) {unknown}; choose from {list(ALL_VIEWS)}")
    return [v for v in ALL_VIEWS if v in chosen]


def render(
    rgb: np.ndarray,
    key_points: sv.KeyPoints,
    schema: KeypointSchema,
    views: Sequence[str],
    layout: str = LAYOUT_SEPARATE,
    columns: int | None = None,
    max_size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """Draw ``views`` (as given by :func:`normalize_views`) of one prediction on an RGB uint8 image; RGB uint8 out.

    ``separate``: one image per view, in the order given. ``combined``: one image, views drawn in
    :data:`OVERLAY_ORDER`. ``grid``: one image of tiles (``columns`` per row), scaled to fit ``max_size`` first.
    """
    if layout not in LAYOUTS:
        raise UserError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    unknown = [v for v in views if v not in VIEW_DRAWERS]
    if unknown or not views:
        raise UserError(f"unknown or no view(s) {unknown}; choose from {list(ALL_VIEWS)}")
    if layout == LAYOUT_GRID and max_size is not None:
        rgb, key_points = _fit_grid(rgb, key_points, len(views), max_size)
    style = Style.for_size(rgb.shape[1], rgb.shape[0])
    # RGB -> BGR copy (supervision's numpy convention); cv2's SIMD swap is ~5x faster than a strided numpy copy.
    scene = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    drawn = len(key_points) > 0
    if layout == LAYOUT_COMBINED:
        for view in (v for v in OVERLAY_ORDER if v in views and drawn):
            scene = VIEW_DRAWERS[view](scene, key_points, schema, style)
        return [cv2.cvtColor(scene, cv2.COLOR_BGR2RGB)]
    tiles = [VIEW_DRAWERS[v](scene.copy(), key_points, schema, style) if drawn else scene.copy() for v in views]
    if layout == LAYOUT_GRID:
        tiles = [tile_views(tiles, columns)]
    return [cv2.cvtColor(tile, cv2.COLOR_BGR2RGB) for tile in tiles]


def _fit_grid(
    rgb: np.ndarray, key_points: sv.KeyPoints, n_views: int, max_size: tuple[int, int]
) -> tuple[np.ndarray, sv.KeyPoints]:
    """Scale a frame so its grid of ``n_views`` tiles fits ``max_size`` (never upscaled)."""
    cols = n_views if n_views <= 3 else int(np.ceil(np.sqrt(n_views)))
    rows = int(np.ceil(n_views / cols))
    s = min(1.0, max_size[0] / (cols * rgb.shape[1]), max_size[1] / (rows * rgb.shape[0]))
    if s >= 1.0:
        return rgb, key_points
    size = (max(2, int(rgb.shape[1] * s)), max(2, int(rgb.shape[0] * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale_keypoints(key_points, s, s)


def tile_views(tiles: Sequence[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Grid of equally sized tiles (the CLI's annotated image; :func:`render` uses it for the grid layout)."""
    if not tiles:
        raise ValueError("no tiles to arrange")
    n = len(tiles)
    cols = columns or (n if n <= 3 else int(np.ceil(np.sqrt(n))))
    rows = int(np.ceil(n / cols))
    h, w = tiles[0].shape[:2]
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return grid
