"""Render `make scale-out`'s markdown (OUT/NAME.md) from its JSON report: the two phases, the
ratio against issue 17's target, the hosts, the workspaces, and the method
(bench/scale_out_method.md, appended)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# "How it is judged" (issue 17): two hosts reach >= 1.7x the throughput of one host.
TARGET_RATIO = 1.7
# Below this many inputs per phase the run is a smoke test, not the measurement.
SMOKE_INPUTS = 1000
METHOD = Path(__file__).with_name("scale_out_method.md")


def _statuses(statuses: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cores(cores: list[int]) -> str:
    return ",".join(str(core) for core in cores) or "-"


def verdicts(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met): the ratio, and what makes the ratio mean something."""
    phases = report["phases"]
    hosts = [host for phase in phases for host in phase["per_host"]]
    failed = sum(p["failed_batches"] for p in phases)
    abandoned = sum(p["abandoned_499"] for p in phases)
    unfinished = [f"{p['phase']}: {w}" for p in phases for w in p["unfinished"]]
    not_pinned = [
        f"{p['phase']} {h['name']}: {_cores(h['affinity_read_back'])}"
        for p in phases
        for h in p["per_host"]
        if not h["pinned"]
    ]
    dtypes = sorted({str(h["dtype"]) for h in hosts})
    ratio = report["ratio"]
    return [
        (
            f"two hosts reach >= {TARGET_RATIO}x one host's inputs/s",
            "-" if ratio is None else f"{ratio:.2f}x",
            ratio is not None and ratio >= TARGET_RATIO,
        ),
        ("every workspace finished, both phases", ", ".join(unfinished) or "all", not unfinished),
        ("zero failed batches, both phases", str(failed), failed == 0),
        ("zero requests abandoned by the client (499)", str(abandoned), abandoned == 0),
        (
            "every host's threads pinned to its one core (read back)",
            ", ".join(not_pinned) or "all",
            not not_pinned,
        ),
        ("every host runs the same dtype", ", ".join(dtypes), len(dtypes) == 1),
    ]


def render(report: dict[str, Any]) -> str:
    p = report["parameters"]
    phases = report["phases"]
    out = ["# Scale-out: one embedding host vs two behind HAProxy (`make scale-out`)", ""]
    smallest = min(phase["inputs"] for phase in phases)
    if smallest < SMOKE_INPUTS:
        out += [
            f"> **Smoke run, not the measurement:** {smallest} inputs per phase (the measurement "
            f"indexes thousands; see the command in bench/README.md).",
            "",
        ]
    client = "not pinned" if not p["client_cores"] else f"core(s) {_cores(p['client_cores'])}"
    out += [
        f"Started {report['started']}, finished {report['finished']}. Our service, model "
        f"{p['model']}, dtype {p['dtype']}, {p['device']}, torch threads {p['torch_threads']} "
        f"per host; {p['workspaces']} Roo workspace(s) of {p['chunks_per_workspace']} chunks "
        f"in batches of {p['batch_size']}, the same in both phases; hosts on core(s) "
        f"{_cores(p['cores'])}; load generator and HAProxy {client}; {p['usable_cores']} usable "
        f"cores. Command: `{p['command'].strip()}`.",
        "",
        "## Result",
        "",
        "| phase | hosts | cores | time | inputs | inputs/s | steady inputs/s (10-90 %) "
        "| failed batches | 429 | abandoned (499) | load generator CPU | HAProxy CPU "
        "| load avg before |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for phase in phases:
        wall = phase["wall_s"]
        out.append(
            f"| {phase['phase']} | {phase['hosts']} | {_cores(phase['cores'])} | {wall:.1f} s "
            f"| {phase['inputs']} | **{phase['inputs_per_s']:.1f}** "
            f"| {_num(phase['steady_inputs_per_s'])} | {phase['failed_batches']} "
            f"| {phase['http_429']} | {phase['abandoned_499']} "
            f"| {phase['client_cpu_s']:.1f} s ({_share(phase['client_cpu_s'], wall)}) "
            f"| {phase['haproxy_cpu_s']:.1f} s ({_share(phase['haproxy_cpu_s'], wall)}) "
            f"| {' '.join(phase['loadavg_before'])} |"
        )
    ratio, steady = report["ratio"], report["steady_ratio"]
    out += [
        "",
        f"**Two hosts / one host: {_num(ratio, 2)}x** the inputs/s of the whole index load "
        f"(steady part: {_num(steady, 2)}x); target >= {TARGET_RATIO}x.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, measured, met in verdicts(report):
        out.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    out += [
        "",
        "## Hosts",
        "",
        "CPU busy: the host's process tree's CPU seconds during the load over its wall time (1.0 = "
        "its core all the time). Requests: the host's access log (/v1/embeddings); HAProxy: "
        "sessions it sent to that server and their answers.",
        "",
        "| phase | host | core | threads may use | dtype | tokens/s at start | CPU busy "
        "| requests (log) | HAProxy sessions | HAProxy 2xx / 4xx / 5xx |",
        "|---|---|---:|---|---|---:|---:|---|---:|---|",
    ]
    for phase in phases:
        for host in phase["per_host"]:
            hrsp = host["proxy_hrsp"]
            out.append(
                f"| {phase['phase']} | {host['name']} | {host['core']} "
                f"| {_cores(host['affinity_read_back'])} | {host['dtype']} "
                f"| {_num(host['measured_tokens_per_s'], 0)} | {_num(host['cores_busy'], 2)} "
                f"| {_statuses(host['log_statuses'])} | {host['proxy_sessions']} "
                f"| {hrsp.get('2xx')} / {hrsp.get('4xx')} / {hrsp.get('5xx')} |"
            )
    out += [
        "",
        "## Workspaces",
        "",
        "| phase | workspace | chunks | batches | failed | Roo drops index | time "
        "| HTTP requests | 429 | abandoned (499) | SDK retries | embedder 429 retries "
        "| scanner retries |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in phases:
        for w in phase["per_workspace"]:
            drop = w["would_drop_index"]
            out.append(
                f"| {phase['phase']} | {w['name']} | {w['chunks']} | {w['batches']} "
                f"| {w['failed_batches']} | {'-' if drop is None else '**yes**' if drop else 'no'} "
                f"| {w['elapsed_s']:.1f} s | {w['http_requests']} | {w['http_429']} "
                f"| {w['abandoned_499']} | {w['sdk_retries']} | {w['embedder_429_retries']} "
                f"| {w['scanner_retries']} |"
            )
    errors = [e for phase in phases for w in phase["per_workspace"] for e in w["errors"]]
    if errors:
        out += ["", "Errors (first ones): " + "; ".join(f"`{e}`" for e in errors[:5])]
    settings = ", ".join(f"`{k}={v}`" for k, v in report["service_settings"].items())
    maxconn = phases[0]["haproxy_maxconn_per_server"]
    out += [
        "",
        f"Host environment (the jina_embeddings role's defaults, plus the harness's; a fresh "
        f"cache file per host and phase): {settings}. HAProxy maxconn per server: {maxconn}.",
        "",
    ]
    return "\n".join(out) + "\n" + METHOD.read_text()


def _share(cpu_s: float, wall_s: float) -> str:
    return f"{cpu_s / wall_s:.0%} of a core" if wall_s > 0 else "-"


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(render(report))
