"""The alert rules name only series that exist: the service's own metrics are read from a real
ServiceMetrics registry, the rest (node exporter, the host_exporter textfiles, Prometheus's `up`)
from the list of what those exporters are known to write."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from jina_openai.metrics import ServiceMetrics
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "roles/monitoring/files/rules/jina-stack.rules.yml"
HOST_EXPORTER = ROOT / "roles/host_exporter/templates"
# Written by prometheus-node-exporter (systemd and filesystem collectors) and by Prometheus.
EXTERNAL = {
    "up",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_systemd_unit_state",
}
PROMQL_WORDS = {
    "sum", "by", "on", "rate", "changes", "histogram_quantile", "predict_linear", "time",
    "group_left", "or", "and", "unless", "le", "job", "instance", "status", "unit", "name",
    "state", "mountpoint",
}  # fmt: skip


def rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def service_series() -> set[str]:
    """Every sample name the service exposes (counters' _total, histograms' _bucket, ...)."""
    text = ServiceMetrics().render().decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):  # labelled families have no samples yet
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def textfile_series() -> set[str]:
    text = "\n".join(path.read_text() for path in HOST_EXPORTER.glob("*.prom.j2"))
    text += (ROOT / "roles/qdrant/files/qdrant-snapshot.py").read_text()
    return set(re.findall(r"\bjina_stack_[a-z_]+\b", text))


def names_in(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels))
    return words - PROMQL_WORDS


def test_every_series_an_alert_uses_exists() -> None:
    known = service_series() | textfile_series() | EXTERNAL
    unknown = {rule["alert"]: sorted(names_in(rule["expr"]) - known) for rule in rules()}
    assert not {alert: names for alert, names in unknown.items() if names}


def test_every_alert_has_a_summary_and_a_runbook_naming_a_command() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert re.search(r"`(jina-stack|systemctl) [a-z-]+", annotations["runbook"]), rule["alert"]
