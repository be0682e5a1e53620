"""Locust listeners of the open model: each process's share of the total rates, the schedules
stopped with the test, and the workers' counts gathered on the master.

The schedules start once every user is spawned: a single process then knows it holds the whole
rate; a master tells its workers how many they are (a custom message, sent again whenever a
worker joins or leaves), and worker ``i`` of ``n`` schedules ``1/n`` of each rate, its arrivals
interleaved with the others'. Workers send what they counted with their stats reports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from ..errors import RegloadError
from ..workload.open_model import RELEASE_SECONDS, ArrivalCounts
from ..workload.rates import Schedule
from .arrival_report import ArrivalRow, arrival_row
from .state import OPEN, SHARE, WORKER_COUNTS, schedule_for, settings_for
from .trace_replay import trace_schedule

SHARE_MESSAGE = "regload_share"
REPORT_KEY = "regload_arrivals"
WATCH_INTERVAL = 1.0  # seconds between a master's looks at its worker count
log = logging.getLogger("regload")
RETELL_EVERY = 5  # looks between two tellings of an unchanged count

_run: dict[str, float] = {}  # perf_counter at this test's start and stop
_watcher: gevent.Greenlet | None = None
_environment: Any = None  # spawning_complete does not say which


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global _environment
    _environment = environment
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(SHARE_MESSAGE, _on_share)


def _on_share(environment: Any, msg: Any, **_: Any) -> None:
    SHARE.set(environment.runner.worker_index, int(msg.data["workers"]))


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    _run.clear()
    SHARE.reset()


@events.spawning_complete.add_listener
def _on_spawning_complete(**_: Any) -> None:
    """Every user is spawned (on a master: on every worker). Fired again when the user count
    changes mid-run: the schedules keep their origin."""
    global _watcher
    runner = _environment.runner if _environment is not None else None
    if isinstance(runner, WorkerRunner):
        return  # a worker learns it from its master
    _run.setdefault("started", time.perf_counter())
    if isinstance(runner, MasterRunner):
        if _watcher is None:
            _watcher = gevent.spawn(_tell_workers, runner)
    else:
        SHARE.set(0, 1)


def _tell_workers(runner: Any) -> None:
    """At once, whenever the count changes, and every few seconds anyway: a worker that joined
    may take its spawn message (and reset) after the first telling; to the others it is no change."""
    told, ticks = None, 0
    while True:
        count = runner.worker_count
        if count > 0 and (count != told or ticks % RETELL_EVERY == 0):
            runner.send_message(SHARE_MESSAGE, {"workers": count})
            told = count
        ticks += 1
        gevent.sleep(WATCH_INTERVAL)


@events.test_stopping.add_listener
@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    """``test_stopping`` comes before Locust stops the users: no arrival meets a user stopping."""
    global _watcher
    _run.setdefault("stopped", time.perf_counter())
    for arrivals in OPEN.values():
        arrivals.stop()  # no arrival (nor drop) while the users are being stopped
    if _watcher is not None:
        _watcher.kill(block=False)
        _watcher = None
    if environment.runner is not None:
        _let_ended_users_leave(environment.runner)


def _let_ended_users_leave(runner: Any) -> None:
    """Users released by a stopped schedule end on their own (``StopUser``). gevent clears a
    greenlet's ``args`` when it ends but drops it from its group only at the event loop's next
    turn; Locust's ``stop_users``, which follows ``test_stopping`` with no switch in between,
    logs ``While stopping users, we encountered a user that didn't have proper args`` at ERROR
    for each such greenlet still in the group (locust/runners.py, 2.47). Let the loop turn until
    none is left (bounded)."""
    deadline = time.monotonic() + RELEASE_SECONDS
    while any(user.dead for user in runner.user_greenlets) and time.monotonic() < deadline:
        gevent.sleep(0)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data[REPORT_KEY] = {kind: arrivals.unreported.take() for kind, arrivals in OPEN.items()}


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    for kind, counts in data.get(REPORT_KEY, {}).items():
        WORKER_COUNTS.setdefault(kind, ArrivalCounts()).merge(counts)


def arrival_rows(environment: Any) -> list[ArrivalRow]:
    """One row per kind with a rate whose users ran: this process's counts, or on a master its
    workers'."""
    if environment.parsed_options is None or "started" not in _run:
        return []
    run_elapsed = _run.get("stopped", time.perf_counter()) - _run["started"]
    rows = []
    for kind in ("PULL", "PUSH", "TRACE"):
        schedule = _trace_schedule(environment) if kind == "TRACE" else schedule_for(environment, kind)
        if schedule is None:
            continue
        if isinstance(environment.runner, MasterRunner):
            if kind not in WORKER_COUNTS:
                continue
            rows.append(arrival_row(kind, schedule, WORKER_COUNTS[kind], run_elapsed))
        elif kind in OPEN:
            rows.append(arrival_row(kind, schedule, OPEN[kind].total, OPEN[kind].elapsed()))
    return rows


def _trace_schedule(environment: Any) -> Schedule | None:
    """The replayed trace as a schedule, when this process or its workers replayed one."""
    if "TRACE" in OPEN:
        return OPEN["TRACE"].schedule
    if "TRACE" not in WORKER_COUNTS:
        return None
    try:
        return trace_schedule(settings_for(environment))  # a master reads the trace files too
    except RegloadError as e:
        log.warning("regload: no trace arrivals row: %s", e)
        return None
