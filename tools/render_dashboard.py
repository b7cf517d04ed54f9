"""Render a Grafana dashboard's panels to a PNG from a Prometheus HTTP API, with matplotlib.

    python tools/render_dashboard.py [--dashboard JSON] [--prometheus http://127.0.0.1:9090]
        [--start UNIX --end UNIX | --minutes 15] [--step 5] [--rate-interval 1m] [--out PNG]

Every panel's PromQL targets run as `query_range` exactly as the dashboard holds them, with
Grafana's variables replaced: `$instance` (every custom variable) by its "All" value (`.*`),
`$__rate_interval` by `--rate-interval`, `$__interval` by `--step`. Each series is one line,
labelled by the target's `legendFormat`; stat panels print each series' last value. Panels sit
where the dashboard's gridPos puts them, so the PNG reads like the dashboard.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
from matplotlib.ticker import FuncFormatter, MultipleLocator

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DASHBOARD = REPO / "roles/monitoring/files/dashboards/jina-stack.json"
GRID_COLUMNS = 24
ROW_HEIGHT_IN = 0.42  # one gridPos height unit (Grafana: 30 px)
WIDTH_IN = 22.0
LEGEND_ROWS = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Series:
    legend: str
    times: list[datetime]
    values: list[float]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Grafana's `$name` and `${name}` forms, longest names first ($__rate_interval)."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def dashboard_variables(dashboard: dict[str, Any], step_s: float, rate: str) -> dict[str, str]:
    variables = {"__rate_interval": rate, "__interval": f"{step_s:g}s"}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "datasource":
            variables[variable["name"]] = variable.get("allValue") or ".*"
    return variables


def legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt or fmt == "__auto":
        name = labels.get("__name__", "")
        rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
        return f"{name}{{{rest}}}" if rest else name or "{}"
    return LEGEND_ROWS.sub(lambda match: labels.get(match.group(1), ""), fmt).strip()


def query_range(
    prometheus: str, expr: str, start: float, end: float, step_s: float
) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode(
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"}
    )
    url = f"{prometheus.rstrip('/')}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error', body)}")
    return list(body["data"]["result"])


def panel_series(
    panel: dict[str, Any],
    prometheus: str,
    variables: dict[str, str],
    window: tuple[float, float, float],
    empty: list[str],
) -> list[Series]:
    """The series of every target of the panel; the queries that found none go to `empty`."""
    start, end, step_s = window
    series: list[Series] = []
    for target in panel.get("targets", []):
        expr = substitute(target["expr"], variables)
        results = query_range(prometheus, expr, start, end, step_s)
        if not results:
            empty.append(f"{panel['title']}: {expr}")
        for result in results:
            points = [(float(t), float(v)) for t, v in result["values"]]
            finite = [(t, v) for t, v in points if math.isfinite(v)]  # +Inf: no limit set
            series.append(
                Series(
                    legend(target.get("legendFormat", ""), result["metric"]),
                    [datetime.fromtimestamp(t, UTC) for t, _ in finite],
                    [v for _, v in finite],
                )
            )
    return series


def format_value(value: float, unit: str) -> str:
    if unit == "bytes":
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "percentunit":
        return f"{value * 100:.0f} %"
    if unit == "reqps":
        return f"{value:.3g} req/s"
    return f"{value:.4g}"


def draw_timeseries(axes: Axes, series: list[Series], defaults: dict[str, Any]) -> None:
    unit = defaults.get("unit", "short")
    drawn = [s for s in series if s.values]
    for item in drawn:
        axes.plot(item.times, item.values, label=item.legend, linewidth=1.3)
    if "min" in defaults:
        axes.set_ylim(bottom=defaults["min"])
    if "max" in defaults:
        axes.set_ylim(top=defaults["max"])
    low, high = axes.get_ylim()
    if unit == "bytes" and high > low:  # ticks at binary multiples (256 MiB, not 238.4 MiB)
        axes.yaxis.set_major_locator(MultipleLocator(2 ** math.ceil(math.log2((high - low) / 6))))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_value(value, unit)))
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(fontsize=7, loc="upper left", framealpha=0.7)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)


def draw_stat(axes: Axes, series: list[Series], unit: str, text_mode: str) -> None:
    axes.set_axis_off()
    lines = []
    for item in series:
        if not item.values:
            continue
        value = format_value(item.values[-1], unit)
        lines.append(item.legend if text_mode == "name" else f"{item.legend}:  {value}")
    text = "\n".join(lines) if lines else "no data"
    axes.text(0.02, 0.9, text, ha="left", va="top", fontsize=9, transform=axes.transAxes)


def render(
    dashboard: dict[str, Any],
    prometheus: str,
    window: tuple[float, float, float],
    rate: str,
    out: Path,
) -> list[str]:
    """Draw the panels into `out`; returns the queries that found no series."""
    variables = dashboard_variables(dashboard, window[2], rate)
    panels = dashboard["panels"]
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height_in = bottom * ROW_HEIGHT_IN + 0.6
    figure = Figure(figsize=(WIDTH_IN, height_in))
    start, end, _ = window
    span = (
        f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} - "
        f"{datetime.fromtimestamp(end, UTC):%H:%M:%S} UTC"
    )
    figure.suptitle(f"{dashboard['title']}  ({span})", fontsize=13, y=1 - 0.25 / height_in)
    top_offset_in = 0.6
    usable_in = height_in - top_offset_in
    empty: list[str] = []
    for panel in panels:
        grid = panel["gridPos"]
        left = grid["x"] / GRID_COLUMNS
        width = grid["w"] / GRID_COLUMNS
        top = 1 - (top_offset_in + grid["y"] * usable_in / bottom) / height_in
        height = grid["h"] * usable_in / bottom / height_in
        if panel["type"] == "row":
            figure.text(left + 0.005, top - height / 2, panel["title"], fontsize=12, weight="bold")
            continue
        # Margins inside the panel's cell for tick labels and the title.
        axes = figure.add_axes(
            (left + 0.035, top - height + 0.35 / height_in, width - 0.045, height - 0.7 / height_in)
        )
        axes.set_title(panel["title"], fontsize=10, loc="left")
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        series = panel_series(panel, prometheus, variables, window, empty)
        if panel["type"] == "stat":
            text_mode = panel.get("options", {}).get("textMode", "auto")
            draw_stat(axes, series, defaults.get("unit", "short"), text_mode)
        else:
            axes.set_xlim(
                datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(window[1], UTC)
            )
            draw_timeseries(axes, series, defaults)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    return empty


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--start", type=float, help="unix time (default: --minutes before --end)")
    parser.add_argument("--end", type=float, help="unix time (default: now)")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--step", type=float, default=5.0, help="query_range step, seconds")
    parser.add_argument("--rate-interval", default="1m", help="what $__rate_interval becomes")
    parser.add_argument("--out", type=Path, default=REPO / "docs/dashboard.png")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - args.minutes * 60
    dashboard = json.loads(args.dashboard.read_text())
    window = (start, end, args.step)
    empty = render(dashboard, args.prometheus, window, args.rate_interval, args.out)
    print(f"rendered {args.dashboard} to {args.out}")
    for query in empty:
        print(f"no series: {query}")


if __name__ == "__main__":
    main()
