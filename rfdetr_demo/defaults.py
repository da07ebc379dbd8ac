"""Defaults shared by the page, the CLI and the engines: one place to change each of them.

Gradio-free, so the CLI and the engines import it without the UI. Settings (``config.py``) override some of these
per launch; these are the values used when nothing is set.
"""

from __future__ import annotations

from pathlib import Path

# The preview checkpoint's own input side; a loaded model reports its own (the status line shows it).
DEFAULT_RESOLUTION = 576
# Resolution presets offered by every tab (speed vs accuracy), with the note shown next to each.
RESOLUTION_PRESETS: tuple[int, ...] = (288, 384, 480, 576, 672, 768)
PRESET_NOTES: dict[int, str] = {288: "fastest", 384: "fast", 480: "balanced", 576: "most accurate"}

DEFAULT_THRESHOLD = 0.5  # minimum person score
DEFAULT_KEYPOINT_THRESHOLD = 0.3  # joints below this confidence are hidden (display only)

# Longer image sides are downscaled before inference and drawing: the model sees at most ~1k px anyway, and
# full-size views of a 50 MP photo would cost memory and seconds each (``--max-image-side``).
MAX_IMAGE_SIDE = 4096
MAX_VIDEO_SECONDS = 60.0  # longest video segment one request processes (``--max-video-seconds``)

# How long a request (page, API or CLI) waits for a model that is still loading before it gives up with a message:
# long enough for a first start that downloads the weights on a slow link.
MODEL_WAIT_S = 900.0

# The example photos and clips of a checkout (``examples/`` beside the package); ``--examples-dir`` points elsewhere,
# e.g. for an installed package run outside the checkout. A missing folder simply means no examples.
CHECKOUT_EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def examples_dir(configured: str | None = None) -> Path:
    """The examples folder to show: the configured one, else the checkout's."""
    return Path(configured).expanduser() if configured else CHECKOUT_EXAMPLES_DIR


def example_files(folder: Path, suffix: str) -> list[str]:
    """Sorted example paths with ``suffix`` (``".jpg"``, ``".mp4"``) in ``folder``; none if it does not exist."""
    return sorted(str(p) for p in folder.glob(f"*{suffix}")) if folder.is_dir() else []
