"""RF-DETR Keypoint demo: parse options, build the page, launch. All logic lives in ``rfdetr_demo``."""

from __future__ import annotations

import logging
import sys

from rfdetr_demo.app_factory import create_app, launch_kwargs
from rfdetr_demo.config import load_settings


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(argv)
    demo = create_app(settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.launch(**launch_kwargs(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
