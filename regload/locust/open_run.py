"""The open model of a run: its schedules by kind, this process's share of the total rates, and
what the workers counted.

The schedules start once every user is spawned: a single process then knows it holds the whole
rate; a master tells its workers how many they are (``Broadcast``), and worker ``i`` of ``n``
schedules ``1/n`` of each rate, its arrivals interleaved with the others'. Workers send what
they counted with their stats reports. The schedules stop at ``test_stopping``, before Locust
stops the users: no arrival meets a user stopping.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from ..errors import RegloadError
from ..workload.open_model import RELEASE_SECONDS, ArrivalCounts, Arrivals, Share
from ..workload.rates import Schedule, ShapeRate
from .arrival_report import ArrivalRow, arrival_row
from .broadcast import Broadcast
from .observer import drop_counter

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")
SHARE_MESSAGE = "regload_share"
REPORT_KEY = "regload_arrivals"
CPU_KEY = "regload_cpu"
KINDS = ("PULL", "PUSH", "TRACE")


class OpenModel:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.share = Share()  # this process's part of the total rates
        self.schedules: dict[str, Arrivals] = {}  # this process's, by kind, started by a first user
        self.closed: set[str] = set()  # the kinds found to have no rate in this test: closed loops
        self.worker_counts: dict[str, ArrivalCounts] = {}  # on a master: what its workers counted
        self.started: float | None = None  # perf_counter when every user of the test was spawned
        self.stopped: float | None = None
        self.users: dict[str, int] = {}  # users by kind, every process, when spawning completed
        self.cpu = ProcessCpu()  # this process's, since the test started
        self.worker_cpu: dict[str, float] = {}  # on a master: each worker's busy share since the start
        self._telling: Broadcast | None = None

    # -- the test's course ----------------------------------------------------------------------

    def start_test(self) -> None:
        for arrivals in self.schedules.values():
            arrivals.stop()
        self.schedules.clear()
        self.closed.clear()
        self.worker_counts.clear()
        self.share.reset()
        self.started = self.stopped = None
        self.users = {}
        self.cpu = ProcessCpu()
        self.worker_cpu.clear()

    def spawning_complete(self) -> None:
        """Every user is spawned (on a master: on every worker). Again when the user count
        changes mid-run: the schedules keep their origin."""
        runner = self.run.environment.runner
        if isinstance(runner, WorkerRunner):
            return  # a worker learns it from its master
        self.users = self.users_by_kind(runner.user_classes_count)
        if self.started is None:
            self.started = time.perf_counter()
        if isinstance(runner, MasterRunner):
            if self._telling is None:
                self._telling = Broadcast(runner, SHARE_MESSAGE, lambda workers: {"workers": workers})
        else:
            self.share.set(0, 1)

    def on_share(self, environment: Any, msg: Any, **_: Any) -> None:
        """A worker hears how many workers share the rates."""
        self.share.set(environment.runner.worker_index, int(msg.data["workers"]))

    def stop_test(self) -> None:
        """At ``test_stopping`` and ``test_stop``: no arrival (nor drop) while the users stop."""
        if self.stopped is None:
            self.stopped = time.perf_counter()
        for arrivals in self.schedules.values():
            arrivals.stop()
        if self._telling is not None:
            self._telling.stop()
            self._telling = None
        runner = self.run.environment.runner
        if runner is not None:
            _let_ended_users_leave(runner)

    def report_to_master(self, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = {kind: arrivals.unreported.take() for kind, arrivals in self.schedules.items()}
        data[CPU_KEY] = self.cpu.busy()

    def worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        for kind, counts in data.get(REPORT_KEY, {}).items():
            self.worker_counts.setdefault(kind, ArrivalCounts()).merge(counts)
        if CPU_KEY in data:
            self.worker_cpu[client_id] = data[CPU_KEY]

    def users_by_kind(self, by_class: dict[str, int]) -> dict[str, int]:
        """User counts by class name, as counts by kind (``PULL``, ``PUSH``)."""
        out: dict[str, int] = {}
        for cls in self.run.environment.user_classes or ():
            kind = getattr(cls, "kind", None)
            if kind is not None:
                out[kind] = out.get(kind, 0) + by_class.get(cls.__name__, 0)
        return out

    def load_cpu(self) -> tuple[float, ...]:
        """Each load process's busy share of its core since the test started."""
        if isinstance(self.run.environment.runner, MasterRunner):
            return tuple(self.worker_cpu.values())
        return (self.cpu.busy(),)

    # -- schedules --------------------------------------------------------------------------------

    def schedule_for(self, kind: str) -> Schedule | None:
        """The schedule of ``kind`` (``PULL``/``PUSH``): the capacity search's when it searches
        that kind, the ``arrival_shape`` of a user class of that kind when one gives it, else the
        options' rate; None for a closed loop."""
        searched = self.run.capacity.schedule(kind)
        if searched is not None:
            return searched
        for cls in self.run.environment.user_classes or ():
            shape = getattr(cls, "arrival_shape", None)
            if shape is not None and getattr(cls, "kind", None) == kind:
                return ShapeRate(shape)
        return self.run.settings.rate(kind)

    def arrivals(self, kind: str) -> Arrivals | None:
        """This process's schedule of ``kind`` (started by the first user to ask), or None when
        ``kind`` has no rate: a closed loop."""
        arrivals = self.schedules.get(kind)
        if arrivals is None:
            if kind in self.closed:
                return None
            schedule = self.schedule_for(kind)
            if schedule is None:
                self.closed.add(kind)  # until the next test (the web UI may set a rate then)
                return None
            dropped = drop_counter(self.run.environment.events, "no idle user at the arrival time")
            arrivals = self.schedules[kind] = Arrivals(
                kind, schedule, self.run.settings.rates.arrivals, self.share, dropped
            )
            arrivals.start()
        return arrivals

    def add(self, arrivals: Arrivals) -> Arrivals:
        """A schedule of one's own (a trace's), started."""
        self.schedules[arrivals.kind] = arrivals
        arrivals.start()
        return arrivals

    # -- reports ----------------------------------------------------------------------------------

    def rows(self) -> list[ArrivalRow]:
        """One row per kind with a rate whose users ran: this process's counts, or on a master its
        workers'."""
        if self.started is None:
            return []
        run_elapsed = (self.stopped or time.perf_counter()) - self.started
        master = isinstance(self.run.environment.runner, MasterRunner)
        rows = []
        for kind in KINDS:
            schedule = self._trace_schedule() if kind == "TRACE" else self.schedule_for(kind)
            if schedule is None:
                continue
            if master:
                if kind in self.worker_counts:
                    rows.append(arrival_row(kind, schedule, self.worker_counts[kind], run_elapsed))
            elif kind in self.schedules:
                arrivals = self.schedules[kind]
                rows.append(arrival_row(kind, schedule, arrivals.total, arrivals.elapsed()))
        return rows

    def _trace_schedule(self) -> Schedule | None:
        """The replayed trace as a schedule, when this process or its workers replayed one."""
        if "TRACE" in self.schedules:
            return self.schedules["TRACE"].schedule
        if "TRACE" not in self.worker_counts:
            return None
        try:
            return self.run.trace_schedule()  # a master reads the trace files too
        except RegloadError as e:
            log.warning("regload: no trace arrivals row: %s", e)
            return None


class ProcessCpu:
    """This process's CPU time against the wall clock, from when it was made."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def busy(self) -> float:
        """The share of one core this process used since (0-1; more with native threads)."""
        return (time.process_time() - self.cpu) / max(time.perf_counter() - self.wall, 1e-9)


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
