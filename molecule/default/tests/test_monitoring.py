"""roles/host_exporter and roles/monitoring on the converged test host (molecule default).

The test host is in groups qdrant, embeddings and monitoring: Prometheus on it scrapes the
embeddings service, Qdrant (with the read-only key as a bearer token) and the node exporter.
Every target must be up, every rules file of roles/monitoring loaded with each rule evaluated
without error, and the stack's textfile metrics served by the node exporter.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import pytest
import yaml
from molecule_helpers import PROJECT, http_answers

RULES = sorted((PROJECT / "roles/monitoring/files/rules").glob("*.yml"))
PROMETHEUS = "http://127.0.0.1:9090"
NODE = "http://127.0.0.1:9100/metrics"
EXPECTED_JOBS = {"node", "jina-embeddings", "qdrant"}  # no proxy group: no haproxy job
NEVER = "0001-01-01T00:00:00Z"


def get(host: Any, url: str) -> str:
    [(status, text)] = http_answers(host, [("GET", url, {}, None)], timeout=10, decode_json=False)
    assert status == 200, (url, status, text)
    return text


def api(host: Any, path: str) -> Any:
    answer = json.loads(get(host, PROMETHEUS + path))
    assert answer["status"] == "success", answer
    return answer["data"]


def wait_for(check: Any, seconds: float = 90, step: float = 3) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value, done = check()
        if done or time.monotonic() > deadline:
            return value
        time.sleep(step)


def test_services_run_and_listen_on_loopback(host: Any) -> None:
    for unit in ("prometheus.service", "prometheus-node-exporter.service"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
    assert host.socket("tcp://127.0.0.1:9090").is_listening
    assert host.socket("tcp://127.0.0.1:9100").is_listening
    assert not host.socket("tcp://0.0.0.0:9090").is_listening
    assert not host.socket("tcp://0.0.0.0:9100").is_listening


def test_secrets_and_rules_files(host: Any) -> None:
    key = host.file("/etc/prometheus/secrets/" + "qdrant-" + host.backend.get_hostname() + ".key")
    assert key.exists
    assert (key.user, key.group, key.mode) == ("root", "prometheus", 0o640)
    config = host.file("/etc/prometheus/prometheus.yml")
    assert (config.user, config.group, config.mode) == ("root", "prometheus", 0o640)
    assert "molecule-qdrant" not in config.content_string, "keys only in the credentials file"
    for rules in RULES:
        assert host.file(f"/etc/prometheus/rules/{rules.name}").exists, rules.name


def test_every_target_is_up(host: Any) -> None:
    def check() -> tuple[list[dict[str, Any]], bool]:
        targets = api(host, "/api/v1/targets?state=active")["activeTargets"]
        jobs = {t["labels"]["job"] for t in targets}
        return targets, jobs >= EXPECTED_JOBS and all(t["health"] == "up" for t in targets)

    targets = wait_for(check)
    summary = [
        (t["labels"]["job"], t["labels"]["instance"], t["health"], t["lastError"]) for t in targets
    ]
    assert {t["labels"]["job"] for t in targets} == EXPECTED_JOBS, summary
    assert all(t["health"] == "up" for t in targets), summary
    hostname = host.backend.get_hostname()
    assert {t["labels"]["instance"] for t in targets} == {hostname}, summary


def test_rules_load_and_evaluate_without_error(host: Any) -> None:
    expected = {g["name"] for path in RULES for g in yaml.safe_load(path.read_text())["groups"]}
    assert expected

    def check() -> tuple[list[dict[str, Any]], bool]:
        groups = api(host, "/api/v1/rules")["groups"]
        evaluated = all(g["lastEvaluation"] != NEVER for g in groups)
        return groups, {g["name"] for g in groups} >= expected and evaluated

    groups = wait_for(check)
    assert {g["name"] for g in groups} == expected
    for group in groups:
        assert group["lastEvaluation"] != NEVER, group["name"]
        for rule in group["rules"]:
            assert rule["health"] == "ok", (group["name"], rule["name"], rule.get("lastError"))
            assert not rule.get("lastError"), (group["name"], rule["name"], rule["lastError"])


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_static_textfile_metrics(host: Any) -> None:
    metrics = samples(get(host, NODE))
    unit = 'unit="jina-embeddings.service"'
    high = host.check_output("systemctl show -P MemoryHigh jina-embeddings.service")
    top = host.check_output("systemctl show -P MemoryMax jina-embeddings.service")
    assert metrics["jina_stack_memory_high_bytes{" + unit + "}"] == float(high)
    assert metrics["jina_stack_memory_max_bytes{" + unit + "}"] == float(top)
    mounts = [name for name in metrics if name.startswith("jina_stack_qdrant_storage_mount{")]
    assert len(mounts) == 1, mounts
    mountpoint = mounts[0].split('mountpoint="', 1)[1].rstrip('"}')
    assert "/var/lib/qdrant/storage/".startswith(mountpoint.rstrip("/") + "/")
    assert metrics[mounts[0]] == 1
    # The systemd collector is on.
    assert any(name.startswith("node_systemd_unit_state{") for name in metrics)


def test_snapshot_run_writes_its_outcome(host: Any) -> None:
    before = time.time()
    host.check_output("systemctl start qdrant-snapshot.service")

    def check() -> tuple[dict[str, float], bool]:
        metrics = samples(get(host, NODE))
        ran = metrics.get("jina_stack_qdrant_snapshot_last_run_timestamp_seconds", 0)
        return metrics, ran >= before - 5

    metrics = wait_for(check, seconds=30, step=1)
    assert metrics["jina_stack_qdrant_snapshot_last_run_timestamp_seconds"] >= before - 5
    assert metrics["jina_stack_qdrant_snapshot_last_run_ok"] == 1
    assert (
        metrics["jina_stack_qdrant_snapshot_last_success_timestamp_seconds"]
        == metrics["jina_stack_qdrant_snapshot_last_run_timestamp_seconds"]
    )


@pytest.mark.parametrize("path", ["/etc/prometheus/prometheus.yml"])
def test_promtool_accepts_the_config(host: Any, path: str) -> None:
    assert host.run(f"promtool check config {path}").rc == 0


DASHBOARDS = sorted((PROJECT / "roles/monitoring/files/dashboards").glob("*.json"))
DASHBOARD_DIR = "/usr/share/jina-stack/grafana"  # monitoring_dashboards_dir's default


def test_dashboards_and_their_provisioning_file_are_installed(host: Any) -> None:
    for dashboard in DASHBOARDS:
        installed = host.file(f"{DASHBOARD_DIR}/dashboards/{dashboard.name}")
        assert (installed.user, installed.mode) == ("root", 0o644)
        assert json.loads(installed.content_string) == json.loads(dashboard.read_text())
    provisioning = yaml.safe_load(
        host.file(f"{DASHBOARD_DIR}/provisioning/jina-stack.yml").content_string
    )
    assert provisioning["providers"][0]["options"]["path"] == f"{DASHBOARD_DIR}/dashboards"


def test_every_dashboard_query_evaluates_on_this_prometheus(host: Any) -> None:
    """Each panel's PromQL, with Grafana's variables as tools/render_dashboard.py replaces them,
    is accepted by the real Prometheus; the embeddings panels find series on this host."""
    answered = {}
    for dashboard in DASHBOARDS:
        for panel in json.loads(dashboard.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                data = api(host, "/api/v1/query?query=" + urllib.parse.quote(expr))
                answered[expr] = bool(data["result"])
    inputs = next(expr for expr in answered if "jina_openai_embedded_inputs_total" in expr)
    assert answered[inputs], "the service's series reach this Prometheus"
