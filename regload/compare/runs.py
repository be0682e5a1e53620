"""A run's results as rows of metrics, read from the files a Locust run leaves.

``PREFIX.json`` (Locust's ``--json-file PREFIX``) gives a row per stats entry (``PULL image``,
``GET /v2/<name>/blobs/<digest>``…) with its count, failures, p50, p99 (Locust's rule, from its
response-time histogram) and throughput (requests per second over the run). regload's own files
beside it add rows when present: ``PREFIX_capacity.json`` (``capacity``), ``PREFIX_registry.json``
(``registry <handler> <method>``: the server's count, p50 and p99; ``registry process``: CPU and
memory) and ``PREFIX_storms.json`` (``storms``: the median storm's completion, the amplification).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from ..workload.percentiles import locust_percentile

#: Metrics whose rise is the regression (latency, failures…); the others regress when they fall.
LOWER_IS_BETTER = ("failures", "fail_ratio", "complete_ms", "amplification", "cpu_cores", "rss_mib")
HIGHER_IS_BETTER = ("throughput", "capacity")


@dataclass
class Run:
    """One run: its rows (label → metric → value), in the order they were found."""

    source: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the comparison should say about this run
    files: list[str] = field(default_factory=list)

    def add(self, label: str, metrics: Mapping[str, float | None]) -> None:
        kept = {k: float(v) for k, v in metrics.items() if v is not None}
        if kept:
            self.rows.setdefault(label, {}).update(kept)


def load_run(path: str) -> Run:
    """A run from ``PREFIX`` or ``PREFIX.json`` (Locust's ``--json-file``), with regload's files
    beside it; a path that is none of them is a usage error naming it."""
    prefix = path[: -len(".json")] if path.endswith(".json") else path
    stats_path = f"{prefix}.json"
    if not os.path.exists(stats_path):
        raise UsageError(f"{path}: no such results: expected Locust's --json-file output, PREFIX.json")
    run = Run(prefix)
    _locust_rows(run, _read(stats_path))
    run.files.append(stats_path)
    for suffix, reader in (("capacity", _capacity_rows), ("registry", _registry_rows), ("storms", _storm_rows)):
        extra = f"{prefix}_{suffix}.json"
        if os.path.exists(extra):
            reader(run, _read(extra))
            run.files.append(extra)
    return run


def percentile(times: Mapping[str, int], total: int, fraction: float) -> float | None:
    """Locust's rule over its response-time histogram (``workload.percentiles``); None when empty."""
    return locust_percentile(times, total, fraction) if total > 0 and times else None


def _read(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise UsageError(f"{path}: not JSON: {e}") from None


def _locust_rows(run: Run, entries: Any) -> None:
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "num_requests" in e for e in entries):
        raise UsageError(f"{run.source}.json: not Locust's --json-file output (a list of stats entries)")
    try:
        starts = [float(e["start_time"]) for e in entries if e.get("num_requests")]
        ends = [float(e["last_request_timestamp"]) for e in entries if e.get("num_requests")]
        seconds = max(ends) - min(starts) if starts and ends else 0.0
        for e in entries:
            total = int(e["num_requests"])
            times = e.get("response_times") or {}
            run.add(
                f"{e['method']} {e['name']}",
                {
                    "count": total,
                    "failures": int(e["num_failures"]),
                    "fail_ratio": int(e["num_failures"]) / total if total else None,
                    "p50": percentile(times, sum(times.values()), 0.5),
                    "p99": percentile(times, sum(times.values()), 0.99),
                    "throughput": total / seconds if seconds > 0 else None,
                },
            )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{run.source}.json: a stats entry lacks or mangles {e}") from None


def _capacity_rows(run: Run, data: Any) -> None:
    if not isinstance(data, dict):
        return
    run.add("capacity", {"capacity": data.get("capacity")})
    if data.get("lower_bound"):
        run.notes.append(f"its capacity is a lower bound, limited by the {data.get('limited_by')}, not the registry")
    elif data.get("capacity") is not None and not data.get("confirmed"):
        run.notes.append("its capacity was not confirmed")


def _registry_rows(run: Run, reports: Any) -> None:
    for index, report in enumerate(reports if isinstance(reports, list) else []):
        # Metrics URLs hold ports that change between runs: the registries are told apart by order.
        name = "registry" if index == 0 else f"registry{index + 1}"
        for e in report.get("endpoints", ()):
            run.add(
                f"{name} {e['handler']} {e['method']}",
                {"count": e.get("server_requests"), "p50": e.get("server_p50_ms"), "p99": e.get("server_p99_ms")},
            )
        process = report.get("process") or {}
        rss = process.get("rss_max_bytes")
        run.add(
            f"{name} process",
            {"cpu_cores": process.get("cpu_cores_avg"), "rss_mib": rss / 2**20 if rss is not None else None},
        )


def _storm_rows(run: Run, data: Any) -> None:
    storms = [s for s in (data.get("storms", []) if isinstance(data, dict) else []) if not s.get("cut_short")]
    if not storms:
        return
    done = [s["last_done_ms"] for s in storms if s.get("last_done_ms") is not None]
    amplified = [s["amplification"] for s in storms if s.get("amplification") is not None]
    run.add(
        "storms",
        {
            "count": len(storms),
            "failures": sum(int(s.get("failures", 0)) + int(s.get("not_done", 0)) for s in storms),
            "complete_ms": statistics.median(done) if done else None,
            "amplification": statistics.median(amplified) if amplified else None,
        },
    )
