"""The per-frame chain after inference, in frame order: ids → display threshold → keyframe filling → smoothing.

Trackers and smoothers keep state across frames, so this runs in the calling thread whichever way decode and inference
run. The threshold comes first so a smoother sees a hidden joint as missing (the Kalman filter predicts it); an
offline Kalman stage releases frames a few frames late (fixed-lag RTS) and the rest at the end of the clip. Tracking
runs on keyframes; a filled frame (the model skipped it) waits for the next keyframe, then the smoother fills its
joints, and the filter's surprise at each keyframe steers an auto schedule (:mod:`rfdetr_demo.video.keyframes`).
"""

from __future__ import annotations

from collections.abc import Iterator

import supervision as sv

from rfdetr_demo.result import Prediction, apply_keypoint_threshold
from rfdetr_demo.video.keyframes import KeyframeFiller, KeyframeSchedule, motion_surprise
from rfdetr_demo.video.reader import Frame
from rfdetr_demo.video.smoothing import make_stage
from rfdetr_demo.video.tracking import PersonTracker


def shown_frames(
    results: Iterator[tuple[Frame, Prediction | None]],
    fps: float,
    schedule: KeyframeSchedule,
    smoothing: bool | str | None,
    tracking: bool,
    threshold: float,
    keypoint_threshold: float,
) -> Iterator[tuple[Frame, Prediction | None, sv.KeyPoints]]:
    """``(frame, prediction or None for a filled frame, key points to draw and export)`` for every frame, in order."""
    stage = make_stage(smoothing, offline=True)
    tracking = tracking or stage is not None  # smoothers follow people by id
    rate = fps / (2 if schedule.auto else schedule.interval)  # tracker updates per second
    tracker = PersonTracker(rate, threshold) if tracking else None
    filler = KeyframeFiller()
    for frame, pred in results:
        if pred is None:
            items = filler.skip((frame, pred), frame.timestamp)
        else:
            kp = pred.key_points if tracker is None else tracker.update(pred.key_points, frame.timestamp)
            items = filler.key((frame, pred), frame.timestamp, apply_keypoint_threshold(kp, keypoint_threshold))
        for payload, t, kp, filled in items:
            if stage is None:
                yield (*payload, kp)
                continue
            for (f, p), smoothed in stage.push(kp, t, payload, filled=filled):
                yield f, p, smoothed
            if not filled:
                schedule.observe(motion_surprise(getattr(stage, "last_records", {})))
    if stage is not None:  # without a smoother every frame is a keyframe: nothing waits in the filler
        tail = [out for payload, t, kp, filled in filler.flush() for out in stage.push(kp, t, payload, filled=filled)]
        yield from ((f, p, smoothed) for (f, p), smoothed in [*tail, *stage.flush()])
