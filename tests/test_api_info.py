"""The public API does not move when the code does: ``/gradio_api/info`` equals the one recorded before the package
was laid out by concept (main 27c4492), endpoint for endpoint, parameter for parameter."""

from __future__ import annotations

import json
import re

from rfdetr_demo.app_factory import create_app
from rfdetr_demo.config import load_settings
from tests.conftest import REPO


def _without_component_ids(info: object) -> object:
    """Gradio labels an unlabelled output ``value_<component id>``, and ids count up across every Blocks one process
    builds: the number depends on what ran before, not on the API."""
    return json.loads(re.sub(r'"value_\d+"', '"value_N"', json.dumps(info, sort_keys=True)))


def test_api_info_is_unchanged_by_the_layout() -> None:
    recorded = _without_component_ids(json.loads((REPO / "tests" / "data" / "gradio_api_info.json").read_text()))
    info = _without_component_ids(create_app(load_settings(["--random-weights"], {})).get_api_info())
    assert sorted(info["named_endpoints"]) == sorted(recorded["named_endpoints"])
    assert info == recorded
