"""Verdicts of `make torture` against its targets, and docs/torture.md (+ the raw JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QUERY_P99_TARGET_S = 2.0
IDLE_CLOSE_SLACK_S = 1.0
LOG_FLOOD_LINES = 1000
WATCHDOG_CASES = frozenset({"hang", "fail"})  # a worker exit is what they should cause
# What a query may get while the watchdog replaces the worker (not ready yet, connection lost).
WATCHDOG_TOLERATED = frozenset({"503", "transport:ConnectError", "transport:RemoteProtocolError"})


def verdict(
    name: str, result: dict[str, Any], settings: dict[str, str], budget_mib: float
) -> list[str]:
    """The targets this case missed (empty: it passed)."""
    failures: list[str] = []
    facts = result["facts"]
    if result.get("harness_error"):
        failures.append(f"harness error: {result['harness_error']}")
    if result["rss_peak_mib"] > budget_mib:
        failures.append(f"peak RSS {result['rss_peak_mib']:.0f} > {budget_mib:.0f} MiB")
    if name != "fail" and _count_500(facts.get("attack", {})):
        failures.append("the attack got 500")
    if not result["service_survived"]:
        failures.append("the service died")
    if result["worker_restarts"] and name not in WATCHDOG_CASES:
        failures.append(f"{result['worker_restarts']} worker restart(s)")
    p99 = result["queries"].get("p99_s")
    if p99 is not None and p99 > QUERY_P99_TARGET_S:
        failures.append(f"query p99 {p99:.1f} s > {QUERY_P99_TARGET_S:.0f} s")
    refused = {
        status: n
        for status, n in result["queries"].get("statuses", {}).items()
        if status != "200" and not (name in WATCHDOG_CASES and status in WATCHDOG_TOLERATED)
    }
    if refused:
        failures.append(f"queries got {_statuses(refused)}")
    failures += _case_targets(name, facts, settings, result)
    return failures


def _count_500(attack: dict[str, Any]) -> int:
    total = 0
    for key, value in attack.items():
        if isinstance(value, dict):
            total += _count_500(value)
        elif key.endswith("500"):
            total += int(value)
    return total


def _setting(settings: dict[str, str], name: str, default: float) -> float:
    return float(settings.get(f"JINA_OPENAI_{name.upper()}", default))


def _case_targets(
    name: str, facts: dict[str, Any], settings: dict[str, str], result: dict[str, Any]
) -> list[str]:
    failures: list[str] = []
    if name in ("idle", "idle_lowfd"):
        limit = _setting(settings, "header_timeout_s", 5) + IDLE_CLOSE_SLACK_S
        for kind in ("silent", "partial"):
            sockets = facts.get(kind, {})
            if sockets.get("still_open_at_cap"):
                failures.append(f"{sockets['still_open_at_cap']} {kind} sockets open at cap")
            worst = sockets.get("closed_after_s_max")
            if worst is not None and worst > limit:
                failures.append(f"{kind} sockets closed after up to {worst:.0f} s > {limit:.0f} s")
        health = facts.get("health", {}).get("statuses", {})
        if set(health) - {"200"}:
            failures.append(f"/health: {health}")
        if result["log"]["other_lines"] > LOG_FLOOD_LINES:
            failures.append(f"log flood: {result['log']['other_lines']} lines")
    if name == "abort" and facts.get("logged_status") != 499:
        failures.append(f"logged status {facts.get('logged_status')}, not 499")
    if name == "abort" and facts.get("metrics_500_added"):
        failures.append("/metrics counted a 500")
    if name == "xff" and facts.get("logged_client") != "127.0.0.1":
        failures.append(f"client logged as {facts.get('logged_client')}")
    if name == "hang":
        deadline = _setting(settings, "request_timeout_s", 20) + 5
        request = facts.get("request", {})
        if not str(request.get("status", "")).isdigit() or request.get("seconds", 1e9) > deadline:
            failures.append(f"hung request not answered within {deadline:.0f} s")
    if name in WATCHDOG_CASES and facts.get("ready_again_after_s") is None:
        failures.append("worker not replaced (or not ready again)")
    return failures


def _statuses(attack: dict[str, Any]) -> str:
    parts = []
    for key, value in attack.items():
        parts.append(f"{key}: {_statuses(value)}" if isinstance(value, dict) else f"{key} x{value}")
    return ", ".join(parts)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(report: dict[str, Any]) -> str:
    budget = report["memory_budget_mib"]
    lines = [
        f"# {report['title']}",
        "",
        f"Command: `{report['command']}`  ",
        f"Code: {report['code']}  ",
        f"Started {report['started']}, {report['duration_s']:.0f} s; load average before/after "
        f"{report['loadavg'][0]} / {report['loadavg'][1]}; {report['machine']}.",
        "",
        "The service ran as production runs it (gunicorn, `-c python:jina_openai.gunicorn_conf`, "
        "uvicorn workers) with this environment on top of the bench defaults "
        "(bench/servers.py); timeouts are short so that the watchdog cases finish in minutes:",
        "",
        "```",
        *[f"{key}={value}" for key, value in sorted(report["settings"].items())],
        "```",
        "",
        f"Queries: one ~1000-character code chunk, `encoding_format: base64`, "
        f"{report['query_rate_per_s']}/s open loop, each giving up after "
        f'{report["query_timeout_s"]:.0f} s ("timeout"). RSS: the whole process tree '
        "(master + workers), sampled every 0.1 s from the start of the case until the service "
        "was idle again. Targets: no 500 caused by an attack, no worker death except the "
        f"deliberate watchdog exit, peak RSS within {budget} MiB, query p99 within "
        f"{QUERY_P99_TARGET_S:.0f} s, idle sockets closed within `header_timeout_s` "
        f"(+{IDLE_CLOSE_SLACK_S:.0f} s); added here: every query answered 200 (in `hang` and "
        "`fail` also 503 or a lost connection while the worker is replaced), no log flood "
        f"(more than {LOG_FLOOD_LINES} lines that are not request lines).",
        "",
        f"| case | RSS MiB before → peak (5 s after) vs {budget} | attack got | queries | "
        "query p50 / p99 s | worker restarts | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in report["cases"].items():
        queries = result["queries"]
        restarts = str(result["worker_restarts"])
        if result.get("restarted_by_harness"):
            restarts += f"; harness restarted it ({result['restarted_by_harness']})"
        failures = result["failures"]
        attack = _statuses(result["facts"].get("attack", {}))
        lines.append(
            f"| {name} | {result['rss_before_mib']:.0f} → **{result['rss_peak_mib']:.0f}** "
            f"({result['rss_after_5s_mib']:.0f}) | {attack} | "
            f"{queries['count']}: {_statuses(queries['statuses'])} | "
            f"{_seconds(queries.get('p50_s'))} / {_seconds(queries.get('p99_s'))} | {restarts} | "
            f"{'pass' if not failures else 'FAIL: ' + '; '.join(failures)} |"
        )
    lines += ["", "## Per case", ""]
    for name, result in report["cases"].items():
        facts = {key: value for key, value in result["facts"].items() if key != "attack"}
        lines += [
            f"### {name}: {result['description']}",
            "",
            f"Service CPU {result['cpu_s']:.1f} s; case {result['case_s']:.1f} s, idle again "
            f"after {_seconds(result['idle_after_s'])} s more; log: {result['log']['lines']} "
            f"lines ({result['log']['other_lines']} not request lines"
            f", {result['log']['lines_per_s']:.0f}/s).",
            "",
            "```json",
            json.dumps(facts, separators=(", ", ": ")),
            "```",
        ]
        if result["log"]["top_messages"]:
            lines += ["", "Most frequent other log lines:", ""]
            lines += [f"- {m['lines']} x `{m['text']}`" for m in result["log"]["top_messages"]]
        lines.append("")
    return "\n".join(lines)


def write_report(out: Path, name: str, report: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    path = out / f"{name}.md"
    path.write_text(markdown(report))
    return path
