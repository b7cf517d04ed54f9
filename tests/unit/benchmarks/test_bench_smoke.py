"""`make bench` and `make soak` in miniature (seconds): the commands run end to end against
real servers on loopback and write a well-formed report. Timing targets are not asserted here:
they live in docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

pytestmark = pytest.mark.slow


def run_module(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_bench_writes_a_complete_report(tmp_path: Path) -> None:
    result = run_module(
        "bench.run",
        "--seconds", "1.5",
        "--index-clients", "2",
        "--index-inputs", "4",
        "--query-clients", "3",
        "--sweep", "1,2",
        "--sweep-shapes", "query,index",
        "--sweep-seconds", "1",
        "--overload-clients", "12",
        "--overload-seconds", "1.5",
        "--memory-seconds", "1",
        "--idle-after-s", "0",
        "--allocator-variants", "1",
        "--inprocess-inputs", "24",
        "--chunks", "300",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "benchmarks.json").read_text())
    assert len(report["in_process"]) == 2
    assert all(run["inputs_per_s"] > 0 for run in report["in_process"])
    for load in ("index", "query", "mixed"):
        for server in ("naive", "ours"):
            result_ = report["loads"][load][server]
            assert result_["rss_peak_mb"] > 100  # a process with torch and a model
            for group in result_["groups"].values():
                assert group["requests"] > 0, (load, server, group)
                assert group["inputs_per_s"] > 0
                assert group["p50_s"] <= group["p99_s"]
                assert set(group["statuses"]) <= {"200", "429"}, group["statuses"]
    assert set(report["loads"]["mixed"]["ours"]["groups"]) == {"index", "search"}
    assert report["overload"]["groups"]["index"]["clients"] == 12
    assert set(report["overload"]["groups"]["index"]["statuses"]) <= {"200", "429"}
    for shape in ("query", "index"):
        assert set(report["sweep"][shape]["ours"]) == {"1", "2"}
    assert len(report["allocator"]) == 1
    markdown = (tmp_path / "benchmarks.md").read_text()
    for heading in ("## In-process limit", "## Targets", "## Loads", "## Concurrency sweep"):
        assert heading in markdown
    for png in ("bench-throughput.png", "bench-p99.png"):
        assert (tmp_path / png).read_bytes().startswith(b"\x89PNG")
        assert f"]({png})" in markdown


def test_soak_reports_an_rss_slope_and_its_verdict(tmp_path: Path) -> None:
    result = run_module(
        "bench.soak",
        "--requests", "60",
        "--clients", "3",
        "--max-inputs", "8",
        "--chunks", "300",
        "--bound", "1000000",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RSS slope" in result.stdout
    soak = json.loads((tmp_path / "soak.json").read_text())
    assert soak["requests"] == 60
    assert soak["passed"] is True
    assert set(soak["statuses"]) == {"200"}
    assert len(soak["samples"]) >= 1
    assert all(mb > 100 for _, _, mb in soak["samples"])
