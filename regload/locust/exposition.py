"""``--metrics-port``: regload's own metrics for Prometheus, served by the master (or the one
process) at ``http://HOST:PORT/metrics`` from its start to its end, across every test the web UI
runs. Each scrape reads the run as it is then (``workload/exposition.py`` names the metrics):
Locust's stats rows (on a master, the sums its workers report), the bytes of ``PULL image`` and
``PUSH image``, the open model's arrivals, the users per class and the capacity search's step.

The server is gevent's WSGI server with ``prometheus_client``'s WSGI app over a registry of its
own (not the global one): it runs in the event loop beside the users, like Locust's web UI.
Locust clears its stats at each test start; the counters then start again from 0, which
Prometheus reads as a counter reset.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gevent.pywsgi import WSGIServer
from locust.runners import MasterRunner
from prometheus_client import make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from ..errors import RegloadError
from ..workload.exposition import Arrivals, CapacityStep, Row, Snapshot, families

if TYPE_CHECKING:
    from ..options.groups import Exposition as ExpositionSettings
    from .run import LoadRun

log = logging.getLogger("regload")


class Exposition:
    """The run's metrics for Prometheus, and the server that shows them (``serve``)."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.server: Any = None
        self.url: str | None = None

    def serve(self, settings: ExpositionSettings) -> None:
        """Listen on ``--metrics-host``:``--metrics-port`` (nothing when no port was given); a
        port that cannot be taken is an error: the run does not start."""
        if settings.port is None or self.server is not None:
            return
        server = WSGIServer((settings.host, settings.port), make_wsgi_app(self.registry), log=None, error_log=log)
        try:
            server.start()  # binds now, then accepts in a greenlet of its own
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)  # gevent's strerror adds the address
            raise RegloadError(
                f"--metrics-port {settings.port}: cannot listen on {settings.host}:{settings.port}: {reason}"
            ) from None
        self.server = server
        self.url = f"http://{settings.host}:{settings.port}/metrics"
        log.info("regload: metrics for Prometheus at %s", self.url)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=1)
            self.server = None

    # -- the collector ----------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return ()  # no names to check at registration: ``collect`` reads the run, at scrape time only

    def collect(self) -> Iterable[Metric]:
        return families(self.snapshot())

    def snapshot(self) -> Snapshot:
        """The run now. Greenlets do not run while this reads (no I/O): the rows are consistent."""
        environment = self.run.environment
        stats = environment.stats
        rows = [
            Row(e.method, e.name, dict(e.response_times), e.total_response_time, e.num_requests, e.num_failures)
            for e in list(stats.entries.values())
            if e.num_requests or e.num_failures  # as Locust's own reports: a row looked up, never logged, is none
        ]
        moved = {}
        for direction, operation in (("pulled", "PULL"), ("pushed", "PUSH")):
            entry = stats.entries.get(("image", operation))
            moved[direction] = float(entry.total_content_length) if entry is not None else 0.0
        arrivals = [Arrivals(r.operation, r.started, r.dropped) for r in self.run.open_model.rows()]
        users = _users(environment)
        capacity = self.run.capacity
        step = None
        if capacity.active:
            rates = {kind: schedule.rate for kind, schedule in capacity.schedules.items()}
            step = CapacityStep(capacity.step, rates, capacity.best_rate)
        return Snapshot(tuple(rows), moved, tuple(arrivals), users, step)


def _users(environment: Any) -> dict[str, int]:
    """Running users by class: a master's are its workers' (it runs none itself)."""
    runner = environment.runner
    if runner is None:
        return {}
    if isinstance(runner, MasterRunner):
        counts = {c.__name__: 0 for c in environment.user_classes or ()}
        counts.update(runner.reported_user_classes_count)
        return counts
    return dict(runner.user_classes_count)
