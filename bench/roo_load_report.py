"""Render `make roo-load`'s markdown (OUT/NAME.md) from its JSON report: per K, a row per
workspace, the searches, the service's statuses, and verdicts against issue 16's targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# "How it is judged" (issue 16): searches' p99 under 1 s with MiniLM, 3 s with the full-size
# architecture; the slowest workspace within 1.5x of the fastest.
SEARCH_P99_S = {"minilm": 1.0, "full-size": 3.0}
SLOWEST_OVER_FASTEST = 1.5
METHOD = Path(__file__).with_name("roo_load_method.md")


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-"


def _dropped(value: bool | None) -> str:
    return "-" if value is None else "**yes**" if value else "no"


def verdicts(run: dict[str, Any], model: str | None) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for one K."""
    rows = run["per_workspace"]
    failed = sum(w["failed_batches"] for w in rows)
    abandoned = sum(w["abandoned_499"] for w in rows)
    dropped = [w["name"] for w in rows if w["would_drop_index"]]
    ratio = run["slowest_over_fastest"]
    unfinished = [w["name"] for w in rows if not w["finished"]]
    out = [
        ("every workspace finished", ", ".join(unfinished) or "all", not unfinished),
        ("zero failed batches", str(failed), failed == 0),
        ("zero requests abandoned by the client (499)", str(abandoned), abandoned == 0),
        ("no index Roo would drop", ", ".join(dropped) or "none", not dropped),
    ]
    if run["workspaces"] > 1 and ratio is not None:
        out.append(
            (
                f"slowest workspace within {SLOWEST_OVER_FASTEST}x of the fastest",
                f"{ratio:.2f}x",
                ratio <= SLOWEST_OVER_FASTEST,
            )
        )
    bound = SEARCH_P99_S.get(model or "")
    p99 = run["searches"]["p99_s"]
    if bound is not None:
        out.append((f"searches' p99 under {bound:.0f} s", _s(p99), p99 is not None and p99 < bound))
    return out


def summary_table(report: dict[str, Any], page: str) -> list[str]:
    """A row per K, for docs/benchmarks.md: the figures issue 16 judges, and the page."""
    p = report["parameters"]
    lines = [
        f"[{page}]({page}): model {p.get('model') or p.get('url')}, {p['chunks_per_workspace']}"
        f" chunks per workspace, {_keys(p.get('keys', 'shared'))}; run {report['started']}.",
        "",
        "| K | wall | slowest / fastest | failed batches | 499 | 429 | indexes Roo drops |"
        " searches' p99 |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for run in report["runs"]:
        rows = run["per_workspace"]
        dropped = [w["name"] for w in rows if w["would_drop_index"]]
        lines.append(
            f"| {run['workspaces']} | {run['wall_s']:.0f} s | {run['slowest_over_fastest'] or '-'}"
            f" | {sum(w['failed_batches'] for w in rows)} | {sum(w['abandoned_499'] for w in rows)}"
            f" | {sum(w['http_429'] for w in rows)} | {', '.join(dropped) or 'none'}"
            f" | {_s(run['searches']['p99_s'])} |"
        )
    return lines


def _keys(mode: str) -> str:
    if mode == "per-workspace":
        return "an API key per workspace (a team's host: the fair share is per key)"
    return "one API key for every workspace (one person's windows: one share)"


def render(report: dict[str, Any]) -> str:
    p = report["parameters"]
    target = p["url"] or f"our service, model {p['model']}, dtype {p['dtype']}, {p['device']}"
    lines = [
        "# Roo Code at team load: `make roo-load`",
        "",
        f"Started {report['started']}, finished {report['finished']}. {target}; "
        f"{p['chunks_per_workspace']} chunks per workspace in batches of {p['batch_size']}, "
        f"{p['search_rate_per_s']:g} search/s; client patience {p['patience_s']:.0f} s; "
        f"{_keys(p.get('keys', 'shared'))}; "
        f"{p['usable_cores']} usable cores, load average at the start {' '.join(p['loadavg'])}.",
        "Each workspace is one Roo window (bench/roo_client.py: Roo's scanner, embedder and "
        "global rate limit over the openai SDK with Node's retry rules). Command: "
        f'`make roo-load ROO_LOAD_ARGS="--workspaces {",".join(map(str, p["workspaces"]))} '
        f"--chunks {p['chunks_per_workspace']} --search-rate {p['search_rate_per_s']:g}"
        + (f" --model {p['model']}" if p.get("model") and p["model"] != "minilm" else "")
        + (" --keys shared" if p.get("keys", "shared") == "shared" else "")
        + (f" --name {report['name']}" if report.get("name", "roo-load") != "roo-load" else "")
        + '"`.',
        "",
    ]
    for run in report["runs"]:
        k = run["workspaces"]
        lines += [
            f"## K = {k}",
            "",
            f"Wall time {run['wall_s']:.1f} s; slowest / fastest workspace "
            f"{run['slowest_over_fastest'] or '-'}.",
            "",
            "| workspace | chunks | batches | failed | Roo drops index | time | HTTP requests "
            "| 429 | abandoned (499) | SDK retries | embedder 429 retries | global waits "
            "| scanner retries |",
            "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in run["per_workspace"]:
            lines.append(
                f"| {w['name']} | {w['chunks']} | {w['batches']} | {w['failed_batches']} "
                f"| {_dropped(w['would_drop_index'])} "
                f"| {_s(w['elapsed_s']) if w['finished'] else 'unfinished'} "
                f"| {w['http_requests']} | {w['http_429']} | {w['abandoned_499']} "
                f"| {w['sdk_retries']} | {w['embedder_429_retries']} | {w['global_waits']} "
                f"| {w['scanner_retries']} |"
            )
        s = run["searches"]
        lines += [
            "",
            f"Searches: {s['searches']} sent, {s['answered']} answered; p50 {_s(s['p50_s'])}, "
            f"p99 {_s(s['p99_s'])}, max {_s(s['max_s'])}; outcomes {_statuses(s['outcomes'])}; "
            f"HTTP {_statuses(s['http_statuses'])}.",
            "",
            "Service, /v1/embeddings statuses: /metrics "
            f"{_statuses(run['server']['metrics_statuses'])}"
            + (
                f"; log {_statuses(run['server']['log_statuses'])}"
                if "log_statuses" in run["server"]
                else ""
            )
            + ".",
            "",
        ]
        if not all(w["finished"] for w in run["per_workspace"]):
            lines += [
                "Unfinished at `--max-seconds`: the harness hung up on the requests still in "
                "flight, which the service counts as 499 too (not the client's patience: that is "
                "the abandoned column).",
                "",
            ]
        errors = [e for w in run["per_workspace"] for e in w["errors"]]
        if errors:
            lines += ["Batch errors (first few):", ""] + [f"- `{e}`" for e in errors[:5]] + [""]
        lines += ["| target | measured | met |", "|---|---|---|"]
        for name, measured, met in verdicts(run, p["model"]):
            lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
        lines.append("")
    settings = report.get("service_settings")
    if settings:
        lines += [
            "Service environment (the jina_embeddings role's defaults, plus the harness's): "
            + ", ".join(f"`{k}={v}`" for k, v in settings.items())
            + ".",
            "",
        ]
    return "\n".join(lines) + "\n" + METHOD.read_text()


def write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(render(report))


def main() -> None:
    """Re-render: python -m bench.roo_load_report docs/roo-load.json"""
    import json
    import sys

    source = Path(sys.argv[1])
    write_report(source.with_suffix(".md"), json.loads(source.read_text()))


if __name__ == "__main__":
    main()
