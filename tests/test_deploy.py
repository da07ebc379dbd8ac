"""deploy/: the compose file and nginx.conf for N replicas with sticky sessions agree, and nginx accepts the config."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def test_compose_replicas_match_the_nginx_upstreams() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    apps = sorted(name for name in compose["services"] if re.fullmatch(r"app\d+", name))
    assert len(apps) >= 2
    for name in apps:
        service = compose["services"][name]
        assert service["build"] == ".." and "7860" in service["expose"]
        assert service["environment"]["RFDETR_DEMO_HOST"] == "0.0.0.0"
        assert "RFDETR_DEMO_AUTH" not in service["environment"]  # secrets come from an env file
    lb = compose["services"]["lb"]
    assert lb["ports"] == ["7860:80"] and "./nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    conf = (DEPLOY / "nginx.conf").read_text()
    assert re.findall(r"server (app\d+):7860;", conf) == apps
    # sticky: the upstream hashes the session cookie, and the reply sets that cookie
    assert "hash $replica_key consistent;" in conf and 'Set-Cookie "rfdetr_replica=$replica_key' in conf
    assert "proxy_buffering off;" in conf  # the queue's event stream must not be buffered


@pytest.mark.skipif(shutil.which("nginx") is None and not (shutil.which("/usr/sbin/nginx")), reason="no nginx here")
def test_nginx_accepts_the_config(tmp_path) -> None:
    import sys

    sys.path.insert(0, str(REPO))
    from deploy.check_local import local_config

    conf = tmp_path / "nginx.conf"
    conf.write_text(local_config((DEPLOY / "nginx.conf").read_text(), [7861, 7862], 18080, tmp_path))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-g", f"pid {tmp_path}/n.pid; error_log {tmp_path}/e.log;"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
