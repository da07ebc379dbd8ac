"""Keyframes: the model runs on some frames of a clip, the offline Kalman/RTS smoother fills every other one.

On a CPU host one model run per frame makes a 10 s clip take minutes. The smoother already predicts every joint with a
covariance between measurements, so the model only needs to run on *keyframes*: the frames in between keep the source
frame rate and get their keypoints from the fixed-lag RTS pass (:mod:`~rfdetr_demo.temporal.kalman`), with a covariance
that grows away from each keyframe (the ellipse and halo views draw it). Tracking runs on keyframes only.

- A fixed interval ``n`` runs the model on every n-th frame (1: every frame, no filling).
- ``auto`` adapts the interval within 1–4 frames: after each keyframe the filter's innovation — how far the model's
  joints landed from the prediction, in units of the predicted covariance (squared Mahalanobis distance, χ² with 2
  degrees of freedom when the motion model holds) — shortens the interval when the motion surprised the filter and
  lengthens it when it did not. Thresholds chosen with ``bench/bench_smoothing.py`` (figures in docs/benchmarks.md).

A filled frame shows the people of the keyframe before it; each person's box moves linearly towards their box on the
next keyframe (held when they are not on it), and every joint is a prediction, so no joint is ever "measured" there.
The first and the last frame of a clip are always keyframes, so nothing is extrapolated past the clip's ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import supervision as sv

from rfdetr_demo.errors import UserError
from rfdetr_demo.results.prediction import BOXES, IDS, with_arrays
from rfdetr_demo.temporal.stages import KALMAN, OFF, fills_gaps
from rfdetr_demo.temporal.tracking import UNCONFIRMED

T = TypeVar("T")
R = TypeVar("R")

AUTO = "auto"
MAX_INTERVAL = 6  # fixed intervals offered; the fixed-lag smoother (10 frames) always sees the next keyframe
AUTO_RANGE = (1, 4)
KEYFRAME_CHOICES: tuple[str | int, ...] = (AUTO, *range(1, MAX_INTERVAL + 1))
MODEL, FILLED = "model", "filled"  # what each frame's keypoints come from (exports, table, plots)

# Auto: the mean normalised innovation (χ²₂: mean 2 when the motion model holds, each joint capped at the 99 % gate so
# one outlier cannot decide) of the most surprising person, averaged over keyframes (weight AUTO_WEIGHT for the newest).
# Below AUTO_LOW the predictions landed within the noise: one frame longer; above AUTO_HIGH the motion outran the
# model: one frame shorter; one keyframe above AUTO_JUMP (a sudden movement) halves the interval at once.
AUTO_LOW, AUTO_HIGH, AUTO_JUMP, AUTO_WEIGHT = 2.0, 2.4, 4.0, 0.3


def parse_keyframes(value: object) -> int | str | None:
    """``"auto"``, an interval 1..MAX_INTERVAL, or None (empty: the device's default); anything else: UserError."""
    if value is None or value == "":
        return None
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not number.is_integer() or not 1 <= number <= MAX_INTERVAL:
        raise UserError(f"keyframes must be 'auto' or a whole number from 1 to {MAX_INTERVAL}, got {value!r}")
    return int(number)


def default_keyframes(device: str) -> int | str:
    """Auto on a CPU (every model run counts), every frame on an accelerator (the model keeps up)."""
    return AUTO if device.startswith("cpu") else 1


def plan_keyframes(
    keyframes: object, smoothing: bool | str | None, device: str
) -> tuple[int | str, bool | str | None, list[str]]:
    """The interval a run uses (None: the device's default), its smoother (Kalman whenever frames are filled: the
    smoother is what fills them) and a note for the summary when the requested smoother had to give way."""
    setting = parse_keyframes(keyframes) or default_keyframes(device)
    if setting == 1 or fills_gaps(smoothing):
        return setting, smoothing, []
    note = f"Frames between keyframes are filled by the Kalman smoother, so it was used instead of {smoothing or OFF}."
    return setting, KALMAN, [note]


def describe(setting: int | str) -> str:
    if setting == AUTO:
        return f"auto interval ({AUTO_RANGE[0]}–{AUTO_RANGE[1]} frames)"
    n = int(setting)
    return "every frame" if n == 1 else f"every {n}{_ordinal(n)} frame"


def _ordinal(n: int) -> str:
    return {2: "nd", 3: "rd"}.get(n, "th")


class KeyframeSchedule:
    """Decides, frame by frame in order, which frames the model runs on; ``auto`` listens to :meth:`observe`."""

    def __init__(self, setting: int | str, start: int = 2) -> None:
        self.auto = setting == AUTO
        self.interval = min(max(start, AUTO_RANGE[0]), AUTO_RANGE[1]) if self.auto else int(setting)
        self._since: int | None = None  # frames since the last keyframe (None: before the first frame)
        self.level: float | None = None  # running average of the surprise

    def next_is_keyframe(self, last: bool = False) -> bool:
        """Whether the next frame is a keyframe (``last``: the clip's final frame, always one)."""
        if self._since is None or last or self._since + 1 >= self.interval:
            self._since = 0
            return True
        self._since += 1
        return False

    def observe(self, surprise: float | None) -> None:
        """Feedback after a keyframe was filtered (a stage's ``surprise()``); nobody measured: ``None``."""
        if not self.auto:
            return
        lo, hi = AUTO_RANGE
        if surprise is None:  # nobody measured: look less often until someone is
            self.interval = min(hi, self.interval + 1)
            return
        self.level = surprise if self.level is None else AUTO_WEIGHT * surprise + (1 - AUTO_WEIGHT) * self.level
        if surprise > AUTO_JUMP:
            self.interval = max(lo, self.interval // 2)
        elif self.level > AUTO_HIGH:
            self.interval = max(lo, self.interval - 1)
        elif self.level < AUTO_LOW:
            self.interval = min(hi, self.interval + 1)


def with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item with whether it is the last one (one item of look-ahead)."""
    it = iter(items)
    try:
        prev = next(it)
    except StopIteration:
        return
    for item in it:
        yield prev, False
        prev = item
    yield prev, True


def run_on_keyframes(
    frames: Iterable[T], schedule: KeyframeSchedule, batch_size: int, infer: Callable[[list[T]], list[R]]
) -> Iterator[tuple[T, R | None]]:
    """``(frame, result)`` for every frame in order; ``infer`` runs on batches of up to ``batch_size`` keyframes and
    skipped frames get None. Frames between keyframes wait for the batch after them (they are drawn after it anyway).
    """
    pending: list[tuple[T, bool]] = []
    keys = 0
    for frame, last in with_last(frames):
        key = schedule.next_is_keyframe(last)
        pending.append((frame, key))
        keys += key
        if keys == batch_size or last:
            results = iter(infer([f for f, k in pending if k]) if keys else [])
            yield from ((f, next(results) if k else None) for f, k in pending)
            pending, keys = [], 0


def filled_keypoints(before: sv.KeyPoints, after: sv.KeyPoints | None, fraction: float) -> sv.KeyPoints:
    """The rows of a filled frame: tracked people of the keyframe ``before``, no joint measured.

    Boxes move ``fraction`` (0..1) of the way to the same person's box on the keyframe ``after`` (held when that
    person is not on it); positions and covariances are placeholders the smoother replaces for every joint it keeps.
    """
    ids = np.asarray(before.data.get(IDS, np.full(len(before), UNCONFIRMED)), dtype=int)
    keep = ids != UNCONFIRMED
    kp = before[keep] if not keep.all() else before
    if len(kp) == 0:  # nobody tracked on the keyframe: nobody on the frames after it either
        return kp
    boxes = np.asarray(kp.data[BOXES], dtype=np.float64).reshape(len(kp), 4).copy()
    if after is not None and len(after) and len(kp):
        after_ids = np.asarray(after.data.get(IDS, np.full(len(after), UNCONFIRMED)), dtype=int)
        after_boxes = np.asarray(after.data[BOXES], dtype=np.float64).reshape(len(after), 4)
        for row, tid in enumerate(np.asarray(kp.data[IDS], dtype=int)):
            match = np.flatnonzero(after_ids == tid)
            if len(match):
                boxes[row] += fraction * (after_boxes[match[0]] - boxes[row])
    data = dict(kp.data)
    data[BOXES] = boxes.astype(np.float32)
    return with_arrays(kp, visible=np.zeros(kp.xy.shape[:2], bool), data=data)


Item = tuple[Any, float, sv.KeyPoints, bool]  # (payload, timestamp, key points, filled) for the smoother


class KeyframeFiller:
    """Orders keyframes and filled frames for the smoother; a filled frame waits for the keyframe after it.

    ``key`` and ``skip`` take frames in clip order and return ``(payload, timestamp, key points, filled)`` items to
    push into the smoother, in order; ``flush`` returns the frames still waiting at the end of the clip.
    """

    def __init__(self) -> None:
        self._before: tuple[float, sv.KeyPoints] | None = None
        self._held: list[tuple[Any, float]] = []

    def key(self, payload: Any, timestamp: float, kp: sv.KeyPoints) -> list[Item]:
        out = self._release(kp, timestamp)
        self._before = (timestamp, kp)
        return [*out, (payload, timestamp, kp, False)]

    def skip(self, payload: Any, timestamp: float) -> list[Item]:
        if self._before is None:
            raise RuntimeError("a clip's first frame must be a keyframe")
        self._held.append((payload, timestamp))
        return []

    def flush(self) -> list[Item]:
        return self._release(None, None)

    def _release(self, after: sv.KeyPoints | None, t_after: float | None) -> list[Item]:
        held, self._held = self._held, []
        if not held or self._before is None:
            return []
        t0, before = self._before
        out = []
        for payload, t in held:
            frac = 0.0 if t_after is None or t_after <= t0 else (t - t0) / (t_after - t0)
            out.append((payload, t, filled_keypoints(before, after, float(np.clip(frac, 0.0, 1.0))), True))
        return out
