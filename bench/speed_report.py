"""Render OUT/benchmarks-speed.md from OUT/benchmarks-speed.json (`make bench-speed`).

`targets` gives the (target, measured, met) rows of issue 15's judgement, for the phases the run
has; bench/report.py shows the same table in docs/benchmarks.md, linking here for the rest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEED_JSON = "benchmarks-speed.json"
SPEED_MD = "benchmarks-speed.md"

SERVED_SPEEDUP = 2.5
MIN_AGREEMENT = 0.99
MIN_COSINE = 0.999
REINDEX_SPEEDUP = 20.0
REINDEX_COSINE = 0.9999
QUERY_P99_S = 0.5
THROUGHPUT_SHARE = 0.95


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _statuses(statuses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in statuses.items()) or "-"


def _retried(run: dict[str, Any]) -> str:
    """The answers a run retried after their Retry-After (429/503), and the time it slept."""
    if not run.get("retries"):
        return "none"
    return f"{_statuses(run['retried'])} (slept {run['retry_wait_s']:.0f} s)"


def matrix_multiply_note(machine: dict[str, Any]) -> str:
    """What the CPU offers bfloat16 (bench/gemm_calibration.py), when the run measured it."""
    gemm = machine.get("matrix_multiply")
    if not gemm:
        return ""
    return (
        f" The CPU ({machine['cpu']}) multiplies matrices ({gemm['shape']}, {gemm['threads']} "
        f"threads) at {gemm['float32_gflops']} GFLOP/s in float32 and "
        f"{gemm['bfloat16_gflops']} GFLOP/s in bfloat16 "
        f"(**{gemm['bfloat16_ratio']:.2f}x**). A forward pass is mostly such multiplies and "
        "its other work gains less, so this is about what bfloat16 can gain on this CPU."
    )


def _share_interval(p: dict[str, Any]) -> str:
    """The rounds' 95 % interval of the throughput share ("" when the run had one round)."""
    interval = p.get("round_share_ci95")
    return f"{interval[0]:.1%}-{interval[1]:.1%}" if interval else ""


