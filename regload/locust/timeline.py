"""A run over time, sampled on the master (or the one process) at each tick of the registry
watch: bytes pulled and pushed, arrivals scheduled, started and dropped, the client's p50/p99 of
its rows in the interval (from the differences of Locust's response-time histograms), and, per
metrics URL, the registry's CPU, memory, requests in flight and p50/p99 per handler in the same
interval (``compare`` over the last two scrapes). The charts and the HTML report draw it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent

from ..workload.server.compare import compare

if TYPE_CHECKING:
    from .run import LoadRun

MAX_POINTS = 20_000
OPERATION_ROWS = (("image", "PULL"), ("image", "PUSH"))


@dataclass
class Point:
    t: float  # seconds since the test started
    pulled_bytes: float
    pushed_bytes: float
    scheduled: int
    started: int
    dropped: int
    client: dict[str, tuple[float | None, float | None, int]] = field(default_factory=dict)  # row → p50, p99 ms, n
    server: dict[str, dict[str, Any]] = field(default_factory=dict)  # URL → cpu, rss, in_flight, rows


class Timeline:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.points: list[Point] = []
        self.started = time.perf_counter()
        self._greenlet: gevent.Greenlet | None = None
        self._times: dict[tuple[str, str], dict[int, int]] = {}  # each row's histogram at the last tick

    def start_test(self, interval: float) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
        self.points, self._times = [], {}
        self.started = time.perf_counter()
        self._greenlet = gevent.spawn(self._loop, interval)

    def stop_test(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            self.sample()

    def _loop(self, interval: float) -> None:
        while True:
            gevent.sleep(interval)
            self.sample()

    def sample(self) -> None:
        from locust.stats import calculate_response_time_percentile  # here: importing Locust patches for gevent

        if len(self.points) >= MAX_POINTS:
            return
        stats = self.run.environment.stats
        rows = self.run.open_model.rows()
        pulled = stats.entries.get(("image", "PULL"))
        pushed = stats.entries.get(("image", "PUSH"))
        point = Point(
            time.perf_counter() - self.started,
            float(pulled.total_content_length) if pulled else 0.0,
            float(pushed.total_content_length) if pushed else 0.0,
            sum(r.scheduled for r in rows),
            sum(r.started for r in rows),
            sum(r.dropped for r in rows),
        )
        for key, entry in list(stats.entries.items()):
            now = dict(entry.response_times)
            before = self._times.get(key, {})
            interval = {ms: n - before.get(ms, 0) for ms, n in now.items() if n > before.get(ms, 0)}
            self._times[key] = now
            total = sum(interval.values())
            if total:
                point.client[f"{entry.method} {entry.name}"] = (
                    calculate_response_time_percentile(interval, total, 0.5),
                    calculate_response_time_percentile(interval, total, 0.99),
                    total,
                )
        watch = self.run.registry_watch
        for url in watch.urls:
            views = list(watch.scrapes.get(url, ()))[-2:]
            if len(views) < 2:
                continue
            since = compare(url, views, lambda rows: None, [])  # the registry since the last tick
            point.server[url] = {
                "cpu_cores": since.process.cpu_cores_avg,
                "rss_bytes": views[-1].rss_bytes,
                "in_flight": views[-1].in_flight,
                "rows": {
                    f"{e.handler} {e.method}": (e.server_p50_ms, e.server_p99_ms, e.server_requests)
                    for e in since.endpoints
                },
            }
        self.points.append(point)
