"""What an evaluation hands back: ``metrics.json``, a per-image CSV, COCO results of model runs, plots, a table."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rfdetr_demo.evaluate.pipeline import Evaluation
from rfdetr_demo.evaluate.scoring import SetScore
from rfdetr_demo.results.exports import safe_stem

METRICS_NAME = "metrics.json"
PER_IMAGE_NAME = "per_image.csv"
TOP_LEVEL_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR")
TABLE_COLUMNS = ("set", *TOP_LEVEL_STATS, "recall", "precision", "1σ cover", "2σ cover", "ρ(σ, err)")
PER_IMAGE_COLUMNS = ("set", "image_id", "file_name", "people", "detections", "found", "mean_oks")


def metrics_dict(evaluation: Evaluation) -> dict[str, Any]:
    """The first set's headline figures at the top level (what scripts read), every set under ``sets``."""
    first = evaluation.first
    ds = evaluation.dataset
    return {
        **{n: first.stats[n] for n in TOP_LEVEL_STATS},
        "per_keypoint": first.per_keypoint,
        "calibration": first.calibration,
        "detection": first.detection,
        "sets": [s.as_dict() for s in evaluation.scores],
        "annotations": {
            "file": ds.name,
            "images": len(ds.images),
            "people": ds.num_people,
            "keypoints": list(ds.schema.names),
            "sigmas": [round(float(v), 4) for v in ds.sigmas],
            "sigma_source": ds.sigma_source,
            "notes": ds.notes,
        },
        "model": evaluation.model_info,
        "settings": evaluation.settings,
        "protocol": (
            "COCOeval (pycocotools) keypoints, OKS; AP/AR use every detection (20 best per image); recall, "
            "precision, per-image rows at the threshold; per-keypoint and calibration on COCOeval's OKS-0.5 matches"
        ),
    }


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


def table_rows(evaluation: Evaluation) -> list[list[str]]:
    """One row per prediction set, in :data:`TABLE_COLUMNS` order (strings, as shown)."""
    rows = []
    for s in evaluation.scores:
        cal = s.calibration or {}
        cover = cal.get("coverage", {})
        rows.append(
            [
                s.name,
                *(_fmt(s.stats[n]) for n in TOP_LEVEL_STATS),
                _fmt(s.detection["recall"]),
                _fmt(s.detection["precision"]),
                _fmt(cover.get("1sigma"), percent=True),
                _fmt(cover.get("2sigma"), percent=True),
                _fmt(cal.get("spearman_uncertainty_vs_error")),
            ]
        )
    return rows


def per_keypoint_rows(score: SetScore) -> list[list[Any]]:
    cal = {r["keypoint"]: r for r in (score.calibration or {}).get("per_keypoint", [])}
    rows = []
    for r in score.per_keypoint:
        c = cal.get(r["keypoint"], {})
        rows.append(
            [r["keypoint"], r["n"], _fmt(r["PCK@0.05"]), _fmt(r["PCK@0.1"]), _fmt(r["mean_norm_error"]),
             _fmt(c.get("1sigma"), True), _fmt(c.get("2sigma"), True)]
        )  # fmt: skip
    return rows


PER_KEYPOINT_COLUMNS = ("keypoint", "joints", "PCK@0.05", "PCK@0.1", "mean norm. error", "1σ cover", "2σ cover")


def text_table(evaluation: Evaluation) -> str:
    """The metrics table as aligned text for the terminal, with the threshold and calibration targets."""
    rows = [list(TABLE_COLUMNS), *table_rows(evaluation)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    thr = evaluation.first.detection["threshold"]
    lines.append(
        f"recall/precision at score ≥ {thr:g}; OKS sigmas: {evaluation.dataset.sigma_source}; "
        "a calibrated covariance covers 39.3 % (1σ) / 86.5 % (2σ)"
    )
    return "\n".join(lines)


def write_per_image_csv(evaluation: Evaluation, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PER_IMAGE_COLUMNS)
        for s in evaluation.scores:
            for r in s.per_image:
                writer.writerow([s.name, *(("" if r[c] is None else r[c]) for c in PER_IMAGE_COLUMNS[1:])])
    return path


def write_model_results(evaluation: Evaluation, out_dir: Path) -> list[Path]:
    """The COCO results of each model run (with covariance), scorable again with ``--results``."""

    paths = []
    for s in evaluation.scores:
        if s.prediction_set.source == "model":
            path = out_dir / f"{safe_stem(s.name, 'model')}_coco_results.json"
            path.write_text(json.dumps(s.prediction_set.results))
            paths.append(path)
    return paths


def write_outputs(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Every download into ``out_dir``: metrics.json, per_image.csv, model COCO results, PNG plots."""
    # lazy: matplotlib (~0.5 s), only when plots are written
    from rfdetr_demo.evaluate.plots import calibration_plot, per_keypoint_plot

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = out / METRICS_NAME
    metrics.write_text(json.dumps(metrics_dict(evaluation), indent=1, ensure_ascii=False))
    files = [metrics, write_per_image_csv(evaluation, out / PER_IMAGE_NAME), *write_model_results(evaluation, out)]
    files.append(per_keypoint_plot(evaluation, out / "per_keypoint.png"))
    plot = calibration_plot(evaluation, out / "calibration.png")
    if plot is not None:
        files.append(plot)
    return files


def calibration_verdict(cal: dict[str, Any] | None, matched_people: int | None = None) -> str:
    """Plain words for the 2σ coverage: calibrated within ±5 points of 86.5 %, else over- or under-confident; when
    there is none, why (the coverage needs matched people with labelled joints, not only a covariance)."""
    if not cal or cal["coverage"]["2sigma"] is None:
        if matched_people == 0:
            return "calibration not measured: no predicted person matched an annotated one, so no joint was compared"
        if cal and cal.get("unusable_covariances"):
            return "calibration not measured: no matched joint had a usable covariance"
        if cal is not None:
            return "calibration not measured: the matched people have no labelled joints"
        return "no covariance in these predictions"
    got, want = cal["coverage"]["2sigma"], cal["expected"]["2sigma"]
    verdict = "calibrated" if abs(got - want) <= 0.05 else ("over-confident" if got < want else "under-confident")
    rho = cal["spearman_uncertainty_vs_error"]
    rank = "" if rho is None else f"; rank correlation of predicted σ with error {rho:.2f}"
    return f"{verdict}: {100 * got:.1f} % of joints inside 2σ (a calibrated model: {100 * want:.1f} %){rank}"


def summary_markdown(evaluation: Evaluation) -> str:
    """Headline for the page: the dataset, each set's AP and calibration in words, and every note."""
    ds = evaluation.dataset
    lines = [
        f"**{len(ds.images)} images · {ds.num_people} people · {ds.num_keypoints} keypoints** · "
        f"OKS sigmas: {ds.sigma_source}"
    ]
    if evaluation.model_info and evaluation.model_info.get("random_weights"):
        lines.append("⚠️ **Random weights: the model is untrained and its scores are meaningless.**")
    for s in evaluation.scores:
        d = s.detection
        verdict = calibration_verdict(s.calibration, len(s.matches))
        lines.append(
            f"- **{s.name}**: AP {_fmt(s.stats['AP'])} · AP50 {_fmt(s.stats['AP50'])} · recall {_fmt(d['recall'])}, "
            f"precision {_fmt(d['precision'])} at score ≥ {d['threshold']:g} · {verdict}"
        )
    lines += [f"- ℹ️ {note}" for note in ds.notes]
    return "\n".join(lines)
