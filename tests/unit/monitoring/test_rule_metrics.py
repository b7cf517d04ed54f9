"""The alert rules name only series that exist (known_series.py: the service's real registry,
the host_exporter textfiles, the exporters' lists), and each has a summary and a runbook."""

from __future__ import annotations

import re

import yaml

from .known_series import ROOT, known_series, names_in

RULES = ROOT / "roles/monitoring/files/rules/jina-stack.rules.yml"


def rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_every_series_an_alert_uses_exists() -> None:
    known = known_series()
    unknown = {rule["alert"]: sorted(names_in(rule["expr"]) - known) for rule in rules()}
    assert not {alert: names for alert, names in unknown.items() if names}


def test_every_alert_has_a_summary_and_a_runbook_naming_a_command() -> None:
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), rule["alert"]
        assert re.search(r"`(jina-stack|systemctl) [a-z-]+", annotations["runbook"]), rule["alert"]
