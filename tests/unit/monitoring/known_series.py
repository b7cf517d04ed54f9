"""The series the stack's Prometheus can hold, for the tests of what the alert rules and the
dashboard query: the service's own metrics read from a real ServiceMetrics registry, the
host_exporter and snapshot-timer textfiles from their templates, the rest (node exporter,
Qdrant, HAProxy, Prometheus's `up`) from the list of what those exporters are known to write."""

from __future__ import annotations

import re
from pathlib import Path

from jina_openai.metrics import ServiceMetrics
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
HOST_EXPORTER = ROOT / "roles/host_exporter/templates"
# Written by prometheus-node-exporter (systemd and filesystem collectors) and by Prometheus.
NODE_AND_PROMETHEUS = {
    "up",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_systemd_unit_state",
}
# Qdrant's /metrics (src/common/metrics.rs): collections_vector_total in every version,
# collection_points{id=COLLECTION} from 1.16 on. tests/qdrant-standin serves the first two.
QDRANT = {"app_info", "collections_total", "collections_vector_total", "collection_points"}
# HAProxy's built-in exporter (`http-request use-service prometheus-exporter`), backend metrics.
HAPROXY = {
    "haproxy_backend_active_servers",
    "haproxy_backend_current_sessions",
    "haproxy_backend_current_queue",
}
EXTERNAL = NODE_AND_PROMETHEUS | QDRANT | HAPROXY
PROMQL_WORDS = {
    "sum", "by", "on", "rate", "changes", "histogram_quantile", "predict_linear", "time",
    "group_left", "or", "and", "unless", "le", "job", "instance", "status", "unit", "name",
    "state", "mountpoint", "shape", "reason", "id", "proxy",
}  # fmt: skip


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


def known_series() -> set[str]:
    return service_series() | textfile_series() | EXTERNAL


def names_in(expr: str) -> set[str]:
    """The metric names of a PromQL expression: its words, less label matchers, ranges,
    strings and PromQL's own words."""
    without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    words = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", without_labels))
    return words - PROMQL_WORDS
