"""The Grafana dashboard (roles/monitoring/files/dashboards/jina-stack.json) is provisioning-ready
and queries only series that exist (known_series.py, shared with the alert rules' test)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from .known_series import ROOT, known_series, names_in

DASHBOARD = ROOT / "roles/monitoring/files/dashboards/jina-stack.json"
PROMTOOL = ROOT / "build/prometheus/usr/bin/promtool"  # make rules unpacks it
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
JOBS = {"jina-embeddings", "qdrant", "node", "haproxy"}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def targets() -> list[dict[str, Any]]:
    return [target for panel in panels() for target in panel["targets"]]


def keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in keys(value)}
    return set()


def test_provisioning_ready_fixed_uid_and_no_ids() -> None:
    board = dashboard()
    assert board["uid"] == "jina-stack"
    assert board["schemaVersion"] >= 39
    assert "id" not in keys(board), "ids are Grafana's; a provisioned dashboard has none"
    titles = [panel["title"] for panel in board["panels"]]
    assert len(titles) == len(set(titles))


def test_the_datasource_is_the_template_variable() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["datasource"] == DATASOURCE
    assert instance["definition"].startswith("label_values(")
    for panel in panels():
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])


def test_every_panel_has_targets_each_filtered_by_job_and_instance() -> None:
    for panel in panels():
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            matchers = re.findall(r"\{([^}]*)\}", target["expr"])
            assert matchers, target["expr"]
            for matcher in matchers:
                assert 'instance=~"$instance"' in matcher, target["expr"]
                job = re.search(r'job=~?"([^"]+)"', matcher)
                assert job, target["expr"]
                assert set(job.group(1).split("|")) <= JOBS, target["expr"]
            assert target["legendFormat"], target["expr"]


def test_every_series_the_dashboard_uses_exists() -> None:
    known = known_series()
    unknown = {t["expr"]: sorted(names_in(t["expr"]) - known) for t in targets()}
    assert not {expr: names for expr, names in unknown.items() if names}


def test_the_panels_operators_read_first_are_there() -> None:
    queried = " ".join(target["expr"] for target in targets())
    for name in (
        "jina_openai_embedded_inputs_total",
        "jina_openai_embedded_tokens_total",
        "jina_openai_queue_inputs",
        "jina_openai_queue_wait_seconds_bucket",
        "jina_openai_batch_inputs_bucket",
        "jina_openai_embedding_request_duration_seconds_bucket",
        "jina_openai_requests_total",
        "process_resident_memory_bytes",
        "jina_stack_memory_high_bytes",
        "jina_stack_memory_max_bytes",
        "jina_openai_cache_hits_total",
        "jina_openai_model_info",
        "collection_points",
        "haproxy_backend_active_servers",
    ):
        assert name in queried, name


def test_panels_lie_on_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


@pytest.mark.skipif(not PROMTOOL.is_file(), reason="promtool not unpacked (make rules)")
def test_promtool_parses_every_query(tmp_path: Path) -> None:
    """Each query, its Grafana variables replaced, as a recording rule: promtool parses it."""
    rules = [
        {
            "record": f"dashboard:query_{number}",
            "expr": t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*"),
        }
        for number, t in enumerate(targets())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_file_points_at_the_installed_dashboards() -> None:
    template = (ROOT / "roles/monitoring/templates/grafana-dashboards.yml.j2").read_text()
    text = jinja2.Template(template).render(
        ansible_managed="managed", monitoring_dashboards_dir="/srv/grafana"
    )
    provider = yaml.safe_load(text)["providers"][0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/srv/grafana/dashboards"
