"""The run over time, drawn with Plotly: bytes per second pulled and pushed, arrivals, the
client's and the registry's p99 side by side, and the registry's CPU and memory; the
maintenance windows (``--event``) shaded. Served live at ``/regload/timeline`` and written once,
self-contained (plotly.js inside, no network), to ``PREFIX_report.html`` with ``--csv PREFIX``
and beside Locust's ``--html`` report."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .registry_watch import without_credentials

if TYPE_CHECKING:
    from .run import LoadRun
    from .timeline import Point

PATH = "/regload/timeline"
ROWS_SHOWN = 8  # the busiest endpoints (client) and handlers (registry), by requests in the run


def figure(run: LoadRun) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    points = run.timeline.points
    titles = (
        "bytes/s",
        "arrivals/s",
        "p50 (ms): client, and registry (dashed)",
        "p99 (ms): client, and registry (dashed)",
        "registry CPU (cores)",
        "registry RSS (MiB)",
    )
    fig = make_subplots(rows=6, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.04)
    t = [p.t for p in points]
    for name, values in (("pulled", [p.pulled_bytes for p in points]), ("pushed", [p.pushed_bytes for p in points])):
        fig.add_trace(go.Scatter(x=t[1:], y=_rate(points, values), name=f"{name} B/s", mode="lines"), row=1, col=1)
    for name in ("scheduled", "started", "dropped"):
        values = [float(getattr(p, name)) for p in points]
        fig.add_trace(
            go.Scatter(x=t[1:], y=_rate(points, values), name=f"arrivals {name}/s", mode="lines"), row=2, col=1
        )
    for index, row in ((0, 3), (1, 4)):  # p50, then p99; one legend entry per line, on the p99
        for name in _client_rows(points):
            ys = [p.client[name][index] if name in p.client else None for p in points]
            line = go.Scatter(
                x=t, y=ys, name=f"client {name}", legendgroup=name, showlegend=index == 1, mode="lines+markers"
            )
            fig.add_trace(line, row=row, col=1)
        for url in run.registry_watch.urls:
            for label in _server_rows(points, url):
                rows = [p.server.get(url, {}).get("rows", {}) for p in points]
                ys = [r[label][index] if label in r else None for r in rows]
                line = go.Scatter(
                    x=t,
                    y=ys,
                    name=f"registry {label}",
                    legendgroup=f"{without_credentials(url)} {label}",
                    showlegend=index == 1,
                    mode="lines+markers",
                    line={"dash": "dash"},
                )
                fig.add_trace(line, row=row, col=1)
    for url in run.registry_watch.urls:
        shown = without_credentials(url)
        cpu = [p.server.get(url, {}).get("cpu_cores") for p in points]
        rss = [p.server.get(url, {}).get("rss_bytes") for p in points]
        fig.add_trace(go.Scatter(x=t, y=cpu, name=f"CPU {shown}", mode="lines"), row=5, col=1)
        mib = [None if v is None else v / 2**20 for v in rss]
        fig.add_trace(go.Scatter(x=t, y=mib, name=f"RSS {shown}", mode="lines"), row=6, col=1)
    for name, start, end in run.windows.spans():  # --event: each maintenance window shaded, named on top
        fig.add_vrect(x0=start, x1=end, row="all", col=1, fillcolor="orange", opacity=0.2, line_width=0)
        fig.add_annotation(
            x=start, y=1, xref="x", yref="y domain", text=name, showarrow=False, xanchor="left", row=1, col=1
        )
    for storm in run.storms.storms:  # each storm's release: a dotted line, named on top
        fig.add_vline(x=storm.release_s, row="all", col=1, line_dash="dot", line_color="purple", opacity=0.6)
        fig.add_annotation(
            x=storm.release_s,
            y=1,
            xref="x",
            yref="y domain",
            text=f"storm {storm.number}",
            showarrow=False,
            xanchor="left",
            row=1,
            col=1,
        )
    fig.update_layout(height=1600, title="regload: the run over time", legend={"orientation": "h"})
    fig.update_xaxes(title_text="seconds since the test started", row=6, col=1)
    return fig


def figure_json(run: LoadRun) -> dict[str, Any]:
    return json.loads(figure(run).to_json())


def write_html(path: str, run: LoadRun, extra: list[str]) -> None:
    """A self-contained report: the charts (plotly.js inside) and the summary lines."""
    from plotly.io import to_html

    charts = to_html(figure(run), include_plotlyjs=True, full_html=False)
    text = "\n".join(html.escape(line) for line in extra)
    with open(path, "w") as f:
        f.write(
            "<!doctype html><html><head><meta charset='utf-8'><title>regload report</title></head><body>"
            f"<h1>regload report</h1><pre>{text}</pre>{charts}</body></html>"
        )


def _rate(points: list[Point], values: list[float]) -> list[float | None]:
    """Per second between consecutive points, of a value that only grows."""
    rates: list[float | None] = []
    for i in range(1, len(points)):
        span = points[i].t - points[i - 1].t
        rates.append(round((values[i] - values[i - 1]) / span, 3) if span > 0 else None)
    return rates


def _client_rows(points: list[Point]) -> list[str]:
    """The whole operations, then the busiest endpoints."""
    counts = _busiest(p.client for p in points)
    operations = [r for r in counts if r in ("PULL image", "PUSH image")]
    endpoints = [r for r in counts if r.split(" ", 1)[-1].startswith("/v2/")]
    return operations + endpoints[:ROWS_SHOWN]


def _server_rows(points: list[Point], url: str) -> list[str]:
    return _busiest(p.server.get(url, {}).get("rows", {}) for p in points)[:ROWS_SHOWN]


def _busiest(intervals: Iterable[dict[str, tuple[float | None, float | None, int]]]) -> list[str]:
    """Rows by their requests over the run, the most first (the name breaks a tie, so the order holds)."""
    counts: dict[str, int] = {}
    for rows in intervals:
        for name, (_, _, n) in rows.items():
            counts[name] = counts.get(name, 0) + n
    return sorted(counts, key=lambda name: (-counts[name], name))
