"""Start the web app: parse options, build the page, launch (``rfdetr-demo serve``, ``python app.py``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rfdetr_demo.app_factory import configure_queue, create_app, launch_kwargs, model_registry, start_models
from rfdetr_demo.config import load_settings
from rfdetr_demo.disk import BUDGET, use_own_temp_dir
from rfdetr_demo.models import malloc_trim, zerogpu  # noqa: F401 - imports `spaces` (if present) before torch touches CUDA


def main(argv: Sequence[str] | None = None, prog: str = "app.py") -> None:
    """Serve until interrupted; ``prog`` names the command in ``--help``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(argv, prog=prog)
    use_own_temp_dir()  # not the /tmp/gradio other apps on this machine share (and prune)
    malloc_trim.configure_allocator()  # large buffers in their own mappings: RSS does not step up under traffic
    demo = create_app(settings)
    configure_queue(demo, settings)
    BUDGET.start_background()  # temp files are pruned even while no request arrives
    registry = model_registry(settings)
    demo.launch(**launch_kwargs(settings, start_models(registry), registry))
