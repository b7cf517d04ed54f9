"""Render OUT/benchmarks.md and its PNG plots from OUT/benchmarks.json and OUT/soak.json.

Called by `make bench`, `make soak` and `make bench-speed` (each re-renders with what exists);
the targets of `make bench-speed` (OUT/benchmarks-speed.json, bench/speed_report.py) get a
section linking its own page; the hand-written analysis in bench/analysis.md is appended
verbatim.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.roo_load_report import summary_table
from bench.speed_report import SPEED_JSON, SPEED_MD, matrix_multiply_note, targets_table

ANALYSIS = Path(__file__).with_name("analysis.md")
THROUGHPUT_PNG = "bench-throughput.png"
P99_PNG = "bench-p99.png"
SOAK_PNG = "soak-rss.png"
ROO_LOAD_JSONS = ("roo-load.json", "roo-load-full-size.json")  # make roo-load's reports in docs/


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-"


def limit_inputs_per_s(report: dict[str, Any]) -> float:
    values = [run["inputs_per_s"] for run in report["in_process"]]
    return sum(values) / len(values)


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows."""
    limit = limit_inputs_per_s(report)
    loads = report["loads"]
    rows: list[tuple[str, str, bool]] = []

    def ips(load: str, server: str, group: str) -> float:
        return float(loads[load][server]["groups"][group]["inputs_per_s"])

    for load in ("index", "query"):
        share = ips(load, "ours", load) / limit
        rows.append(
            (f'"{load}": served >= 90 % of the in-process limit', f"{share:.0%}", share >= 0.9)
        )
    ratio = ips("query", "ours", "query") / max(ips("query", "naive", "query"), 1e-9)
    rows.append(('"query": >= 4x the naive baseline', f"{ratio:.1f}x", ratio >= 4))
    search = loads["mixed"]["ours"]["groups"]["search"]
    p99 = search["p99_s"]
    rows.append(
        ('"mixed": single-chunk query p99 <= 1 s', _fmt_s(p99), p99 is not None and p99 <= 1)
    )
    share = ips("mixed", "ours", "index") / limit
    rows.append(('"mixed": index throughput >= 90 % of the limit', f"{share:.0%}", share >= 0.9))
    rss = loads["index"]["ours"]["rss_peak_mb"] / max(loads["index"]["naive"]["rss_peak_mb"], 1e-9)
    rows.append(('"index": peak RSS <= 0.6x the baseline\'s', f"{rss:.2f}x", rss <= 0.6))
    overload = report["overload"]
    group = overload["groups"]["index"]
    only_ok = set(group["statuses"]) <= {"200", "429"}
    fast_429 = group["rejected_max_s"] is None or group["rejected_max_s"] <= 0.05
    budget = report["parameters"]["memory_budget_mb"] * 1.048576  # MiB -> MB
    under = overload["rss_peak_mb"] <= budget
    rows.append(
        (
            f"{group['clients']} clients: only 200 or 429",
            _statuses(group["statuses"]),
            only_ok,
        )
    )
    rows.append(("... every 429 within 50 ms", f"max {_fmt_s(group['rejected_max_s'])}", fast_429))
    rows.append(
        (
            "... RSS under the memory budget",
            f"peak {overload['rss_peak_mb']:.0f} MB of {budget:.0f} MB",
            under,
        )
    )
    return rows


def _plots(report: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = report["sweep"]
    for filename, key, label in (
        (THROUGHPUT_PNG, "inputs_per_s", "inputs/s"),
        (P99_PNG, "p99_s", "p99 latency (s)"),
    ):
        figure, axes = plt.subplots(1, len(sweep), figsize=(5 * len(sweep), 3.6), squeeze=False)
        for axis, (shape, servers) in zip(axes[0], sweep.items(), strict=True):
            for server, by_clients in servers.items():
                clients = sorted(by_clients, key=int)
                values = [by_clients[c]["groups"][shape][key] or 0 for c in clients]
                axis.plot([int(c) for c in clients], values, marker="o", label=server)
            if key == "inputs_per_s":
                axis.axhline(
                    limit_inputs_per_s(report), color="grey", ls="--", label="in-process limit"
                )
            axis.set_xscale("log", base=2)
            axis.set_xticks([int(c) for c in clients], [str(c) for c in clients])
            axis.set_xlabel("concurrent clients")
            axis.set_ylabel(label)
            inputs = "1 chunk" if shape == "query" else "60 chunks"
            axis.set_title(f'"{shape}" requests ({inputs} each)')
            axis.grid(alpha=0.3)
            axis.legend()
        figure.tight_layout()
        figure.savefig(out / filename, dpi=90)
        plt.close(figure)


def _soak_cache(soak: dict[str, Any]) -> str:
    if "cache" not in soak:
        return ""
    if not soak["cache_memory_mb"]:
        return "Embedding cache off. "
    c = soak["cache"]
    return (
        f"Embedding cache on as the role sets it ({soak['cache_memory_mb']} MiB memory + the "
        f"sqlite tier): {c.get('hits', 0):.0f} hits, {c.get('misses', 0):.0f} misses, "
        f"{c.get('evictions', 0):.0f} evictions. "
    )


def _soak_plot(soak: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.6))
    samples = soak["samples"]  # [seconds, requests done, MB]
    axis.plot([s[1] for s in samples], [s[2] for s in samples], lw=1, label="RSS")
    fit = soak["fit"]
    if fit["points"] >= 2:
        xs = [fit["from_requests"], samples[-1][1]]
        axis.plot(
            xs,
            [fit["intercept_mb"] + fit["slope_mb_per_request"] * x for x in xs],
            "--",
            label="fit after warmup",
        )
    axis.set_xlabel("requests completed")
    axis.set_ylabel("RSS (MB)")
    axis.set_title(f"soak: {soak['slope_mb_per_1000']:+.2f} MB per 1000 requests after warmup")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / SOAK_PNG, dpi=90)
    plt.close(figure)


