"""The maintenance windows at the end of a run (``--event``): each event (its command, exit status
and last lines of output), the phases side by side per row (count, failures, rate, p50, p99),
and one line per window saying what changed; on the console, in ``PREFIX_events.json`` and in
the web UI's Events tab."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..workload.maintenance import OPERATIONS, Phase, change_lines
from .maintenance import DONE, FAILED, NOT_REACHED, STOPPED, EventRecord

if TYPE_CHECKING:
    from .maintenance import MaintenanceWindows

ROWS_SHOWN = 10  # on the console and in the tab: the operations, then the busiest endpoints
BOUNDARY_NOTE = (
    "a request counts in the phase in which it ends; with workers, their stats reach the master every"
    " few seconds (Locust's stats report interval, 3 s): a boundary is that fuzzy"
)


def event_line(record: EventRecord, windows: MaintenanceWindows) -> str:
    event = record.event
    what = windows.shown(event.command) if event.command else f"a window of {event.duration:g} s"
    if record.start is None:
        return f"{event.name} at {event.at:g} s: {NOT_REACHED} (the test ended first): {what}"
    end = record.end.t if record.end is not None else windows.elapsed()
    status = {
        DONE: f"exit {record.exit_status}" if event.command else "done",
        FAILED: record.error or f"FAILED, exit {record.exit_status}",
        STOPPED: "stopped at the test's end" + (f", exit {record.exit_status}" if event.command else ""),
    }.get(record.status, record.status)
    last = f" (last output: {record.output[-1]})" if record.status == FAILED and record.output else ""
    return f"{event.name} at {record.start.t:.1f} s for {end - record.start.t:.1f} s, {status}{last}: {what}"


def summary_lines(windows: MaintenanceWindows) -> list[str]:
    if not windows.active:
        return []
    found = windows.phases(final=True)
    lines = [f"regload event: {event_line(r, windows)}" for r in windows.records]
    lines.append("regload phases (ms; rate: requests per second over the phase):")
    lines.append(
        f"  {'row':<40} {'phase':<24} {'window s':>13} {'count':>8} {'fail':>6} {'rate/s':>8} {'p50':>7} {'p99':>7}"
    )
    for key in shown_rows(found):
        for i, phase in enumerate(found):
            row = phase.row(*key)
            count, failures, rps = (row.count, row.failures, row.rps) if row else (0, 0, 0.0)
            p50, p99 = (_ms(row.p50_ms), _ms(row.p99_ms)) if row else ("-", "-")
            label = phase.label + (" (stats reset)" if phase.stats_reset else "")
            lines.append(
                f"  {(' '.join(key) if i == 0 else ''):<40.40} {label:<24.24} {_window(phase):>13}"
                f" {count:>8,} {failures:>6,} {rps:>8.1f} {p50:>7} {p99:>7}"
            )
    lines += [f"regload phases: {line}" for line in change_lines(found)]
    lines.append(f"regload phases: note: {BOUNDARY_NOTE}")
    return lines


def shown_rows(found: list[Phase]) -> list[tuple[str, str]]:
    """The operations, then the busiest other rows over every phase."""
    counts: dict[tuple[str, str], int] = {}
    for phase in found:
        for r in phase.rows:
            counts[(r.method, r.name)] = counts.get((r.method, r.name), 0) + r.count
    ordered = sorted(counts, key=lambda k: (k[0] not in OPERATIONS, -counts[k], k))
    return ordered[:ROWS_SHOWN]


def as_dict(windows: MaintenanceWindows) -> dict[str, Any]:
    found = windows.phases(final=True)
    return {
        "test_started_at": round(windows.started_at, 3),  # Unix time: the *_s times count from it
        "events": [_event(r, windows) for r in windows.records],
        "phases": [_phase(p) for p in found],
        "changes": change_lines(found),
        "note": BOUNDARY_NOTE,
    }


def _event(record: EventRecord, windows: MaintenanceWindows) -> dict[str, Any]:
    event = record.event
    return {
        "name": event.name,
        "at_s": event.at,
        "command": windows.shown(event.command) if event.command else None,
        "for_s": event.duration,
        "status": record.status,
        "exit_status": record.exit_status,
        "error": record.error or None,
        "start_s": _round(record.start.t) if record.start else None,
        "end_s": _round(record.end.t) if record.end else None,
        "output_tail": list(record.output),
    }


def _phase(phase: Phase) -> dict[str, Any]:
    return {
        "phase": phase.phase,
        "name": phase.name,
        "label": phase.label,
        "start_s": _round(phase.start),
        "end_s": _round(phase.end),
        "seconds": _round(phase.seconds),
        "stats_reset": phase.stats_reset,
        "rows": [
            {
                "row": r.row,
                "method": r.method,
                "name": r.name,
                "count": r.count,
                "failures": r.failures,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "rps": round(r.rps, 3),
            }
            for r in phase.rows
        ],
    }


def write_json(path: str, windows: MaintenanceWindows) -> None:
    with open(path, "w") as f:
        json.dump(as_dict(windows), f, indent=2)


UI_COLUMNS = (
    ("row", "Row"),
    ("phase", "Phase"),
    ("window", "Window s"),
    ("count", "Count"),
    ("failures", "Failures"),
    ("rps", "Req/s"),
    ("p50", "p50 ms"),
    ("p99", "p99 ms"),
)


def ui_rows(windows: MaintenanceWindows) -> list[dict[str, object]]:
    """The tab, live: the events, what changed so far, then the phases per row."""
    if not windows.active:
        waiting = "the events start with the test" if windows.events else "no --event given"
        return [{"row": f"{waiting}: see docs/maintenance.md"}]
    found = windows.phases(final=windows.last is not None)
    rows: list[dict[str, object]] = [{"row": f"event {event_line(r, windows)}"} for r in windows.records]
    rows += [{"row": line} for line in change_lines(found)]
    rows.append({"row": "charts: the run over time, the windows shaded", "phase": "/regload/timeline"})
    for key in shown_rows(found):
        for phase in found:
            data = phase.row(*key)
            rows.append(
                {
                    "row": " ".join(key),
                    "phase": phase.label,
                    "window": _window(phase),
                    "count": data.count if data else 0,
                    "failures": data.failures if data else 0,
                    "rps": f"{data.rps:.1f}" if data else "0.0",
                    "p50": _ms(data.p50_ms if data else None),
                    "p99": _ms(data.p99_ms if data else None),
                }
            )
    return rows


def _window(phase: Phase) -> str:
    return f"{phase.start:.1f}-{phase.end:.1f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _round(value: float) -> float:
    return round(value, 3)
