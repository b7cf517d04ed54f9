"""`make bench-speed` without a model: its report rendered from a made-up result, its targets'
verdicts both ways, and the pure parts of its code-search evaluation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.report import render as render_benchmarks
from bench.speed import throughput_shares
from bench.speed_eval import agreement, cosine_summary, search_pairs, search_summary, top1
from bench.speed_report import SPEED_JSON, render, targets

MACHINE = {
    "cpu": "Test CPU (family 25, model 17)",
    "usable_cores": 2,
    "memory_gb": 8.0,
    "os": "Linux-test",
    "matrix_multiply": {
        "shape": "2048x768 by 768x3072",
        "threads": 2,
        "float32_gflops": 160,
        "bfloat16_gflops": 420,
        "bfloat16_ratio": 2.62,
    },
}


def _served(ips: float, hwm: float) -> dict[str, Any]:
    return {
        "inputs": 240,
        "elapsed_s": 240 / ips,
        "inputs_per_s": ips,
        "requests": 4,
        "retries": 0,
        "tokens": 61440,
        "rss_peak_mb": hwm - 50,
        "hwm_mb": hwm,
        "loadavg": [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]],
    }


def _inprocess(ips: float, peak: float) -> dict[str, Any]:
    return {
        "dtype": "x",
        "inputs": 48,
        "tokens_per_input": 256.0,
        "max_batch_tokens": 4096,
        "load_s": 3.0,
        "elapsed_s": 48 / ips,
        "inputs_per_s": ips,
        "rss_before_load_mb": 300,
        "rss_after_load_mb": peak - 100,
        "peak_rss_mb": peak,
        "loadavg": [1.0, 1.0, 1.0],
    }


def _cosine(low: float) -> dict[str, float]:
    return {"min": low, "mean": 0.99995, "max_abs_diff": 0.001}


def _pass(seconds: float, memory: int, disk: int, misses: int) -> dict[str, Any]:
    run: dict[str, Any] = {
        "inputs": 1300,
        "elapsed_s": seconds,
        "inputs_per_s": 1300 / seconds,
        "requests": 22,
        "retries": 0,
        "tokens": 300000,
        "cache": {"memory_hits": memory, "disk_hits": disk, "misses": misses},
        "search": {"pairs": 300, "top1_hits": 240, "top1_accuracy": 0.8},
    }
    if misses == 0:
        run.update(
            speedup=round(22.0 / seconds, 1),
            cosine_to_cold=_cosine(1.0),
            identical_vectors=True,
            same_top1=True,
        )
    return run


def fake_report() -> dict[str, Any]:
    """A complete result in which every target is met."""
    return {
        "started": "2026-01-01 00:00:00 UTC",
        "finished": "2026-01-01 00:10:00 UTC",
        "duration_s": 600,
        "quick": False,
        "command": "make bench-speed",
        "machine": MACHINE,
        "versions": {"python": "3.11", "torch": "2.x"},
        "parameters": {"model": "/m/all-MiniLM-L6-v2", "threads": 2},
        "phases": {
            "full-size": {
                "architecture": "full size",
                "spec": {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072,
                         "vocab": 61056},
                "max_input_tokens": 256,
                "in_process": {
                    "float32": _inprocess(2.65, 917),
                    "bfloat16": _inprocess(7.66, 700),
                },
                "in_process_cosine": _cosine(0.998),
                "served": {"float32": _served(2.5, 1000), "bfloat16": _served(7.0, 800)},
                "served_cosine": _cosine(0.998),
                "duration_s": 200,
            },
            "quality": {
                "model": "all-MiniLM-L6-v2",
                "chunks": 1000,
                "pairs": 300,
                "examples": [{"query": "Return the thing.", "where": "a.py:f"}],
                "search": {
                    "float32": {"pairs": 300, "top1_hits": 240, "top1_accuracy": 0.8},
                    "bfloat16": {"pairs": 300, "top1_hits": 240, "top1_accuracy": 0.8},
                },
                "served": {"float32": {"inputs_per_s": 23.0}, "bfloat16": {"inputs_per_s": 60.0}},
                "corpus_cosine": _cosine(0.9995),
                "eval_chunk_cosine": _cosine(0.9996),
                "query_cosine": _cosine(0.9993),
                "top1_agreement": 0.9967,
                "duration_s": 120,
            },
            "reindex": {
                "dtype": "bfloat16",
                "cache_memory_mb": 64,
                "cache_path": "a fresh sqlite file",
                "inputs": 1300,
                "pairs": 300,
                "disk_entries_before_restart": 1300.0,
                "passes": {
                    "cold": _pass(22.0, 0, 0, 1300),
                    "warm": _pass(0.5, 1300, 0, 0),
                    "restart": _pass(0.8, 0, 1300, 0),
                },
                "duration_s": 60,
            },
            "queries": {
                "dtype": "bfloat16",
                "cache_memory_mb": 0,
                "inputs": 1200,
                "query_pause_s": 0.0,
                "runs": [
                    {"with_queries": False, "index": {"inputs_per_s": 60.0, "elapsed_s": 20.0}},
                    {
                        "with_queries": True,
                        "index": {"inputs_per_s": 58.0, "elapsed_s": 20.7},
                        "queries": {
                            "queries": 400,
                            "pause_s": 0.0,
                            "p50_s": 0.05,
                            "p99_s": 0.3,
                            "max_s": 0.4,
                            "statuses": {"200": 400},
                        },
                    },
                    {"with_queries": False, "index": {"inputs_per_s": 60.0, "elapsed_s": 20.0}},
                ],
                "alone_inputs_per_s": 60.0,
                "with_queries_inputs_per_s": 58.0,
                "throughput_share": 0.9667,
                "round_shares": [0.97, 0.9634],
                "round_share_ci95": [0.9256, 1.0078],
                "query_cost_ms": 12.5,
                "typed_queries_per_s": 1.8,
                "predicted_share": 0.9775,
                "query_p99_s": 0.3,
                "duration_s": 90,
            },
        },
    }  # fmt: skip


def test_every_target_met_renders_as_met(tmp_path: Path) -> None:
    report = fake_report()
    rows = targets(report)
    assert len(rows) == 11
    assert all(met for _, _, met in rows), [r for r in rows if not r[2]]
    (tmp_path / SPEED_JSON).write_text(json.dumps(report))
    markdown = render(tmp_path)
    for heading in (
        "## Targets",
        "## Full-size JinaBERT v2 architecture, float32 vs bfloat16",
        "## Quality: MiniLM float32 vs bfloat16",
        "## Re-index: cache cold, warm, after a restart",
        "## Queries while indexing",
    ):
        assert heading in markdown
    assert "**no**" not in markdown
    assert "2.80x" in markdown  # served bf16 / fp32 = 7.0 / 2.5
    assert "44.0x" in markdown  # cold 22 s / warm 0.5 s
    assert "99.7% of 300 queries" in markdown
    assert "rounds' 95 % interval 92.6%-100.8%" in markdown
    assert "One typed query costs the index 12.5 ms" in markdown
    assert "predicts 97.8% of the alone throughput" in markdown
    assert "420 GFLOP/s in bfloat16 (**2.62x**)" in markdown


@pytest.mark.parametrize(
    ("path", "value", "target"),
    [
        (("full-size", "served", "bfloat16", "inputs_per_s"), 6.0, "bfloat16 >= 2.5x"),
        (("full-size", "served", "bfloat16", "hwm_mb"), 1001, "served: peak RSS"),
        (("full-size", "in_process", "bfloat16", "peak_rss_mb"), 918, "in-process: peak RSS"),
        (("quality", "top1_agreement"), 0.98, "top-1 agreement"),
        (("quality", "query_cosine", "min"), 0.998, "cosine to float32"),
        (("reindex", "passes", "warm", "speedup"), 19.9, "warm cache: >= 20x"),
        (("reindex", "passes", "restart", "same_top1"), False, "identical search"),
        (("queries", "query_p99_s"), 0.51, "query p99"),
        (("queries", "throughput_share"), 0.94, "index throughput"),
    ],
)
def test_a_missed_target_is_reported_as_missed(
    path: tuple[str, ...], value: object, target: str
) -> None:
    report = copy.deepcopy(fake_report())
    node = report["phases"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    missed = [row for row in targets(report) if not row[2]]
    assert len(missed) == 1, missed
    assert target in missed[0][0]


def test_a_run_of_some_phases_reports_only_those(tmp_path: Path) -> None:
    report = fake_report()
    report["phases"] = {"queries": report["phases"]["queries"]}
    report["quick"] = True
    assert len(targets(report)) == 2
    (tmp_path / SPEED_JSON).write_text(json.dumps(report))
    markdown = render(tmp_path)
    assert "## Queries while indexing" in markdown
    assert "## Quality" not in markdown
    assert "--quick" in markdown


def test_benchmarks_md_links_the_speed_page_with_its_targets(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[3] / "docs"
    (tmp_path / "benchmarks.json").write_text((docs / "benchmarks.json").read_text())
    (tmp_path / SPEED_JSON).write_text(json.dumps(fake_report()))
    markdown = render_benchmarks(tmp_path)
    assert "](benchmarks-speed.md)" in markdown
    assert "| typed query p99 during the index load <= 0.5 s | 300 ms | yes |" in markdown


def test_search_pairs_are_deterministic_distinct_and_roo_sized() -> None:
    pairs = search_pairs(40)
    assert pairs == search_pairs(40)
    assert len({p.query for p in pairs}) == len({p.chunk for p in pairs}) == 40
    for pair in pairs:
        assert 20 <= len(pair.query) <= 200
        assert 100 <= len(pair.chunk) <= 1150
        assert pair.query not in pair.chunk  # the docstring is cut out of its chunk
        assert "def " in pair.chunk
    assert len({p.where.split(":")[0] for p in pairs}) > 10  # spread over many files


def test_search_and_vector_comparisons() -> None:
    chunks = np.eye(3, dtype=np.float32)
    queries = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.1, 0.9, 0.0]], dtype=np.float32)
    found = top1(queries, chunks)
    assert found.tolist() == [0, 2, 1]
    assert search_summary([0, 1, 2], found)["top1_accuracy"] == pytest.approx(1 / 3)
    assert agreement(found, np.array([0, 2, 2])) == pytest.approx(2 / 3)
    same = cosine_summary(chunks, chunks)
    assert same["min"] == 1.0
    assert same["max_abs_diff"] == 0.0
    assert cosine_summary(chunks, queries)["min"] < 0.99


def _run(label: str, inputs_per_s: float, queries: int | None = None) -> dict[str, Any]:
    run: dict[str, Any] = {
        "label": label,
        "index": {"inputs": 1200, "inputs_per_s": inputs_per_s, "elapsed_s": 1200 / inputs_per_s},
    }
    if queries is not None:
        run["queries"] = {"queries": queries}
    return run


def test_throughput_shares_per_round_with_an_interval_and_a_query_cost() -> None:
    alone, typed, stress = "index alone", "with typed queries", "back to back"
    runs = [
        _run(alone, 60.0), _run(typed, 57.0, 40), _run(typed, 57.0, 40), _run(alone, 60.0),
        _run(alone, 50.0), _run(typed, 49.0, 40), _run(typed, 49.0, 40), _run(alone, 50.0),
        # 1200 chunks at the alone mean (55/s) take 21.82 s; 400 queries made it 25.82 s
        _run(stress, 1200 / (1200 / 55.0 + 4.0), 400),
    ]  # fmt: skip
    shares = throughput_shares(runs, alone, typed, stress)
    assert shares["round_shares"] == [0.95, 0.98]  # a slow second round does not bias them
    assert shares["throughput_share"] == pytest.approx(53.0 / 55.0, abs=1e-4)
    low, high = shares["round_share_ci95"]
    assert low < 0.95 < 0.98 < high
    assert shares["query_cost_ms"] == pytest.approx(10.0, abs=0.1)
    rate = 160 / sum(1200 / ips for ips in (57.0, 57.0, 49.0, 49.0))
    assert shares["typed_queries_per_s"] == pytest.approx(rate, abs=0.01)
    assert shares["predicted_share"] == pytest.approx(1 - rate * 0.010, abs=1e-3)


def test_throughput_shares_of_one_round_have_no_interval() -> None:
    runs = [_run("a", 60.0), _run("t", 57.0, 9), _run("t", 57.0, 9), _run("a", 60.0)]
    shares = throughput_shares(runs, "a", "t", "stress")
    assert shares["round_shares"] == [0.95]
    assert "round_share_ci95" not in shares
    assert "query_cost_ms" not in shares
