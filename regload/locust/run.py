"""One regload run per Locust ``Environment``: everything regload holds for the users of one
environment, from its ``init`` to its ``quitting``.

``LoadRun`` owns the settings (read again at each test start: the web UI may change the options,
and a worker gets its master's with each spawn message), the pull pool and its readiness, the
queue of freshly pushed images, the open model's schedules and share, the nodes, the shared
token cache, the audit logs, the trace replay, the embedded registry, and the greenlets that
seed the pool and tell the workers. ``plugin`` makes it at ``init`` and registers its methods
as the environment's listeners; users and reports reach it with ``LoadRun.of(environment)``.
Two environments each have a run of their own: nothing is shared between them.

Why a PullUser waits, in order: for the pool (``pool.ready``: seeding, or its master's word),
then, with a rate, for its arrival (``open_model.arrivals``), then, with nodes, for its node's
pull slot (``node()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING, WorkerRunner

from ..audit import AuditLog
from ..auth import TokenCache
from ..errors import RegloadError
from ..http import Transport
from ..reference import Reference, Registry
from ..workload.fresh import FreshQueue
from ..workload.nodes import Node, Nodes
from ..workload.pool import MAX_POOL
from ..workload.trace.replay import Replay, TraceSchedule
from .capacity_run import CapacityRun
from .exposition import Exposition
from .maintenance import MaintenanceWindows
from .observer import Hints
from .open_run import OpenModel
from .options import LoadSettings, settings_from
from .pull_pool import PullPool
from .registry_watch import RegistryWatch
from .storm_conductor import StormConductor
from .storm_crowd import StormCrowd
from .timeline import Timeline

log = logging.getLogger("regload")
TransportFactory = Callable[[], Transport]


class LoadRun:
    """What regload holds for one Locust environment (see the module's docstring)."""

    def __init__(self, environment: Any, settings: LoadSettings) -> None:
        self.environment = environment
        self.settings = settings
        self.hints = Hints()
        self.tokens = TokenCache()  # --token-cache shared: one cache for the users of this process
        self.pool = PullPool(self)
        self.fresh = FreshQueue()  # --pull-after-push: pushed images a PullUser pulls once, when due
        self.open_model = OpenModel(self)
        self.capacity = CapacityRun(self)  # --find-capacity
        self.registry_watch = RegistryWatch(self)  # --registry-metrics: the registry's side
        self.timeline = Timeline(self)  # the run over time, for the charts
        self.crowd = StormCrowd(self)  # this process's StormUsers, waiting for the next storm
        self.storms = StormConductor(self)  # on the master or the one process: the storms themselves
        self.windows = MaintenanceWindows(self)  # --event: maintenance windows, and the phases around them
        self.exposition = Exposition(self)  # --metrics-port: served from install to quit (``plugin``)
        self.local_registry: Any = None  # started when no --host was given (``plugin``)
        self._nodes: Nodes | None = None  # this test's nodes (--node-users), made when a user asks
        self._audit_logs: dict[str, AuditLog] = {}
        self._references: dict[tuple[str, str, str], Reference] = {}
        self._replay: tuple[tuple[Any, ...], Replay] | None = None

    @staticmethod
    def of(environment: Any) -> LoadRun:
        run = getattr(environment, "regload", None)
        if not isinstance(run, LoadRun):
            raise RegloadError(
                "regload is not installed on this Locust environment: fire its init event, as the"
                " locust command does, or call regload.locust.install(environment)"
            )
        return run

    # -- listeners (``plugin`` registers them) ------------------------------------------------------

    def start_test(self, **_: Any) -> None:
        """A new test: options read again, an empty pool not ready yet, no schedule, no node."""
        if self.environment.parsed_options is not None:
            try:
                self.settings = settings_from(self.environment.parsed_options)
            except RegloadError as e:
                log.error("regload: error: %s: the test stops", e)
                gevent.spawn(self.environment.runner.stop)
        self.pool.start_test()
        self.fresh.reset()
        self.capacity.start_test()
        self.open_model.start_test()
        self.crowd.start_test()
        self._nodes = None
        if not isinstance(self.environment.runner, WorkerRunner):
            metrics = self.settings.metrics
            embedded = self.local_registry.metrics_url if self.local_registry is not None else None
            self.registry_watch.start_test(metrics.urls + ((embedded,) if embedded else ()), metrics.interval)
            self.timeline.start_test(metrics.interval)
            self.storms.start_test()
            self.windows.start_test()

    def stop_test(self, **_: Any) -> None:
        """``test_stopping`` (before Locust stops the users) and ``test_stop``."""
        self.windows.stop_test()  # first: the phases end now; a command still running is terminated
        self.capacity.stop_test()
        self.open_model.stop_test()
        self.pool.stop_test()
        self.storms.stop_test()
        self.crowd.stop_test()  # the StormUsers waiting for a storm stop
        self.registry_watch.stop_test()  # with a last scrape
        self.timeline.stop_test()  # with a last point

    def spawning_complete(self, **_: Any) -> None:
        self.open_model.spawning_complete()
        self.capacity.spawning_complete()
        self.storms.spawning_complete()

    def report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.open_model.report_to_master(data)

    def worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.open_model.worker_report(client_id, data)

    def quit(self, **_: Any) -> None:
        """``quitting``: the users stopped, the reports and checks, then the embedded registry."""
        from . import reports  # the reports read Locust's stats: only at the end

        try:
            if not isinstance(self.environment.runner, WorkerRunner):
                self._stop_users()
                reports.report(self)
                reports.check(self)
        finally:
            self.exposition.stop()
            if self.local_registry is not None:
                self.local_registry.stop()
                self.local_registry = None

    def _stop_users(self) -> None:
        """Stop the users before the local registry and before the report. Locust fires
        ``quitting`` first and stops the runner only after it (locust/main.py, ``shutdown``): on
        SIGTERM or Ctrl-C during a web-UI run the users are still running here, and every request
        in flight would fail once the registry is gone. ``stop`` waits for a master's workers."""
        runner = self.environment.runner
        if runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING):
            runner.stop()

    # -- what users ask ---------------------------------------------------------------------------

    def token_cache(self) -> TokenCache:
        """The token cache of a new user for ``--token-cache``: shared, its own, or none."""
        mode = self.settings.token_cache
        return self.tokens if mode == "shared" else TokenCache(enabled=mode != "off")

    def audit_log(self, path: str) -> AuditLog:
        """The run's audit log for ``path``, shared by its users (the file opens at the first line)."""
        if path not in self._audit_logs:
            self._audit_logs[path] = AuditLog(path)
        return self._audit_logs[path]

    def node(self) -> Node | None:
        """The node of a new PullUser (``--node-users``), or None when pulls are not grouped."""
        if self._nodes is None:
            self._nodes = Nodes(self.settings.nodes)
        return self._nodes.join()

    def reference(self, registry: Registry, repository: str, reference: str) -> Reference:
        """Every pull of a pool image needs its ``Reference`` (immutable): made once per run."""
        key = (registry.base_url, repository, reference)
        ref = self._references.get(key)
        if ref is None:
            ref = Reference(registry, repository).with_reference(reference)
            if len(self._references) >= MAX_POOL:
                self._references.clear()
            self._references[key] = ref
        return ref

    def replay(self) -> Replay | None:
        """This run's replay of ``--trace`` (read once per files, window and prefix), or None."""
        trace, prefix = self.settings.trace, self.settings.images.prefix
        if not trace.files:
            return None
        key = (trace.files, trace.window, prefix)
        if self._replay is None or self._replay[0] != key:
            self._replay = key, Replay.load(trace.files, trace.window, prefix, self.settings.images.layer_size)
        return self._replay[1]

    def trace_schedule(self) -> TraceSchedule | None:
        """The replay's schedule at ``--trace-speed``."""
        replay = self.replay()
        return None if replay is None else replay.schedule(self.settings.trace.speed)
