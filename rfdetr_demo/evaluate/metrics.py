"""Scores from pycocotools' COCOeval, and everything else read off its own OKS matching.

COCOeval computes OKS, matches detections to people greedily by score and accumulates AP/AR; nothing here redoes
any of that. Per-keypoint PCK and normalised errors, per-image OKS, recall/precision at a threshold and the
calibration residuals all come from the pairs COCOeval matched at OKS 0.5 (``evalImgs[...]["dtMatches"][0]``) and
the OKS values it computed (``ious``), so they describe exactly the detections that AP50 counted as right.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from rfdetr_demo.evaluate.dataset import EvalDataset, build_coco
from rfdetr_demo.evaluate.predictions import COVARIANCE_KEY
from rfdetr_demo.results.schema import MATCH_OKS

# COCOeval.summarize() order for iouType="keypoints".
STAT_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
PCK_ALPHAS: tuple[float, ...] = (0.05, 0.1)


@dataclass(frozen=True)
class Match:
    image_id: int
    category_id: int
    gt_id: int
    dt_id: int
    oks: float


@dataclass
class JointErrors:
    """Every labelled joint of every matched person: which keypoint, residual (gt − prediction), box diagonal."""

    keypoint: np.ndarray  # (M,) int
    residual: np.ndarray  # (M, 2) px
    diagonal: np.ndarray  # (M,) px, of the ground-truth box
    covariance: np.ndarray | None  # (M, 2, 2) px², when every matched prediction carries one

    @property
    def error(self) -> np.ndarray:
        return np.hypot(self.residual[:, 0], self.residual[:, 1])


def run_cocoeval(dataset: EvalDataset, results: list[dict[str, Any]]) -> Any:
    """Evaluate, accumulate and summarise with the dataset's OKS sigmas; pycocotools' prints are swallowed."""
    from pycocotools.cocoeval import COCOeval

    gt = dataset.coco
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            dt = gt.loadRes([dict(r) for r in results])  # loadRes writes ids/areas into the dicts: give it copies
        else:
            dt = build_coco({"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]})
        ev = COCOeval(gt, dt, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(dataset.sigmas, dtype=float)
        ev.params.imgIds = sorted(dataset.images)
        ev.params.catIds = list(dataset.category_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def summary_stats(ev: Any) -> dict[str, float | None]:
    """AP, AP50, … ARl; None where COCOeval had nothing to average (it reports -1)."""
    return {n: (None if v < 0 else round(float(v), 4)) for n, v in zip(STAT_NAMES, ev.stats, strict=True)}


def _all_area_evals(ev: Any) -> list[dict[str, Any]]:
    """The per-image evaluations for the 'all' area range at the largest maxDets (what AP averages)."""
    all_range = ev.params.areaRng[0]
    max_det = ev.params.maxDets[-1]
    return [e for e in ev.evalImgs if e is not None and e["aRng"] == all_range and e["maxDet"] == max_det]


def _oks_of(ev: Any, image_id: int, category_id: int, dt_id: int, gt_id: int) -> float:
    """The OKS COCOeval computed for this pair: ``ious`` rows are detections by score, columns are people in order."""
    dts = ev._dts[image_id, category_id]
    order = np.argsort([-d["score"] for d in dts], kind="mergesort")[: ev.params.maxDets[-1]]
    row = [dts[i]["id"] for i in order].index(dt_id)
    col = [g["id"] for g in ev._gts[image_id, category_id]].index(gt_id)
    return float(ev.ious[image_id, category_id][row, col])


def matches(ev: Any) -> list[Match]:
    """Pairs COCOeval matched at OKS 0.5 (crowd matches left out), with their OKS."""
    t = int(np.argmin(np.abs(ev.params.iouThrs - MATCH_OKS)))
    out = []
    for e in _all_area_evals(ev):
        for dt_id, gt_id, ignored in zip(e["dtIds"], e["dtMatches"][t], e["dtIgnore"][t], strict=True):
            if gt_id > 0 and not ignored:  # ignored: matched to a crowd region or outside the area range
                gt_id = int(gt_id)
                oks = _oks_of(ev, e["image_id"], e["category_id"], dt_id, gt_id)
                out.append(Match(e["image_id"], e["category_id"], gt_id, int(dt_id), oks))
    return out


def joint_errors(ev: Any, pairs: list[Match], num_keypoints: int) -> JointErrors:
    """Residuals of the labelled joints (COCO v > 0) of matched people, with the prediction's covariance if any."""
    kp, res, diag, covs = [], [], [], []
    with_cov = bool(pairs) and all(COVARIANCE_KEY in ev.cocoDt.anns[m.dt_id] for m in pairs)
    for m in pairs:
        gt = ev.cocoGt.anns[m.gt_id]
        dt = ev.cocoDt.anns[m.dt_id]
        g = np.asarray(gt["keypoints"], float).reshape(num_keypoints, 3)
        d = np.asarray(dt["keypoints"], float).reshape(num_keypoints, 3)
        labelled = np.flatnonzero(g[:, 2] > 0)
        kp.append(labelled)
        res.append(g[labelled, :2] - d[labelled, :2])
        diag.append(np.full(len(labelled), float(np.hypot(gt["bbox"][2], gt["bbox"][3]))))
        if with_cov:
            covs.append(np.asarray(dt[COVARIANCE_KEY], float)[labelled])
    if not kp:
        return JointErrors(np.zeros(0, int), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2, 2)) if with_cov else None)
    return JointErrors(
        np.concatenate(kp), np.concatenate(res), np.concatenate(diag), np.concatenate(covs) if with_cov else None
    )


