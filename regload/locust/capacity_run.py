"""The capacity search of a run (``--find-capacity``): the master (or the one process) holds each
step's rate, opens and closes its window, judges it and picks the next rate; every load process
sets its schedules' rates and measures its part of each window (``capacity_window``).

Distributed, the master tells its workers each step's rates and when to open and close its
window; each worker answers with its window. A step whose workers changed while it ran, or from
which a worker did not answer, is held again: its window would mix shares. The run ends when
the search does.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from ..workload.capacity.limits import REGISTRY, lateness_bound_ms
from ..workload.capacity.search import CapacitySearch, Result, Step
from ..workload.capacity.steps import Measurement, Slo, Verdict, judge
from ..workload.rates import SteppedRate
from ..workload.server.compare import compare
from . import capacity_report
from .broadcast import RETELL_EVERY, WATCH_INTERVAL
from .capacity_window import StepWindow, measurement
from .registry_watch import without_credentials
from .thresholds import PercentileCheck

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")
STEP_MESSAGE = "regload_capacity_step"  # master → workers: rates, open, close
WINDOW_MESSAGE = "regload_capacity_window"  # worker → master: its closed window
ANSWER_SECONDS = 10.0  # how long the master waits for the workers' windows
REDOS = 3  # a step held again this many times (workers changing) ends the search
RETELL_SECONDS = WATCH_INTERVAL * (RETELL_EVERY + 1)  # before a step is held again


@dataclass(frozen=True)
class StepRecord:
    number: int
    step: Step
    rates: dict[str, float]
    measurement: Measurement
    verdict: Verdict
    started: float  # seconds since the search began
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)  # per metrics URL: CPU, in flight, p99


class CapacityRun:
    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.schedules: dict[str, SteppedRate] = {}  # the searched kinds' rates, set step by step
        self.window: StepWindow | None = None  # this process's open window
        self.records: list[StepRecord] = []
        self.result: Result | None = None
        self.slo: Slo | None = None
        self._search: CapacitySearch | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._answers: dict[str, dict[str, Any]] = {}  # this step's windows by process
        self._answered = Event()
        self._step = 0

    @property
    def settings(self) -> Any:
        return self.run.settings.capacity

    @property
    def active(self) -> bool:
        return self.settings.mode is not None

    @property
    def step(self) -> int:
        """The search's step now (0 before its first)."""
        return self._step

    @property
    def best_rate(self) -> float | None:
        """The best rate that passed so far, or once the search ended its result (None: none yet)."""
        if self.result is not None:
            return self.result.capacity
        return self._search.low if self._search is not None else None

    def schedule(self, kind: str) -> SteppedRate | None:
        """The searched rate of ``kind`` (``PULL``, ``PUSH``), or None when not searched."""
        return self.schedules.get(kind)

    # -- the test's course ----------------------------------------------------------------------

    def start_test(self) -> None:
        self._stop_greenlet()
        self.window, self.records, self.result, self._search, self._step = None, [], None, None, 0
        self.schedules = {kind: SteppedRate() for kind, _ in self.settings.weights}

    def spawning_complete(self) -> None:
        if self.active and self._greenlet is None and not isinstance(self.run.environment.runner, WorkerRunner):
            self._greenlet = gevent.spawn(self._run_search)

    def stop_test(self) -> None:
        self._stop_greenlet()
        if self._search is not None and self.result is None:
            self.result = self._search.stop("the run stopped before the search ended")

    def _stop_greenlet(self) -> None:
        if self._greenlet is not None and self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(block=True)
        self._greenlet = None

    # -- every load process -------------------------------------------------------------------------

    def on_step_message(self, environment: Any, msg: Any, **_: Any) -> None:
        answer = self.apply(msg.data)
        if answer is not None:
            environment.runner.send_message(WINDOW_MESSAGE, answer)

    def apply(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """A step's instruction in this load process; a closed window is returned."""
        action = data["action"]
        if action == "rates":
            for kind, rate in data["rates"].items():
                arrivals = self.run.open_model.arrivals(kind)
                if arrivals is not None:
                    arrivals.retarget(rate)
        elif action == "open":
            # The searched kinds' arrivals only: another kind's rate (a background load) is not the step's.
            searched = {k: a for k, a in self.run.open_model.schedules.items() if k in self.schedules}
            self.window = StepWindow(data["step"], self._keys(), searched, self._users())
        elif action == "close":
            window, self.window = self.window, None
            if window is not None and window.step == data["step"]:
                return window.close()
        return None

    def on_request(
        self, request_type: str, name: str, response_time: float, response_length: int, exception: Any = None, **_: Any
    ) -> None:
        window = self.window
        if window is not None:
            window.log(request_type, name, response_time, response_length, exception)

    def _keys(self) -> set[tuple[str, str]]:
        keys = {("image", kind) for kind, _ in self.settings.weights}
        keys.update((c.name, c.request_type) for c in self._checks())
        return keys

    def _users(self) -> dict[str, int]:
        runner = self.run.environment.runner
        counts = runner.user_classes_count if runner is not None else {}
        return self.run.open_model.users_by_kind(counts)

    def _checks(self) -> list[PercentileCheck]:
        return [PercentileCheck.parse(text) for text in self.run.settings.checks.percentiles]

    # -- the master, or the one process -------------------------------------------------------------

    def on_window_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self._answer(msg.node_id, msg.data)

    def _answer(self, process: str, data: dict[str, Any]) -> None:
        if data.get("step") == self._step:
            self._answers[process] = data
            self._answered.set()

    def _tell(self, data: dict[str, Any]) -> None:
        runner = self.run.environment.runner
        if isinstance(runner, MasterRunner):
            if data["action"] == "rates":  # the master's own copy, for its reports
                since = time.perf_counter() - (self.run.open_model.started or time.perf_counter())
                for kind, rate in data["rates"].items():
                    self.schedules[kind].set(since, rate)
            runner.send_message(STEP_MESSAGE, data)
        else:
            answer = self.apply(data)
            if answer is not None:
                self._answer("local", answer)

    def _processes(self) -> set[str]:
        runner = self.run.environment.runner
        if isinstance(runner, MasterRunner):
            return {w.id for w in runner.clients.all if w.state != STATE_MISSING}
        return {"local"}

    def _run_search(self) -> None:
        s = self.settings
        kinds = [kind for kind, _ in s.weights]
        classes = {getattr(c, "kind", None) for c in self.run.environment.user_classes or ()}
        missing = [k for k in kinds if k not in classes]
        if missing:
            log.error("regload: --find-capacity %s needs a %sUser: the search stops", s.mode, missing[0].title())
            return self._end()
        if "PULL" in kinds:
            self.run.pool.ready.wait()
        checks = self._checks()
        self.slo = Slo(tuple(checks), self.run.settings.checks.fail_ratio)
        bound = lateness_bound_ms([c.limit_ms for c in checks])
        percentiles = {50.0, 99.0, *(c.percentile for c in checks)}
        poisson = self.run.settings.rates.arrivals == "poisson"
        search = self._search = CapacitySearch(s.start, s.precision)
        began = time.perf_counter()
        capacity_report.print_start(s, self.slo)
        redos = 0
        while (step := search.next_step()) is not None:
            held = self._hold(step, began, percentiles, poisson, bound)
            if held is None:
                redos += 1
                if redos > REDOS:
                    self.result = search.stop(f"the load processes kept changing: {REDOS} steps held again")
                    break
                # A worker that joined may have heard its share before its run began, which forgets
                # it: the master tells every worker again within RETELL_SECONDS (``Broadcast``).
                self._tell({"action": "rates", "step": self._step, "rates": {k: 0.0 for k in self.schedules}})
                gevent.sleep(RETELL_SECONDS)
                continue
            redos = 0
            self.records.append(held)
            capacity_report.print_step(held, self.slo)
            search.record(held.verdict.passed, held.verdict.limited_by)
            if not held.verdict.passed and not search.done:
                self._recover()
        self.result = search.result
        self._end()

    def _hold(
        self, step: Step, began: float, percentiles: set[float], poisson: bool, bound: float
    ) -> StepRecord | None:
        s = self.settings
        rates = s.rates(step.rate)
        processes = self._processes()
        self._step += 1
        number = self._step
        started = time.perf_counter() - began
        self._tell({"action": "rates", "step": number, "rates": rates})
        gevent.sleep(s.settle)
        self._answers.clear()
        watch = self.run.registry_watch
        watch.scrape_now()  # the registry's side of the window, from its first moment
        opened = watch.now()
        self._tell({"action": "open", "step": number})
        gevent.sleep(s.hold - s.settle)
        self._tell({"action": "close", "step": number})
        watch.scrape_now()
        closed = watch.now()
        deadline = time.perf_counter() + ANSWER_SECONDS
        while not processes <= set(self._answers) and time.perf_counter() < deadline:
            self._answered.clear()
            self._answered.wait(max(0.0, deadline - time.perf_counter()))
        now = self._processes()
        if now != processes or not processes <= set(self._answers):
            log.warning(
                "regload capacity: step %d (%g/s) held again: the load processes changed while it ran"
                " (%d before, %d after, %d answered)",
                number,
                step.rate,
                len(processes),
                len(now),
                len(self._answers),
            )
            return None
        m = measurement([self._answers[p] for p in sorted(processes)], rates, percentiles, poisson)
        assert self.slo is not None
        verdict, registry = judge(m, self.slo, bound), self._registry_side(opened, closed)
        if verdict.limited_by == REGISTRY and registry:
            said = [
                f"registry CPU {side['cpu_cores']:.2f} cores, {side['in_flight_max']:g} in flight"
                for side in registry.values()
                if side["cpu_cores"] is not None and side["in_flight_max"] is not None
            ]
            verdict = replace(verdict, reasons=(*verdict.reasons, *said))
        return StepRecord(number, step, rates, m, verdict, started, registry)

    def _registry_side(self, opened: float, closed: float) -> dict[str, dict[str, Any]]:
        """Per metrics URL, the registry's CPU, peak in flight and p99 per handler in a window."""
        watch, out = self.run.registry_watch, {}
        for url in watch.urls:
            views = watch.between(url, opened, closed)
            if len(views) < 2:
                continue
            report = compare(without_credentials(url), views, lambda rows: None, [])
            out[report.source] = {
                "cpu_cores": report.process.cpu_cores_avg,
                "in_flight_max": report.process.in_flight_max,
                "p99_ms": {f"{e.handler} {e.method}": e.server_p99_ms for e in report.endpoints},
            }
        return out

    def _recover(self) -> None:
        """After a failed step, no arrival for a settling time: the backlog a registry built up
        drains instead of spilling into the next step's window."""
        self._tell({"action": "rates", "step": self._step, "rates": {kind: 0.0 for kind in self.schedules}})
        gevent.sleep(self.settings.settle)

    def _end(self) -> None:
        """Rates to 0, the result on the console, and the run stopped (headless: it quits)."""
        if self._step:
            self._tell({"action": "rates", "step": self._step, "rates": {kind: 0.0 for kind in self.schedules}})
        if self.result is not None:
            print(capacity_report.final_line(self), file=sys.stderr, flush=True)
        runner = self.run.environment.runner
        options = self.run.environment.parsed_options
        self._greenlet = None  # this greenlet ends here: stopping the test must not kill it first
        if getattr(options, "headless", False):
            runner.quit()
        else:
            runner.stop()
