"""A capacity step's window in one load process, and the windows of every process together.

While a window is open, the process logs the operation rows (``PULL image``, ``PUSH image``) and
every checked row into stats of the window's own (Locust's ``StatsEntry``, so percentiles are
computed and merged as Locust's are), counts failed requests, and notes its arrivals, scheduler
lateness and CPU time at the open and the close. Closed, the window is a plain dict: a worker
sends it to its master, which merges every worker's into one ``Measurement``.

Requests are counted in the window in which they end (as Locust's own stats count them).
"""

from __future__ import annotations

import time
from typing import Any

from locust.stats import RequestStats, StatsEntry

from ..workload.capacity.limits import GeneratorHealth
from ..workload.capacity.steps import Measurement, RowWindow
from ..workload.open_model import ArrivalCounts, Arrivals

Key = tuple[str, str]  # (name, request type), as Locust keys its entries


class StepWindow:
    """One process's window of one step."""

    def __init__(self, step: int, keys: set[Key], schedules: dict[str, Arrivals], users: dict[str, int]) -> None:
        self.step = step
        self.keys = keys
        self.stats = RequestStats(use_response_times_cache=False)
        self.errors = 0
        self.users = users
        self._schedules = schedules
        self._arrivals_at_open = {kind: _snapshot(a.total) for kind, a in schedules.items()}
        self._cpu_at_open = time.process_time()
        self._opened = time.perf_counter()

    def log(self, request_type: str, name: str, response_time: float, length: int, exception: Any) -> None:
        if exception is not None:
            self.errors += 1
        if (name, request_type) in self.keys:
            self.stats.log_request(request_type, name, round(response_time), length or 0)
            if exception is not None:
                self.stats.log_error(request_type, name, exception)

    def close(self) -> dict[str, Any]:
        """The window as a message: rows, errors, arrivals by kind, CPU share, seconds."""
        seconds = max(time.perf_counter() - self._opened, 1e-9)
        arrivals = {}
        for kind, schedule in self._schedules.items():
            before = self._arrivals_at_open.get(kind, _snapshot(ArrivalCounts()))
            now = _snapshot(schedule.total)
            arrivals[kind] = {
                "scheduled": now["scheduled"] - before["scheduled"],
                "started": now["started"] - before["started"],
                "dropped": now["dropped"] - before["dropped"],
                "lateness": [
                    (ms, count - before["lateness"].get(ms, 0))
                    for ms, count in now["lateness"].items()
                    if count > before["lateness"].get(ms, 0)
                ],
            }
        return {
            "step": self.step,
            "rows": [entry.serialize() for entry in self.stats.entries.values()],
            "errors": self.errors,
            "arrivals": arrivals,
            "cpu": (time.process_time() - self._cpu_at_open) / seconds,
            "seconds": seconds,
            "users": dict(self.users),
        }


def _snapshot(counts: ArrivalCounts) -> dict[str, Any]:
    return {
        "scheduled": counts.scheduled,
        "started": counts.started,
        "dropped": counts.dropped,
        "lateness": dict(counts.lateness),
    }


def measurement(
    parts: list[dict[str, Any]], rates: dict[str, float], percentiles: set[float], poisson: bool
) -> Measurement:
    """Every process's window of one step, as one measurement."""
    stats = RequestStats(use_response_times_cache=False)
    arrivals = ArrivalCounts()
    users: dict[str, int] = {}
    for part in parts:
        for data in part["rows"]:
            key = (data["name"], data["method"])
            entry = stats.entries.get(key)
            incoming = StatsEntry.unserialize(data, stats)
            if entry is None:
                stats.entries[key] = incoming
            else:
                entry.extend(incoming)
        for counts in part["arrivals"].values():
            arrivals.merge({**counts, "per_second": []})
        for kind, count in part["users"].items():
            users[kind] = users.get(kind, 0) + count
    rows = tuple(
        RowWindow(
            entry.method,
            entry.name,
            entry.num_requests,
            entry.num_failures,
            {p: entry.get_response_time_percentile(p / 100) for p in sorted(percentiles)} if entry.num_requests else {},
        )
        for entry in stats.entries.values()
    )
    seconds = max((part["seconds"] for part in parts), default=0.0)
    return Measurement(
        offered=sum(rates.values()),
        seconds=seconds,
        scheduled=arrivals.scheduled,
        started=arrivals.started,
        dropped=arrivals.dropped,
        health=GeneratorHealth(tuple(part["cpu"] for part in parts), arrivals.percentile(0.99)),
        rows=rows,
        errors=sum(part["errors"] for part in parts),
        users=users,
        rates=dict(rates),
        poisson=poisson,
    )