def per_keypoint(joints: JointErrors, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """PCK at 0.05 / 0.1 of the ground-truth box diagonal and the mean normalised error, per keypoint."""
    ok = joints.diagonal > 0
    norm = np.where(ok, joints.error / np.where(ok, joints.diagonal, 1.0), np.nan)
    rows = []
    for j, name in enumerate(names):
        e = norm[(joints.keypoint == j) & ok]
        row: dict[str, Any] = {"keypoint": name, "n": len(e)}
        for a in PCK_ALPHAS:
            row[f"PCK@{a:g}"] = round(float(np.mean(e <= a)), 4) if len(e) else None
        row["mean_norm_error"] = round(float(np.mean(e)), 4) if len(e) else None
        rows.append(row)
    return rows


def detection_at(ev: Any, threshold: float) -> dict[str, Any]:
    """Recall and precision of the detections scoring at least ``threshold``, on COCOeval's OKS-0.5 matching.

    COCOeval matches greedily in score order, so the detections above a threshold are matched exactly as they
    would be if the lower-scoring ones had never been made.
    """
    t = int(np.argmin(np.abs(ev.params.iouThrs - MATCH_OKS)))
    tp = fp = people = 0
    for e in _all_area_evals(ev):
        people += int(np.sum(~np.asarray(e["gtIgnore"], bool)))
        above = np.asarray(e["dtScores"]) >= threshold
        counted = above & ~np.asarray(e["dtIgnore"][t], bool)
        matched = np.asarray(e["dtMatches"][t]) > 0
        tp += int(np.sum(counted & matched))
        fp += int(np.sum(counted & ~matched))
    return {
        "threshold": float(threshold),
        "people": people,
        "detections": tp + fp,
        "true_positives": tp,
        "recall": round(tp / people, 4) if people else None,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
    }


def per_image(ev: Any, dataset: EvalDataset, pairs: list[Match], threshold: float) -> list[dict[str, Any]]:
    """One row per image, at ``threshold``: people, detections, people found and their mean OKS (0 when missed).

    Like recall and precision, these describe what a person sees at that threshold: a person matched only by a
    detection scoring below it counts as missed.
    """
    oks_by_dt = {m.dt_id: m.oks for m in pairs}
    t = int(np.argmin(np.abs(ev.params.iouThrs - MATCH_OKS)))
    by_image: dict[int, dict[str, Any]] = {
        i: {"image_id": i, "file_name": img.file_name, "people": 0, "detections": 0, "found": 0, "oks_sum": 0.0}
        for i, img in dataset.images.items()
    }
    for e in _all_area_evals(ev):
        row = by_image[e["image_id"]]
        row["people"] += int(np.sum(~np.asarray(e["gtIgnore"], bool)))
        above = np.asarray(e["dtScores"]) >= threshold
        row["detections"] += int(np.sum(above & ~np.asarray(e["dtIgnore"][t], bool)))
        for dt_id, gt_id, keep in zip(e["dtIds"], e["dtMatches"][t], above, strict=True):
            if keep and gt_id > 0 and int(dt_id) in oks_by_dt:
                row["found"] += 1
                row["oks_sum"] += oks_by_dt[int(dt_id)]
    rows = []
    for row in by_image.values():
        oks_sum = row.pop("oks_sum")
        row["mean_oks"] = round(oks_sum / row["people"], 4) if row["people"] else None
        rows.append(row)
    return rows
