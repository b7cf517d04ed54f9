"""tools/dashboard_demo.py's generated configurations: Prometheus scrapes with the jobs and the
`instance` label of roles/monitoring (promtool accepts it), HAProxy's passes `haproxy -c`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tools import dashboard_demo

from .known_series import ROOT

PROMTOOL = ROOT / "build/prometheus/usr/bin/promtool"  # make rules unpacks it
PORTS = {
    "embeddings": 4000,
    "qdrant": 6333,
    "node": 9100,
    "prometheus": 9090,
    "proxy_embeddings": 8443,
    "proxy_qdrant": 6443,
    "haproxy_metrics": 8404,
}


def test_prometheus_scrapes_the_roles_jobs_on_loopback_as_one_instance() -> None:
    config = dashboard_demo.prometheus_config(PORTS)
    jobs = {job["job_name"]: job["static_configs"][0] for job in config["scrape_configs"]}
    assert set(jobs) == {"jina-embeddings", "qdrant", "node", "haproxy"}
    for static in jobs.values():
        assert static["labels"] == {"instance": dashboard_demo.INSTANCE}
        assert all(target.startswith("127.0.0.1:") for target in static["targets"])
    without_proxy = {k: v for k, v in PORTS.items() if not k.startswith(("proxy", "haproxy"))}
    names = {
        job["job_name"] for job in dashboard_demo.prometheus_config(without_proxy)["scrape_configs"]
    }
    assert "haproxy" not in names


@pytest.mark.skipif(not PROMTOOL.is_file(), reason="promtool not unpacked (make rules)")
def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(dashboard_demo.prometheus_config(PORTS)))
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_accepts_its_config(tmp_path: Path) -> None:
    from tests.unit.stack_proxy.haproxy_binary import obtain

    haproxy, why = obtain()
    if haproxy is None:
        pytest.skip(why)
    path = tmp_path / "haproxy.cfg"
    path.write_text(dashboard_demo.haproxy_config(PORTS))
    result = haproxy.check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "127.0.0.1" in path.read_text()
    assert "0.0.0.0" not in path.read_text()
