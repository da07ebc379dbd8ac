"""The public API does not move when the code does: ``/gradio_api/info`` equals the one recorded before the package
was laid out by concept (main 27c4492), endpoint for endpoint, parameter for parameter."""

from __future__ import annotations

import json

from rfdetr_demo.app_factory import create_app
from rfdetr_demo.config import load_settings
from tests.conftest import REPO


def test_api_info_is_unchanged_by_the_layout() -> None:
    recorded = json.loads((REPO / "tests" / "data" / "gradio_api_info.json").read_text())
    info = json.loads(json.dumps(create_app(load_settings(["--random-weights"], {})).get_api_info()))
    assert sorted(info["named_endpoints"]) == sorted(recorded["named_endpoints"])
    assert info == recorded