def _load_table(report: dict[str, Any], limit: float) -> list[str]:
    lines = [
        "| load | server | clients | inputs/s | tokens/s | % of limit | p50 | p99 | statuses "
        "| peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load, servers in report["loads"].items():
        for server, result in servers.items():
            for name, group in result["groups"].items():
                label = load if name == load else f"{load} / {name}"
                lines.append(
                    f"| {label} | {server} | {group['clients']} | {group['inputs_per_s']:.1f} | "
                    f"{group['tokens_per_s']:.0f} | {group['inputs_per_s'] / limit:.0%} | "
                    f"{_fmt_s(group['p50_s'])} | {_fmt_s(group['p99_s'])} | "
                    f"{_statuses(group['statuses'])} | {result['rss_peak_mb']:.0f} MB |"
                )
    return lines


def _ratios(report: dict[str, Any]) -> list[str]:
    lines = [
        "| load | ours / naive inputs/s | ours / naive p99 | ours / naive peak RSS |",
        "|---|---|---|---|",
    ]
    for load, servers in report["loads"].items():
        ours, naive = servers["ours"], servers["naive"]
        group = load if load in ours["groups"] else next(iter(ours["groups"]))
        o, n = ours["groups"][group], naive["groups"][group]
        p99 = f"{o['p99_s'] / n['p99_s']:.2f}" if o["p99_s"] and n["p99_s"] else "-"
        lines.append(
            f"| {load} | {o['inputs_per_s'] / max(n['inputs_per_s'], 1e-9):.2f} | {p99} | "
            f"{ours['rss_peak_mb'] / max(naive['rss_peak_mb'], 1e-9):.2f} |"
        )
    if "search" in report["loads"]["mixed"]["ours"]["groups"]:
        o = report["loads"]["mixed"]["ours"]["groups"]["search"]
        n = report["loads"]["mixed"]["naive"]["groups"]["search"]
        lines.append(
            "| mixed / search (1-chunk queries) | "
            f"{o['inputs_per_s'] / max(n['inputs_per_s'], 1e-9):.2f} | "
            f"{(o['p99_s'] or 0) / max(n['p99_s'] or 1e-9, 1e-9):.3f} | - |"
        )
    return lines


def render(out: Path) -> str:
    report = json.loads((out / "benchmarks.json").read_text())
    soak_file = out / "soak.json"
    soak = json.loads(soak_file.read_text()) if soak_file.is_file() else None
    limit = limit_inputs_per_s(report)
    params = report["parameters"]
    m = report["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (bench/run.py, report: bench/report.py) and `make soak`"
        " (bench/soak.py); do not edit by hand - edit bench/analysis.md, which is appended.",
        "",
        f"Run {report['started']} - {report['finished']} ({report['duration_s']} s). "
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['memory_gb']} GB, "
        f"{m['os']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        "**The machine is shared** (CI runs, other developers' molecule runs): absolute figures are"
        " noisy. Baseline and ours run back to back within each load, and the in-process limit is"
        " measured before and after, so ratios are fair; load averages (1/5/15 min) are recorded"
        " per phase.",
        "",
        f"Parameters: model `{Path(params['model']).name}` ({report['in_process'][0]['dtype']},"
        f" {report['in_process'][0]['device']}), {params['threads']} torch threads, "
        f"{params['chunks']} chunks of Python stdlib source (mean {params['chunk_chars_mean']} "
        f"characters, {report['in_process'][0]['tokens_per_input']} tokens after truncation), "
        f"{params['seconds']:.0f} s per load, {params['sweep_seconds']:.0f} s per sweep point, "
        f"memory budget {params['memory_budget_mb']} MiB for ours.",
        "",
        "## In-process limit",
        "",
        "| when | inputs/s | tokens/s | batch budget | load average |",
        "|---|---|---|---|---|",
    ]
    for when, run in zip(("before", "after"), report["in_process"], strict=False):
        lines.append(
            f"| {when} | {run['inputs_per_s']:.1f} | {run['tokens_per_s']:.0f} | "
            f"{run['max_batch_tokens']} padded tokens | {run['loadavg']} |"
        )
    lines += ["", f"Limit used below: the mean, **{limit:.1f} inputs/s**.", "", "## Targets", ""]
    lines += ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in targets(report):
        lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    if soak is not None:
        lines.append(
            f"| soak: RSS slope < {soak['bound_mb_per_1000']} MB / 1000 requests | "
            f"{soak['slope_mb_per_1000']:+.2f} ({soak['requests']} requests) | "
            f"{'yes' if soak['passed'] else '**no**'} |"
        )
    lines += ["", "## Loads", ""]
    lines.append(
        "Closed-loop clients for the load's duration; requests in flight at the deadline are"
        " awaited and counted (throughput = inputs / time until the last answer). Peak RSS of"
        " the whole server (gunicorn master + worker for ours) during the load; both servers"
        " start fresh before the index load."
    )
    lines.append("")
    lines += _load_table(report, limit)
    lines += ["", "Ratios:", "", *_ratios(report)]
    lines += ["", "Load averages per phase (start of load, end of load):", ""]
    for load, servers in report["loads"].items():
        for server, result in servers.items():
            lines.append(f"- {load} / {server}: {result['loadavg'][0]} -> {result['loadavg'][1]}")
    _plots(report, out)
    lines += [
        "",
        "## Concurrency sweep",
        "",
        f"![throughput vs concurrency]({THROUGHPUT_PNG})",
        "",
        f"![p99 vs concurrency]({P99_PNG})",
        "",
    ]
    overload = report["overload"]
    group = overload["groups"]["index"]
    lines += [
        f"## Overload: {group['clients']} concurrent clients",
        "",
        f"{group['clients']} clients each sending {params['index_inputs']}-chunk requests for "
        f"{params['overload_seconds']:.0f} s"
        f" against ours with a {params['memory_budget_mb']} MiB budget. Statuses: "
        f"{_statuses(group['statuses'])}; 429 latency p99 {_fmt_s(group['rejected_p99_s'])}, max "
        f"{_fmt_s(group['rejected_max_s'])}; accepted requests p50 {_fmt_s(group['p50_s'])}, p99 "
        f"{_fmt_s(group['p99_s'])}; {group['inputs_per_s']:.1f} inputs/s; RSS at the start "
        f"{overload['rss_start_mb']:.0f} MB (after all loads above), "
        f"peak {overload['rss_peak_mb']:.0f} MB; requests still queued at the end: "
        f"{group['unfinished_at_deadline']} (the clients hang up, the service drops their work).",
        "",
        "## Allocator settings (ours, index load)",
        "",
        "| variant | inputs/s | peak RSS | RSS after idle | ",
        "|---|---|---|---|",
    ]
    for variant, result in report["allocator"].items():
        g = result["groups"]["index"]
        lines.append(
            f"| {variant} | {g['inputs_per_s']:.1f} | {result['rss_peak_mb']:.0f} MB | "
            f"{result['rss_end_mb']:.0f} MB |"
        )
    if soak is not None:
        _soak_plot(soak, out)
        lines += [
            "",
            "## Soak",
            "",
            f"`make soak`: {soak['requests']} requests of {soak['min_inputs']}-{soak['max_inputs']}"
            f" chunks (up to {soak['max_chars']} characters) from {soak['clients']} clients in "
            f"{soak['duration_s']:.0f} s, RSS sampled every second; statuses "
            f"{_statuses(soak['statuses'])}. RSS slope after the first "
            f"{soak['warmup_fraction']:.0%} of requests: "
            f"**{soak['slope_mb_per_1000']:+.2f} MB per 1000 requests** (bound "
            f"{soak['bound_mb_per_1000']}); RSS {soak['rss_start_mb']:.0f} -> peak "
            f"{soak['rss_peak_mb']:.0f} -> end {soak['rss_end_mb']:.0f} MB. {_soak_cache(soak)}Run "
            f"{soak['started']}, load average {soak['loadavg']}.",
            "",
            f"![RSS over the soak]({SOAK_PNG})",
        ]
    speed_file = out / SPEED_JSON
    if speed_file.is_file():
        speed = json.loads(speed_file.read_text())
        lines += [
            "",
            "## CPU speed: bfloat16, the embedding cache, the query lane",
            "",
            f"`{speed['command']}`, run {speed['started']} ({speed['duration_s']} s); the phases"
            f" in detail: [{SPEED_MD}]({SPEED_MD})." + matrix_multiply_note(speed["machine"]),
            "",
            *targets_table(speed),
        ]
    roo_loads = [path for path in ROO_LOAD_JSONS if (out / path).is_file()]
    if roo_loads:
        lines += [
            "",
            "## Roo Code at team load",
            "",
            "`make roo-load`: K Roo workspaces indexing at once on one host, Roo's own retries and"
            " 10 % rule, plus a search per second.",
        ]
        for path in roo_loads:
            report = json.loads((out / path).read_text())
            lines += ["", *summary_table(report, path.replace(".json", ".md"))]
    if ANALYSIS.is_file():
        lines += ["", ANALYSIS.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def write_report(out: Path) -> Path:
    path = out / "benchmarks.md"
    path.write_text(render(out))
    return path
