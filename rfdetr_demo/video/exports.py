"""Per-frame results written as the video is processed: JSONL (one line per frame), a keypoints CSV (one row per
keypoint) and an angles CSV (one row per person and frame: mean keypoint confidence, each joint angle and its 1σ).

Written line by line so memory stays flat for long clips, and only published (renamed into place) when the whole
run succeeded, so a cancelled run never leaves a file that looks complete. Persons come from the shared
:func:`rfdetr_demo.results.exports.instances`, so ids (tracker ids when tracking), scores, boxes and keypoints match the
Image tab's JSON exactly, and the CSV writes ``visible`` as ``True``/``False`` like the Image tab's CSV (pandas'
spelling of a bool column), so one reader handles both files. The angle numbers come from
:func:`rfdetr_demo.video.angles.motion_rows`, the same rows the Video tab's motion plots draw. Every frame says where
its keypoints come from (``source``): ``model`` on a keyframe, ``filled`` where the smoother filled a skipped frame.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import supervision as sv

from rfdetr_demo.results.exports import instances
from rfdetr_demo.results.schema import Angle
from rfdetr_demo.temporal.keyframes import MODEL
from rfdetr_demo.video.angles import angle_columns, motion_rows

CSV_COLUMNS = (
    "frame", "timestamp_s", "source", "person_id", "class_name", "score", "keypoint", "x", "y", "confidence", "visible",
)  # fmt: skip


MOTION_COLUMNS = ("frame", "timestamp_s", "source", "person_id", "mean_confidence")


def frame_record(
    frame_index: int,
    timestamp: float,
    kp: sv.KeyPoints,
    names: Sequence[str],
    angles: Sequence[Angle] = (),
    source: str = MODEL,
) -> dict[str, Any]:
    """One JSONL line; each person also carries its mean keypoint confidence and ``angles`` (deg and 1σ)."""
    persons = instances(kp, names)
    for person, row in zip(persons, motion_rows(frame_index, timestamp, kp, angles), strict=True):
        person["mean_confidence"] = row["mean_confidence"]
        person["angles"] = {n: {"deg": row[f"{n}_deg"], "std_deg": row[f"{n}_std_deg"]} for n, _ in angles}
    return {"frame": int(frame_index), "timestamp_s": round(float(timestamp), 4), "source": source, "persons": persons}


class FrameExporter:
    """Streams JSONL and CSV to hidden partial files; :meth:`finish` publishes them, :meth:`abort` deletes them."""

    def __init__(self, out_dir: Path, stem: str, keypoint_names: Sequence[str], angles: Sequence[Angle] = ()) -> None:
        self.names = tuple(keypoint_names)
        self.angles = tuple(angles)
        self.jsonl_path = out_dir / f"{stem}_frames.jsonl"
        self.csv_path = out_dir / f"{stem}_keypoints.csv"
        self.angles_path = out_dir / f"{stem}_angles.csv"
        self._final = (self.jsonl_path, self.csv_path, self.angles_path)
        self._partial = tuple(out_dir / f".{p.name}.partial" for p in self._final)
        self._jsonl = self._partial[0].open("w", encoding="utf-8")
        self._csv_file = self._partial[1].open("w", encoding="utf-8", newline="")
        self._angles_file = self._partial[2].open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)
        self.motion_columns = (*MOTION_COLUMNS, *angle_columns(self.angles))
        self._angles_csv = csv.DictWriter(self._angles_file, self.motion_columns)
        self._angles_csv.writeheader()

    def add(self, frame_index: int, timestamp: float, kp: sv.KeyPoints, source: str = MODEL) -> dict[str, Any]:
        """Write one frame; ``source`` is ``model`` (a keyframe) or ``filled`` (the smoother filled it)."""
        record = frame_record(frame_index, timestamp, kp, self.names, self.angles, source)
        self._jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
        rows = motion_rows(frame_index, timestamp, kp, self.angles)
        self._angles_csv.writerows({**row, "source": source} for row in rows)
        for person in record["persons"]:
            for point in person["keypoints"]:
                self._csv.writerow(
                    (
                        record["frame"], record["timestamp_s"], source, person["id"], person["class_name"],
                        person["score"], point["name"], point["x"], point["y"], point["confidence"],
                        bool(point["visible"]),
                    )
                )  # fmt: skip
        return record

    def _close(self) -> None:
        for f in (self._jsonl, self._csv_file, self._angles_file):
            f.close()

    def finish(self) -> list[Path]:
        """Publish and return ``[jsonl, keypoints csv, angles csv]``."""
        self._close()
        for tmp, final in zip(self._partial, self._final, strict=True):
            tmp.replace(final)
        return list(self._final)

    def abort(self) -> None:
        self._close()
        for tmp in self._partial:
            tmp.unlink(missing_ok=True)
