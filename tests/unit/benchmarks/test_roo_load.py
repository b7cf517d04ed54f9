"""`make roo-load`'s harness: the service settings it takes from the role, its report, and the
command end to end in miniature against a real server (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.roo_load import ROLE_DEFAULTS, role_settings, scrape_statuses
from bench.roo_load_report import render, verdicts

REPO = Path(__file__).resolve().parents[3]


def test_the_service_runs_with_the_roles_literal_defaults() -> None:
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    settings = role_settings(memtotal_mb=10_000)
    assert settings["JINA_OPENAI_MAX_QUEUE_WAIT_S"] == str(
        defaults["jina_embeddings_max_queue_wait_s"]
    )
    assert settings["JINA_OPENAI_REQUEST_TIMEOUT_S"] == str(
        defaults["jina_embeddings_request_timeout_s"]
    )
    assert settings["JINA_OPENAI_WARMUP"] == "true"
    # (MemoryHigh 40 % of RAM - 64 MiB for the master) per worker, as the role derives it
    assert settings["JINA_OPENAI_MEMORY_BUDGET_MB"] == str(4000 - 64)
    # what the harness sets itself, and templates, are not taken from the role
    for name in ("MODEL_ID", "API_KEYS", "HOST", "PORT", "DEVICE", "DTYPE", "TORCH_THREADS"):
        assert f"JINA_OPENAI_{name}" not in settings
    assert not any("{{" in value for value in settings.values())


def workspace(name: str, *, failed: int = 0, dropped: bool = False, s: float = 10.0) -> dict:
    return {
        "name": name,
        "chunks": 120,
        "batches": 2,
        "failed_batches": failed,
        "blocks_indexed": 120 - 60 * failed,
        "would_drop_index": dropped,
        "finished": True,
        "elapsed_s": s,
        "errors": ["Failed to process batch after 3 attempts: HTTP 429"] * failed,
        "http_requests": 2,
        "http_429": 0,
        "abandoned_499": 0,
        "sdk_retries": 0,
        "embedder_429_retries": 0,
        "global_waits": 0,
        "scanner_retries": 0,
    }


def run(k: int, rows: list[dict], p99: float) -> dict:
    times = [r["elapsed_s"] for r in rows]
    return {
        "workspaces": k,
        "wall_s": max(times),
        "slowest_over_fastest": max(times) / min(times),
        "per_workspace": rows,
        "searches": {
            "searches": 10,
            "answered": 10,
            "outcomes": {"ok": 10},
            "p50_s": 0.1,
            "p99_s": p99,
            "max_s": p99,
            "http_statuses": {"200": 10},
        },
        "server": {"metrics_statuses": {"200": 12}, "log_statuses": {"200": 12}},
    }


def test_verdicts_follow_issue_16s_targets() -> None:
    good = run(2, [workspace("ws1"), workspace("ws2", s=14.0)], p99=0.5)
    assert all(met for _, _, met in verdicts(good, "minilm"))
    bad = run(2, [workspace("ws1"), workspace("ws2", failed=1, dropped=True, s=20.0)], p99=1.5)
    missed = {name for name, _, met in verdicts(bad, "minilm") if not met}
    assert missed == {
        "zero failed batches",
        "no index Roo would drop",
        "slowest workspace within 1.5x of the fastest",
        "searches' p99 under 1 s",
    }
    assert all(met for name, _, met in verdicts(bad, "full-size") if "p99" in name)  # 3 s there


def test_the_report_has_a_row_per_workspace_and_the_method() -> None:
    report = {
        "started": "then",
        "finished": "now",
        "parameters": {
            "workspaces": [1, 2],
            "chunks_per_workspace": 120,
            "batch_size": 60,
            "search_rate_per_s": 1.0,
            "model": "minilm",
            "dtype": "auto",
            "device": "cpu",
            "url": None,
            "patience_s": 300.0,
            "usable_cores": 2,
            "loadavg": ["1.0", "1.0", "1.0"],
        },
        "runs": [
            run(1, [workspace("ws1")], 0.2),
            run(2, [workspace("ws1"), workspace("ws2", failed=1)], 0.2),
        ],
    }
    markdown = render(report)
    assert "## K = 1" in markdown
    assert "## K = 2" in markdown
    assert markdown.count("| ws1 | 120 |") == 2
    assert "| ws2 | 120 | 2 | 1 | no |" in markdown
    assert "Failed to process batch after 3 attempts: HTTP 429" in markdown
    assert "## How `make roo-load` models Roo Code" in markdown


def test_statuses_come_from_the_embeddings_route_of_metrics(tmp_path: Path) -> None:
    assert scrape_statuses("http://127.0.0.1:9") == {}  # nothing listening: no statuses


@pytest.mark.slow
def test_roo_load_runs_end_to_end_in_miniature(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.roo_load",
            "--workspaces",
            "1,2",
            "--chunks",
            "8",
            "--batch-size",
            "3",
            "--search-rate",
            "2",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "roo-load.json").read_text())
    assert [r["workspaces"] for r in report["runs"]] == [1, 2]
    for k_run in report["runs"]:
        for row in k_run["per_workspace"]:
            assert row["finished"]
            assert row["batches"] == 3  # 8 chunks in batches of 3
            assert row["failed_batches"] == 0
            assert row["blocks_indexed"] == 8
            assert row["http_statuses"] == {"200": 3}
        assert k_run["searches"]["answered"] >= 1
        # what the clients saw is what the service counted (searches included)
        sent = sum(r["http_requests"] for r in k_run["per_workspace"])
        sent += k_run["searches"]["http_requests"]
        assert k_run["server"]["log_statuses"] == {"200": sent}
    markdown = (tmp_path / "roo-load.md").read_text()
    assert "## K = 2" in markdown
    assert "an API key per workspace" in markdown  # the default: the service accepted each


def test_benchmarks_md_has_a_row_per_k_of_each_roo_load_report(tmp_path: Path) -> None:
    from bench.report import render as render_benchmarks

    docs = Path(__file__).resolve().parents[3] / "docs"
    (tmp_path / "benchmarks.json").write_text((docs / "benchmarks.json").read_text())
    report = json.loads((docs / "roo-load-full-size.json").read_text())
    (tmp_path / "roo-load-full-size.json").write_text(json.dumps(report))
    markdown = render_benchmarks(tmp_path)
    assert "## Roo Code at team load" in markdown
    assert "[roo-load-full-size.md](roo-load-full-size.md)" in markdown
    for run in report["runs"]:
        assert f"| {run['workspaces']} | {run['wall_s']:.0f} s |" in markdown
    assert "[roo-load.md]" not in markdown  # only the reports that are there
