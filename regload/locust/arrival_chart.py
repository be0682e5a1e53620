"""A web UI page charting the open model's achieved rate against its target, second by second
(Locust's own extension points give tables only): ``/regload/arrivals``, drawn by Plotly
(``charts``) from ``/regload/arrivals.json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ..workload.rates import Schedule, expected_count
from .arrival_report import ArrivalRow

PATH = "/regload/arrivals"


def series(schedule_for: Callable[[str], Schedule | None], rows: list[ArrivalRow]) -> dict[str, Any]:
    """Per operation: the target and the achieved (started) arrivals of each second."""
    out = []
    for row in rows:
        schedule = schedule_for(row.operation)
        seconds = max(len(row.started_per_second), int(row.elapsed))
        target = (
            [round(expected_count(schedule, s + 1) - expected_count(schedule, s), 3) for s in range(seconds)]
            if schedule is not None
            else []
        )
        out.append(
            {
                "operation": row.operation,
                "schedule": row.schedule,
                "target": target,
                "achieved": list(row.started_per_second),
                "dropped": row.dropped,
            }
        )
    return {"operations": out}


def figure(data: dict[str, Any]) -> dict[str, Any]:
    """``series`` as a Plotly figure: per operation, the target (dashed) and the arrivals started
    (solid), second by second."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for op in data["operations"]:
        colour = COLOURS.get(op["operation"], "#333")
        fig.add_trace(
            go.Scatter(
                y=op["target"],
                name=f"{op['operation']} target ({op['schedule']})",
                mode="lines",
                line={"dash": "dash", "color": colour},
            )
        )
        fig.add_trace(
            go.Scatter(
                y=op["achieved"],
                name=f"{op['operation']} started ({op['dropped']:,} dropped)",
                mode="lines",
                line={"color": colour},
            )
        )
    fig.update_layout(
        title="Arrivals: achieved vs target, per second",
        xaxis_title="seconds since the schedule started",
        yaxis_title="arrivals per second",
        legend={"orientation": "h"},
    )
    return json.loads(fig.to_json())


COLOURS = MappingProxyType({"PULL": "#1f77b4", "PUSH": "#d62728", "TRACE": "#2ca02c"})
