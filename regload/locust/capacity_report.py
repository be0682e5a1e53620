"""What a capacity search says: a line per step as it ends, the table and the answer at the end,
``PREFIX_capacity.json`` and ``PREFIX_capacity.csv``, the web UI's Capacity tab and its chart of
the knee (p99 and achieved rate against the offered rate)."""

from __future__ import annotations

import csv
import json
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..workload.capacity.limits import REGISTRY
from ..workload.capacity.steps import Slo

if TYPE_CHECKING:
    from .capacity_run import CapacityRun, StepRecord

UNITS = MappingProxyType({"pull": "pulls/s", "push": "pushes/s", "mixed": "operations/s"})


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def print_start(settings: Any, slo: Slo) -> None:
    _say(
        f"regload capacity: searching the {settings.mode} rate from {settings.start:g}/s, precision"
        f" {settings.precision:.0%}, each step held {settings.hold:g} s (the first {settings.settle:g} s left out);"
        f" SLO: {', '.join(slo.describe())}"
    )
    _say(HEADER)


HEADER = (
    f"{'step':>4} {'purpose':<8} {'offered/s':>10} {'done/s':>10} {'dropped':>8} {'errors':>7}"
    f" {'CPU':>5}  {'latency (p50 / p99 ms)':<40} verdict"
)


def step_line(record: StepRecord, slo: Slo) -> str:
    m, v = record.measurement, record.verdict
    latency = "; ".join(_latency(m, check.request_type, check.name) for check in slo.percentiles)
    cpu = max(m.health.cpu, default=0.0)
    return (
        f"{record.number:>4} {record.step.purpose:<8} {m.offered:>10.4g} {m.achieved:>10.4g} {m.dropped:>8,}"
        f" {m.errors:>7,} {cpu:>5.0%}  {latency:<40} {v.summary()}"
    )


def _latency(m: Any, request_type: str, name: str) -> str:
    row = m.row(request_type, name)
    if row is None or not row.count:
        return f"{request_type} {name} -"
    return f"{request_type} {name} {row.percentiles.get(50.0, 0):,.0f} / {row.percentiles.get(99.0, 0):,.0f}"


def print_step(record: StepRecord, slo: Slo) -> None:
    _say(step_line(record, slo))


def final_line(run: CapacityRun) -> str:
    result, mode = run.result, run.settings.mode
    assert result is not None
    unit = UNITS.get(mode, "operations/s")
    above = _first_failure_above(run)
    why = ""
    if above is not None:
        v = above.verdict
        why = f"; at {above.step.rate:.4g}/s: " + "; ".join(v.reasons)
        if v.advice:
            why += f" — {v.advice}"
    if result.capacity is None:
        return f"regload capacity: none found: {result.reason}{why}"
    state = "confirmed" if result.confirmed else f"not confirmed: {result.reason}"
    if result.limited_by is None:
        return f"regload capacity: {result.capacity:.4g} {unit} ({state}); no step failed{why}"
    if result.lower_bound:
        return (
            f"regload capacity: at least {result.capacity:.4g} {unit} ({state}): a lower bound, the"
            f" {result.limited_by} limited it, not the registry{why}"
        )
    return f"regload capacity: {result.capacity:.4g} {unit} ({state}), limited by the {REGISTRY}{why}"


def _first_failure_above(run: CapacityRun) -> StepRecord | None:
    """The failed step at the lowest rate above the capacity: what bounded it."""
    capacity = run.result.capacity if run.result is not None else None
    failed = [r for r in run.records if not r.verdict.passed and (capacity is None or r.step.rate > capacity)]
    return min(failed, key=lambda r: r.step.rate, default=None)


def summary_lines(run: CapacityRun) -> list[str]:
    if not run.records or run.slo is None:
        return []
    return [HEADER, *(step_line(r, run.slo) for r in run.records), final_line(run)] if run.result else []


def as_dict(run: CapacityRun) -> dict[str, Any]:
    result, s = run.result, run.settings
    slo = run.slo
    return {
        "mode": s.mode,
        "unit": UNITS.get(s.mode, "operations/s"),
        "capacity": result.capacity if result else None,
        "confirmed": bool(result and result.confirmed),
        "limited_by": result.limited_by if result else None,
        "lower_bound": bool(result and result.lower_bound),
        "reason": result.reason if result else "the search did not end",
        "slo": {
            "percentiles": [
                {"type": c.request_type, "name": c.name, "percentile": c.percentile, "limit_ms": c.limit_ms}
                for c in (slo.percentiles if slo else ())
            ],
            "fail_ratio": slo.fail_ratio if slo else None,
        },
        "search": {"start": s.start, "precision": s.precision, "hold_s": s.hold, "settle_s": s.settle},
        "steps": [_step_dict(r, s.settle) for r in run.records],
    }


def _step_dict(r: StepRecord, settle: float) -> dict[str, Any]:
    m, v = r.measurement, r.verdict
    return {
        "step": r.number,
        "purpose": r.step.purpose,
        "rate": r.step.rate,
        "rates": r.rates,
        "window": {"start_s": round(r.started + settle, 3), "seconds": round(m.seconds, 3)},  # from the search's start
        "offered": m.offered,
        "achieved": round(m.achieved, 3),  # completed per second
        "completed": m.completed,
        "scheduled": m.scheduled,
        "started": m.started,
        "dropped": m.dropped,
        "errors": m.errors,
        "lateness_p99_ms": m.health.lateness_p99_ms,
        "cpu": [round(c, 3) for c in m.health.cpu],
        "users": m.users,
        "rows": [
            {
                "type": row.request_type,
                "name": row.name,
                "count": row.count,
                "failures": row.failures,
                "percentiles_ms": {f"p{p:g}": value for p, value in row.percentiles.items()},
            }
            for row in m.rows
        ],
        "registry": r.registry,
        "verdict": "pass" if v.passed else "fail",
        "limited_by": v.limited_by,
        "reasons": list(v.reasons),
        "advice": v.advice,
    }


