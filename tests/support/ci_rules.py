"""Under ``CI=true`` a skipped test fails: CI must not pass having tested little (missing shared data, Chromium,
nginx, an optional package). Locally a missing prerequisite still skips, with its reason in the ``-ra`` summary."""

from __future__ import annotations

import os

import pytest


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if on_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI=true: a test must not skip ({reason}). Install the prerequisite (see .ci/run)."
    return report
