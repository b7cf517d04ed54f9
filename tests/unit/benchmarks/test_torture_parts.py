"""The pure helpers of `make torture` (bench/torture_*.py, bench/faulty_app.py)."""

from __future__ import annotations

import json

from bench.faulty_app import contains
from bench.torture_cases import cjk_text, code_text, encode, one_string_under
from bench.torture_probe import LogCursor, metric_total
from bench.torture_report import verdict

METRICS = """# HELP jina_openai_requests_total HTTP requests by route and status.
jina_openai_requests_total{route="/v1/embeddings",status="200"} 7.0
jina_openai_requests_total{route="/v1/embeddings",status="500"} 2.0
jina_openai_requests_total{route="other",status="500"} 1.0
jina_openai_requests_created{route="other",status="500"} 1.7e9
"""


def test_contains_finds_a_contiguous_run() -> None:
    assert contains([101, 5, 6, 7, 102], [6, 7])
    assert not contains([101, 6, 5, 7, 102], [6, 7])
    assert not contains([1, 2], [])


def test_bodies_stay_under_the_limit() -> None:
    texts = ['def f():\n    return "x"\n', "class A:\n    pass\n"]
    body = one_string_under(10_000, lambda n: code_text(texts, n))
    assert 9_000 < len(body) <= 10_000
    cjk = one_string_under(10_000, lambda n: cjk_text(n // 3, 0))
    assert 9_800 < len(cjk) <= 10_000
    assert json.loads(cjk)["input"][0][0] >= "\u4e00"
    expected = {"input": ["a"], "model": "bench", "encoding_format": "base64"}
    assert json.loads(encode(["a"])) == expected


def test_metric_total_sums_matching_samples() -> None:
    assert metric_total(METRICS, "jina_openai_requests_total", status="500") == 3.0
    assert metric_total(METRICS, "jina_openai_requests_total") == 10.0


def test_log_cursor_reads_only_new_lines(tmp_path) -> None:
    log = tmp_path / "server.log"
    log.write_text("[INFO] Booting worker with pid: 1\n")
    cursor = LogCursor(log)
    cursor.mark()
    access = {"logger": "jina_openai.access", "request_id": "torture-x", "status": 499}
    with log.open("a") as file:
        file.write("[INFO] Booting worker with pid: 2\n")
        file.write(json.dumps(access) + "\n")
        flood = '{"logger": "asyncio", "message": "socket.accept() out of system resource"}\n'
        file.write(flood * 2)
    read = cursor.read()
    assert read.lines == 4
    assert read.booted_workers == 1
    assert read.request("torture-x") == access
    assert read.top_messages()[0]["text"] == "socket.accept() out of system resource"


def test_verdict_names_every_missed_target() -> None:
    result = {
        "facts": {"attack": {"500": 1}, "logged_status": 500},
        "harness_error": None,
        "rss_peak_mib": 2000.0,
        "service_survived": True,
        "worker_restarts": 1,
        "queries": {"p99_s": 3.0, "statuses": {"200": 3, "429": 1}},
        "log": {"other_lines": 0},
    }
    failures = verdict("abort", result, {}, 1024)
    assert len(failures) == 6, failures
    clean = {**result, "facts": {"attack": {"logged 499": 1}, "logged_status": 499}}
    clean.update(
        rss_peak_mib=600.0, worker_restarts=0, queries={"p99_s": 0.1, "statuses": {"200": 9}}
    )
    assert verdict("abort", clean, {}, 1024) == []
