"""Per-frame results written as the video is processed: JSONL (one line per frame) and CSV (one row per keypoint).

Written line by line so memory stays flat for long clips, and only published (renamed into place) when the whole
run succeeded, so a cancelled run never leaves a file that looks complete. Persons come from the shared
:func:`rfdetr_demo.exports.instances`, so ids (tracker ids when tracking), scores, boxes and keypoints match the
Image tab's JSON exactly, and the CSV writes ``visible`` as ``True``/``False`` like the Image tab's CSV (pandas'
spelling of a bool column), so one reader handles both files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import supervision as sv

from rfdetr_demo.exports import instances

CSV_COLUMNS = (
    "frame", "timestamp_s", "person_id", "class_name", "score", "keypoint", "x", "y", "confidence", "visible",
)  # fmt: skip


def frame_record(frame_index: int, timestamp: float, kp: sv.KeyPoints, names: Sequence[str]) -> dict[str, Any]:
    return {
        "frame": int(frame_index),
        "timestamp_s": round(float(timestamp), 4),
        "persons": instances(kp, names),
    }


class FrameExporter:
    """Streams JSONL and CSV to hidden partial files; :meth:`finish` publishes them, :meth:`abort` deletes them."""

    def __init__(self, out_dir: Path, stem: str, keypoint_names: Sequence[str]) -> None:
        self.names = tuple(keypoint_names)
        self.jsonl_path = out_dir / f"{stem}_frames.jsonl"
        self.csv_path = out_dir / f"{stem}_keypoints.csv"
        self._jsonl_tmp = out_dir / f".{stem}_frames.jsonl.partial"
        self._csv_tmp = out_dir / f".{stem}_keypoints.csv.partial"
        self._jsonl = self._jsonl_tmp.open("w", encoding="utf-8")
        self._csv_file = self._csv_tmp.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(CSV_COLUMNS)

    def add(self, frame_index: int, timestamp: float, kp: sv.KeyPoints) -> dict[str, Any]:
        record = frame_record(frame_index, timestamp, kp, self.names)
        self._jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
        for person in record["persons"]:
            for point in person["keypoints"]:
                self._csv.writerow(
                    (
                        record["frame"], record["timestamp_s"], person["id"], person["class_name"], person["score"],
                        point["name"], point["x"], point["y"], point["confidence"], bool(point["visible"]),
                    )
                )  # fmt: skip
        return record

    def _close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()

    def finish(self) -> list[Path]:
        self._close()
        self._jsonl_tmp.replace(self.jsonl_path)
        self._csv_tmp.replace(self.csv_path)
        return [self.jsonl_path, self.csv_path]

    def abort(self) -> None:
        self._close()
        self._jsonl_tmp.unlink(missing_ok=True)
        self._csv_tmp.unlink(missing_ok=True)
