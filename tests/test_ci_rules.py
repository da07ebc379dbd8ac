"""CI cannot pass empty: under CI=true a skipped test (missing data, browser, nginx, package) is a failure."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

SAMPLE = """
import pytest

def test_runs():
    assert 1 + 1 == 2

def test_needs_something_missing():
    pytest.skip("prerequisite missing")

@pytest.mark.skipif(True, reason="no nginx here")
def test_marked():
    pass

def test_needs_a_package():
    pytest.importorskip("a_package_that_is_not_installed")

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
"""


def _pytest(tmp_path, ci: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(REPO)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this plugin: a faster start
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.ci_rules", "-p", "no:cacheprovider", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_skips_fail_under_ci_and_skip_locally(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    local = _pytest(tmp_path, None)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 3 skipped, 1 xfailed" in local.stdout
    ci = _pytest(tmp_path, "true")
    assert ci.returncode == 1, ci.stdout
    assert "2 failed, 1 passed, 1 xfailed, 1 error" in ci.stdout  # a skip mark fails at setup: an error
    for reason in ("prerequisite missing", "no nginx here", "a_package_that_is_not_installed"):
        assert "CI=true: a test must not skip" in ci.stdout and reason in ci.stdout


def test_no_tests_is_a_failing_status(tmp_path):
    (tmp_path / "test_empty.py").write_text("")
    assert _pytest(tmp_path, "true").returncode == 5  # .ci/run runs under `set -e`: any non-zero status fails