def _query_cost(p: dict[str, Any]) -> list[str]:
    """How the share is made up: the rounds, and one query's cost from the back-to-back run."""
    interval = _share_interval(p)
    lines = [
        "Index throughput with typed queries, per ABBA round: "
        + ", ".join(f"{share:.1%}" for share in p.get("round_shares", []))
        + (f" (95 % interval over the rounds {interval})." if interval else "."),
    ]
    if "query_cost_ms" in p:
        lines.append(
            f"One typed query costs the index {p['query_cost_ms']:.1f} ms (the index seconds the "
            "run with typed queries back to back lost, per query, against the alone runs' mean "
            f"rate); at the typed runs' {p['typed_queries_per_s']:.2f} queries/s that predicts "
            f"{p['predicted_share']:.1%} of the alone throughput."
        )
    return lines


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) rows for the phases in the report."""
    phases = report["phases"]
    rows: list[tuple[str, str, bool]] = []
    if "full-size" in phases:
        p = phases["full-size"]
        served = p["served"]
        speedup = _ratio(served["bfloat16"]["inputs_per_s"], served["float32"]["inputs_per_s"])
        rows.append(
            (
                f"full-size JinaBERT served, index load: bfloat16 >= {SERVED_SPEEDUP}x float32",
                f"{speedup:.2f}x",
                speedup >= SERVED_SPEEDUP,
            )
        )
        for where, key in (("served", "hwm_mb"), ("in-process", "peak_rss_mb")):
            runs = served if where == "served" else p["in_process"]
            bf16, fp32 = runs["bfloat16"][key], runs["float32"][key]
            rows.append(
                (
                    f"full-size JinaBERT {where}: peak RSS bfloat16 <= float32",
                    f"{bf16:.0f} MB vs {fp32:.0f} MB",
                    bf16 <= fp32,
                )
            )
    if "quality" in phases:
        p = phases["quality"]
        rows.append(
            (
                f"MiniLM served bfloat16: top-1 agreement with float32 >= {MIN_AGREEMENT:.0%}",
                f"{p['top1_agreement']:.1%} of {p['pairs']} queries",
                p["top1_agreement"] >= MIN_AGREEMENT,
            )
        )
        cosine = min(p["corpus_cosine"]["min"], p["query_cosine"]["min"])
        rows.append(
            (
                f"MiniLM served bfloat16: cosine to float32 >= {MIN_COSINE}",
                f"min {cosine:.5f} (corpus mean {p['corpus_cosine']['mean']:.5f})",
                cosine >= MIN_COSINE,
            )
        )
    if "reindex" in phases:
        passes = phases["reindex"]["passes"]
        for name, label in (("warm", "warm cache"), ("restart", "after a restart (disk)")):
            run = passes[name]
            rows.append(
                (
                    f"re-index, {label}: >= {REINDEX_SPEEDUP:.0f}x faster than cold",
                    f"{run['speedup']:.1f}x",
                    run["speedup"] >= REINDEX_SPEEDUP,
                )
            )
            same = run["same_top1"] and run["cosine_to_cold"]["min"] >= REINDEX_COSINE
            rows.append(
                (
                    f"... identical search results, cosine to cold >= {REINDEX_COSINE}",
                    f"top-1 {'identical' if run['same_top1'] else '**differs**'}, "
                    f"min cosine {run['cosine_to_cold']['min']:.6f}",
                    same,
                )
            )
    if "queries" in phases:
        p = phases["queries"]
        p99 = p["query_p99_s"]
        rows.append(
            (
                f"typed query p99 during the index load <= {QUERY_P99_S} s",
                _fmt_s(p99),
                p99 is not None and p99 <= QUERY_P99_S,
            )
        )
        interval = _share_interval(p)
        rows.append(
            (
                f"index throughput with typed queries >= {THROUGHPUT_SHARE:.0%} of without",
                f"{p['throughput_share']:.1%} ({p['with_queries_inputs_per_s']:.1f} vs "
                f"{p['alone_inputs_per_s']:.1f} inputs/s"
                + (f"; rounds' 95 % interval {interval})" if interval else ")"),
                p["throughput_share"] >= THROUGHPUT_SHARE,
            )
        )
    return rows


def targets_table(report: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for target, measured, met in targets(report):
        lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
    return lines


def _full_size(p: dict[str, Any]) -> list[str]:
    spec = p["spec"]
    lines = [
        "## Full-size JinaBERT v2 architecture, float32 vs bfloat16",
        "",
        f"Architecture: {p['architecture']} (hidden {spec['hidden']}, {spec['layers']} layers, "
        f"{spec['heads']} heads, intermediate {spec['intermediate']}, vocab {spec['vocab']}), "
        "random weights (bench/full_size_model.py); inputs cut to "
        f"{p['max_input_tokens']} tokens (what the real tokenizer makes of these chunks). "
        "Cache off.",
        "",
        "| where | dtype | inputs | inputs/s | peak RSS | notes |",
        "|---|---|---|---|---|---|",
    ]
    for dtype, run in p["in_process"].items():
        lines.append(
            f"| in-process | {dtype} | {run['inputs']} | {run['inputs_per_s']:.2f} | "
            f"{run['peak_rss_mb']:.0f} MB | after load {run['rss_after_load_mb']:.0f} MB, "
            f"load {run['load_s']:.1f} s, {run['tokens_per_input']} tokens/input |"
        )
    for dtype, run in p["served"].items():
        lines.append(
            f"| served | {dtype} | {run['inputs']} | {run['inputs_per_s']:.2f} | "
            f"{run['hwm_mb']:.0f} MB | sampled during the load {run['rss_peak_mb']:.0f} MB, "
            f"{run['requests']} requests, retried: {_retried(run)} |"
        )
    ip, sv = p["in_process"], p["served"]
    lines += [
        "",
        "bfloat16 / float32: in-process "
        f"{_ratio(ip['bfloat16']['inputs_per_s'], ip['float32']['inputs_per_s']):.2f}x, served "
        f"{_ratio(sv['bfloat16']['inputs_per_s'], sv['float32']['inputs_per_s']):.2f}x. Cosine "
        f"bfloat16 to float32: in-process min {p['in_process_cosine']['min']:.5f} / mean "
        f"{p['in_process_cosine']['mean']:.5f}, served min {p['served_cosine']['min']:.5f} "
        f"(random weights: a stress test of the precision, not the real model's figure).",
        "",
        "Served peak RSS is the sum of VmHWM over the server's processes (each one's peak since "
        "it started, the model load included); in-process it is ru_maxrss of a fresh process.",
    ]
    return lines


def _quality(p: dict[str, Any]) -> list[str]:
    search = p["search"]
    lines = [
        "## Quality: MiniLM float32 vs bfloat16",
        "",
        f"`{p['model']}` (real weights) served in each dtype, cache off: {p['chunks']} corpus "
        f"chunks, and the code-search evaluation: {p['pairs']} (query, chunk) pairs from the "
        "Python standard library (bench/speed_eval.py: a function's docstring first line is the "
        "query, its source without the docstring the chunk; search = cosine argmax over the "
        "evaluation's chunks; queries sent one per request, as Roo Code searches).",
        "",
        "| | float32 | bfloat16 |",
        "|---|---|---|",
        f"| top-1 accuracy | {search['float32']['top1_accuracy']:.1%} | "
        f"{search['bfloat16']['top1_accuracy']:.1%} |",
        f"| served inputs/s (corpus) | {p['served']['float32']['inputs_per_s']:.1f} | "
        f"{p['served']['bfloat16']['inputs_per_s']:.1f} |",
        "",
        f"Top-1 agreement: **{p['top1_agreement']:.1%}**. Cosine bfloat16 to float32: corpus min "
        f"{p['corpus_cosine']['min']:.5f} / mean {p['corpus_cosine']['mean']:.5f}; evaluation "
        f"chunks min {p['eval_chunk_cosine']['min']:.5f}; queries min "
        f"{p['query_cosine']['min']:.5f}.",
        "",
        "Example queries: " + "; ".join(f"`{e['query']}` ({e['where']})" for e in p["examples"]),
    ]
    return lines


def _reindex(p: dict[str, Any]) -> list[str]:
    lines = [
        "## Re-index: cache cold, warm, after a restart",
        "",
        f"A Roo-shaped index (batches of 60, 10 in flight) of {p['inputs']} chunks (the corpus "
        f"and the evaluation's chunks), {p['dtype']}, memory tier {p['cache_memory_mb']} MiB, "
        f"disk tier {p['cache_path']}: cold (empty cache), warm (the same server again), "
        "restart (a new server on the same file: only the disk tier). Search: the evaluation's "
        f"{p['pairs']} queries against the evaluation's chunks of each pass. The disk tier held "
        f"{p['disk_entries_before_restart']:.0f} vectors before the restart. Answers the "
        "service refused (429/503) are retried after their Retry-After, as Roo Code retries, "
        "and the wait counts in the time.",
        "",
        "| pass | seconds | inputs/s | speedup | memory hits | disk hits | misses "
        "| vectors vs cold | top-1 accuracy | retried |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in p["passes"].items():
        cache = run["cache"]
        if name == "cold":
            same = "-"
        elif run["identical_vectors"]:
            same = "identical"
        else:
            same = f"min cosine {run['cosine_to_cold']['min']:.6f}"
        speedup = f"{run['speedup']:.1f}x" if "speedup" in run else "1x"
        lines.append(
            f"| {name} | {run['elapsed_s']:.2f} | {run['inputs_per_s']:.0f} | {speedup} | "
            f"{cache['memory_hits']:.0f} | {cache['disk_hits']:.0f} | {cache['misses']:.0f} | "
            f"{same} | {run['search']['top1_accuracy']:.1%} | {_retried(run)} |"
        )
    return lines


def _queries(p: dict[str, Any]) -> list[str]:
    lines = [
        "## Queries while indexing",
        "",
        f"A Roo-shaped index of {p['inputs']} chunks ({p['dtype']}, cache off) on one "
        "server, after a warm-up index, alone and with one client sending typed search "
        f"queries (a docstring's first line, one per request, {p['query_pause_s']} s between "
        "an answer and the next query). The runs go in ABBA order (alone, with, with, alone; "
        f"{len(p.get('round_shares', [])) or 'several'} rounds) so that a drift of the machine's "
        "speed falls on both; the targets compare means and take the p99 over every typed "
        "query. The last two runs are stress shapes: typed queries back to back (which gives one "
        "query's cost, below), and whole chunks sent as queries back to back, whose own compute "
        "takes a share of the CPU (see index + query inputs/s). The service has no switch for "
        "its query lane: this measures it as it ships.",
        "",
        *_query_cost(p),
        "",
        "| run | index inputs/s | index + query inputs/s | index seconds | index retried "
        "| queries | query p50 | query p99 | query max | query statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in p["runs"]:
        index = run["index"]
        q = run.get("queries")
        label = run.get("label") or ("with queries" if run["with_queries"] else "index alone")
        if q is None:
            total = f"{index['inputs_per_s']:.1f}"
            tail = "- | - | - | - | -"
        else:
            query_rate = q["queries"] / max(index["elapsed_s"], 1e-9)
            total = f"{index['inputs_per_s'] + query_rate:.1f}"
            tail = (
                f"{q['queries']} | {_fmt_s(q['p50_s'])} | {_fmt_s(q['p99_s'])} | "
                f"{_fmt_s(q['max_s'])} | {_statuses(q['statuses'])}"
            )
        lines.append(
            f"| {label} | {index['inputs_per_s']:.1f} | {total} | {index['elapsed_s']:.1f} | "
            f"{_retried(index)} | {tail} |"
        )
    return lines


SECTIONS = {"full-size": _full_size, "quality": _quality, "reindex": _reindex, "queries": _queries}


def render(out: Path) -> str:
    report = json.loads((out / SPEED_JSON).read_text())
    m = report["machine"]
    quick = " **A `--quick` run: sizes too small for the figures to mean anything.**"
    lines = [
        "# CPU speed: bfloat16, the embedding cache, the query lane",
        "",
        f"Generated by `{report['command']}` (bench/speed.py, report: bench/speed_report.py);"
        " do not edit by hand." + (quick if report["quick"] else ""),
        "",
        f"Run {report['started']} - {report['finished']} ({report['duration_s']} s). "
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m['memory_gb']} GB, "
        f"{m['os']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + f". {report['parameters']['threads']} torch threads. Every server is ours as "
        "production runs it (gunicorn + uvicorn worker), its dtype and cache set explicitly; "
        "the ratios compare runs of the same invocation." + matrix_multiply_note(m),
        "",
        "## Targets",
        "",
        *targets_table(report),
    ]
    for name, phase in report["phases"].items():
        lines += ["", *SECTIONS[name](phase), "", f"Phase time: {phase['duration_s']} s."]
    return "\n".join(lines) + "\n"


def write_speed_report(out: Path) -> Path:
    path = out / SPEED_MD
    path.write_text(render(out))
    return path