def write_json(path: str, run: CapacityRun) -> None:
    with open(path, "w") as f:
        json.dump(as_dict(run), f, indent=2)


CSV_HEADER = (
    "Step",
    "Purpose",
    "Offered rate",
    "Achieved rate",
    "Completed",
    "Scheduled",
    "Dropped",
    "Errors",
    "Max CPU",
    "Lateness p99 ms",
    "Verdict",
    "Limited by",
    "Reasons",
)


def write_csv(path: str, run: CapacityRun) -> None:
    """A row per step; each checked row's p50 and p99 in columns of their own."""
    checks = run.slo.percentiles if run.slo else ()
    labels = [f"{c.request_type} {c.name}" for c in checks]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_HEADER, *(f"{label} {p}" for label in labels for p in ("p50 ms", "p99 ms"))])
        for r in run.records:
            m, v = r.measurement, r.verdict
            cells: list[Any] = [
                r.number,
                r.step.purpose,
                f"{m.offered:g}",
                f"{m.achieved:.3f}",
                m.completed,
                m.scheduled,
                m.dropped,
                m.errors,
                f"{max(m.health.cpu, default=0.0):.3f}",
                "" if m.health.lateness_p99_ms is None else m.health.lateness_p99_ms,
                "pass" if v.passed else "fail",
                v.limited_by or "",
                "; ".join(v.reasons),
            ]
            for check in checks:
                row = m.row(check.request_type, check.name)
                cells += [row.percentiles.get(50.0, "") if row else "", row.percentiles.get(99.0, "") if row else ""]
            writer.writerow(cells)


# -- the web UI ----------------------------------------------------------------------------------------

UI_COLUMNS = (
    ("step", "Step"),
    ("purpose", "Purpose"),
    ("offered", "Offered /s"),
    ("achieved", "Completed /s"),
    ("dropped", "Dropped"),
    ("latency", "p50 / p99 ms"),
    ("cpu", "CPU"),
    ("verdict", "Verdict"),
)


def ui_rows(run: CapacityRun) -> list[dict[str, object]]:
    if run.slo is None:
        return []
    rows: list[dict[str, object]] = [
        {
            "step": r.number,
            "purpose": r.step.purpose,
            "offered": f"{r.measurement.offered:.4g}",
            "achieved": f"{r.measurement.achieved:.4g}",
            "dropped": r.measurement.dropped,
            "latency": "; ".join(_latency(r.measurement, c.request_type, c.name) for c in run.slo.percentiles),
            "cpu": f"{max(r.measurement.health.cpu, default=0.0):.0%}",
            "verdict": r.verdict.summary(),
        }
        for r in run.records
    ]
    if run.result is not None:
        rows.append({"step": "", "purpose": "answer", "verdict": final_line(run)})
    return rows


def knee_figure(run: CapacityRun) -> dict[str, Any]:
    """The knee, as a Plotly figure: each checked row's p99 and the achieved rate against the
    offered rate, one point per step (failed steps marked), the SLO limits as dashed lines."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    records = sorted(run.records, key=lambda r: r.step.rate)
    offered = [r.measurement.offered for r in records]
    symbols = ["circle" if r.verdict.passed else "x" for r in records]
    text = [f"step {r.number}: {r.verdict.summary()}" for r in records]
    checks = run.slo.percentiles if run.slo else ()
    for check in checks:
        values = []
        for r in records:
            row = r.measurement.row(check.request_type, check.name)
            values.append(row.percentiles.get(check.percentile) if row else None)
        label = f"{check.request_type} {check.name} p{check.percentile:g}"
        fig.add_trace(
            go.Scatter(
                x=offered,
                y=values,
                name=f"{label} (ms)",
                mode="lines+markers",
                text=text,
                marker={"symbol": symbols, "size": 9},
            ),
            secondary_y=False,
        )
        fig.add_hline(y=check.limit_ms, line_dash="dash", annotation_text=f"{label} < {check.limit_ms:g} ms")
    fig.add_trace(
        go.Scatter(
            x=offered,
            y=[r.measurement.achieved for r in records],
            name="achieved /s",
            mode="lines+markers",
            text=text,
            marker={"symbol": symbols, "size": 9},
        ),
        secondary_y=True,
    )
    fig.add_trace(
        go.Scatter(x=offered, y=offered, name="offered /s", mode="lines", line={"dash": "dot", "color": "#999"}),
        secondary_y=True,
    )
    if run.result is not None and run.result.capacity is not None:
        fig.add_vline(x=run.result.capacity, line_color="green", annotation_text="capacity")
    fig.update_layout(
        title=final_line(run) if run.result is not None else "capacity search under way",
        xaxis_title="offered rate (operations/s)",
        legend={"orientation": "h"},
        margin={"t": 60},
    )
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="rate (/s)", rangemode="tozero", secondary_y=True)
    fig.update_xaxes(rangemode="tozero")
    return json.loads(fig.to_json())
