"""Bytes per second pulled and pushed, from the ``PULL image`` / ``PUSH image`` stats rows
(on a master these are the workers' aggregated stats)."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from typing import Any

OPERATIONS = ("PULL", "PUSH")


@dataclass(frozen=True)
class Throughput:
    operation: str
    images: int
    failures: int
    bytes: int
    average_bps: float  # over the run so far
    current_bps: float  # over Locust's recent window


def throughput(stats: Any, now: float | None = None) -> list[Throughput]:
    rows = []
    for op in OPERATIONS:
        entry = stats.entries.get(("image", op))
        if entry is None:
            rows.append(Throughput(op, 0, 0, 0, 0.0, 0.0))
            continue
        # Up to the last request: once a run stops, its average stays what it was.
        end = min(now or time.time(), stats.total.last_request_timestamp or time.time())
        elapsed = max(end - stats.total.start_time, 1e-9)
        current = entry.current_rps * entry.avg_content_length
        rows.append(
            Throughput(
                op,
                entry.num_requests,
                entry.num_failures,
                entry.total_content_length,
                entry.total_content_length / elapsed,
                current,
            )
        )
    return rows


def mib(bps: float) -> str:
    return f"{bps / (1 << 20):.1f} MiB/s"


def summary_lines(rows: list[Throughput]) -> list[str]:
    return [
        f"regload throughput: {r.operation.lower()}ed {r.bytes / (1 << 20):.1f} MiB in {r.images} images "
        f"({r.failures} failed), {mib(r.average_bps)} on average"
        for r in rows
        if r.images
    ]


def write_csv(path: str, rows: list[Throughput]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Operation", "Images", "Failures", "Bytes", "Average bytes/s", "Current bytes/s"])
        for r in rows:
            writer.writerow(
                [r.operation, r.images, r.failures, r.bytes, f"{r.average_bps:.0f}", f"{r.current_bps:.0f}"]
            )


def write_json(path: str, rows: list[Throughput]) -> None:
    with open(path, "w") as f:
        json.dump([r.__dict__ for r in rows], f, indent=2)


def ui_rows(rows: list[Throughput]) -> list[dict[str, Any]]:
    return [
        {
            "operation": f"{r.operation} image",
            "images": r.images,
            "failures": r.failures,
            "mib": f"{r.bytes / (1 << 20):.1f}",
            "average": mib(r.average_bps),
            "current": mib(r.current_bps),
        }
        for r in rows
    ]


UI_COLUMNS = (
    ("operation", "Operation"),
    ("images", "Images"),
    ("failures", "Failures"),
    ("mib", "MiB moved"),
    ("average", "Average"),
    ("current", "Current"),
)
