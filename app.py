"""RF-DETR Keypoint demo: parse options, build the page, launch. All logic lives in ``rfdetr_demo``."""

from __future__ import annotations

import logging
import sys

from rfdetr_demo import zerogpu  # noqa: F401 - imports `spaces` (if present) before torch touches CUDA
from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs
from rfdetr_demo.config import load_settings
from rfdetr_demo.disk_budget import BUDGET


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(argv)
    demo = create_app(settings)
    configure_queue(demo, settings)
    BUDGET.start_background()  # temp files are pruned even while no request arrives
    demo.launch(**launch_kwargs(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
