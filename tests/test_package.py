"""The package holds only what the app runs: no test oracle, no bench helper, no hand-run tool inside it."""

from __future__ import annotations

import ast

from tests.conftest import REPO


def _imported_modules(path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_package_never_imports_test_support_or_tools() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in _imported_modules(path) if m.split(".")[0] in {"tests", "tools"})
        for path in (REPO / "rfdetr_demo").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
    shipped = {p.stem for p in (REPO / "rfdetr_demo").rglob("*.py")}
    assert not shipped & {"replay", "synthetic", "mjpeg_server"}
