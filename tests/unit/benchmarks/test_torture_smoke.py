"""`make torture` in miniature (seconds): three cheap cases against a real server on
loopback, and the report is well-formed. Timing targets are not asserted here: the verdicts
live in docs/torture.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
CASES = ("xff", "abort", "idle")

pytestmark = pytest.mark.slow


def test_torture_writes_a_well_formed_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "bench.torture",
            "--cases", ",".join(CASES),
            "--quick",
            "--out", str(tmp_path),
            "--name", "mini",
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "python -m bench.torture --cases xff,abort,idle --quick" in result.stdout
    report = json.loads((tmp_path / "mini.json").read_text())
    assert list(report["cases"]) == list(CASES)
    assert report["memory_budget_mib"] == 1024
    assert report["settings"]["JINA_OPENAI_MEMORY_BUDGET_MB"] == "1024"
    for name, case in report["cases"].items():
        assert case["rss_peak_mib"] > 100, name  # a process tree with torch and a model
        assert case["rss_peak_mib"] >= case["rss_before_mib"] > 0, name
        assert case["service_survived"] is True, name
        assert case["harness_error"] is None, name
        assert case["worker_restarts"] == 0, name
        assert isinstance(case["failures"], list), name
        assert case["facts"]["attack"], name
        assert case["queries"]["count"] > 0, name
        assert set(case["queries"]["statuses"]) <= {"200", "429"}, case["queries"]
    assert report["cases"]["xff"]["facts"]["logged_client"] in ("127.0.0.1", "203.0.113.66")
    assert report["cases"]["abort"]["facts"]["logged_status"] in (499, 500)
    idle = report["cases"]["idle"]["facts"]
    assert idle["silent"]["sockets"] > 0
    assert idle["partial"]["sockets"] > 0
    assert idle["health"]["probes"] > 0
    markdown = (tmp_path / "mini.md").read_text()
    assert "| case | RSS MiB" in markdown
    for name in CASES:
        assert f"\n| {name} | " in markdown
        assert f"### {name}: " in markdown
