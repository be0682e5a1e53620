"""What the open model did: target vs achieved rate, drops and the schedule's lateness, per
kind — on the console, beside Locust's CSV and JSON, and in a web UI tab."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass

from ..workload.open_model import ArrivalCounts
from ..workload.rates import Schedule, expected_count


@dataclass(frozen=True)
class ArrivalRow:
    operation: str  # PULL or PUSH
    schedule: str  # the rate as given: "10/s", "30s:5,2m:50"
    elapsed: float  # seconds of schedule so far
    target_rate: float  # arrivals per second the schedule asked for, on average so far
    achieved_rate: float  # operations started per second
    scheduled: int
    started: int
    dropped: int
    lateness_p50_ms: float | None
    lateness_p99_ms: float | None
    started_per_second: tuple[int, ...] = ()  # achieved, second by second from the origin


def arrival_row(operation: str, schedule: Schedule, counts: ArrivalCounts, elapsed: float) -> ArrivalRow:
    elapsed = max(elapsed, 1e-9)
    return ArrivalRow(
        operation,
        str(schedule),
        round(elapsed, 3),
        round(expected_count(schedule, elapsed) / elapsed, 3),
        round(counts.started / elapsed, 3),
        counts.scheduled,
        counts.started,
        counts.dropped,
        counts.percentile(0.5),
        counts.percentile(0.99),
        tuple(counts.started_per_second()),
    )


def summary_lines(rows: list[ArrivalRow]) -> list[str]:
    return [
        f"regload arrivals: {r.operation} target {r.target_rate:g}/s, achieved {r.achieved_rate:g}/s"
        f" ({r.started} started, {r.dropped} dropped of {r.scheduled}),"
        f" lateness p50 {_ms(r.lateness_p50_ms)} p99 {_ms(r.lateness_p99_ms)}"
        for r in rows
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


HEADER = (
    "Operation",
    "Schedule",
    "Elapsed s",
    "Target rate",
    "Achieved rate",
    "Scheduled",
    "Started",
    "Dropped",
    "Lateness p50 ms",
    "Lateness p99 ms",
)


def write_csv(path: str, rows: list[ArrivalRow]) -> None:
    """The totals (the second-by-second counts are in the JSON)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for r in rows:
            writer.writerow(["" if v is None else v for v in list(asdict(r).values())[: len(HEADER)]])


def write_json(path: str, rows: list[ArrivalRow]) -> None:
    with open(path, "w") as f:
        json.dump([asdict(r) for r in rows], f, indent=2)


# The web UI's "Arrivals" tab (Locust's extended tables: a key and its columns).
UI_COLUMNS = (
    ("operation", "Operation"),
    ("schedule", "Schedule"),
    ("target", "Target /s"),
    ("achieved", "Achieved /s"),
    ("started", "Started"),
    ("dropped", "Dropped"),
    ("p50", "Lateness p50"),
    ("p99", "Lateness p99"),
)


def ui_rows(rows: list[ArrivalRow]) -> list[dict[str, object]]:
    return [
        {
            "operation": r.operation,
            "schedule": r.schedule,
            "target": f"{r.target_rate:g}",
            "achieved": f"{r.achieved_rate:g}",
            "started": r.started,
            "dropped": r.dropped,
            "p50": _ms(r.lateness_p50_ms),
            "p99": _ms(r.lateness_p99_ms),
        }
        for r in rows
    ]
