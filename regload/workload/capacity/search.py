"""The capacity search: the highest rate that passes, held twice.

From ``start``, the rate doubles until a step fails; then the gap between the best passing rate
(``low``) and the lowest failing one (``high``) is bisected until ``high ≤ low × (1 + precision)``;
then ``low`` is held once more to confirm it. A failed confirmation makes ``low`` a failing rate:
the search steps down to the best rate that passed below it, and bisects or confirms again. The
rate that limited the answer is ``high``'s: a capacity bounded by users or the generator is a
lower bound, not the registry's (DESIGN.md §7). k6's breakpoint test stops at the first breach
and reports that rate; Vegeta's "breaker" scripts double and bisect; neither confirms.

Nothing here knows Locust or time: ``next_step`` says what to hold, ``record`` takes its verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import REGISTRY

DOUBLE, BISECT, CONFIRM = "double", "bisect", "confirm"
MAX_STEPS = 40  # a bound: from 1/s, doubling to 10⁶/s takes 20, bisecting to 10 % 4 more


@dataclass(frozen=True)
class Step:
    rate: float  # operations/s, every kind together
    purpose: str  # double, bisect or confirm


@dataclass(frozen=True)
class Result:
    capacity: float | None  # the confirmed rate, operations/s; None: even the start rate failed
    confirmed: bool
    limited_by: str | None  # what failed the step above it: registry, users, generator (None: never failed)
    reason: str  # one line

    @property
    def lower_bound(self) -> bool:
        """A capacity the generator or its users limited: the registry's is at least this."""
        return self.limited_by not in (None, REGISTRY)


class CapacitySearch:
    def __init__(self, start: float, precision: float, max_steps: int = MAX_STEPS) -> None:
        if start <= 0 or precision <= 0:
            raise ValueError("the start rate and the precision must be above 0")
        self.start, self.precision, self.max_steps = start, precision, max_steps
        self.low: float | None = None  # the best rate that passed (and was not refuted)
        self.high: float | None = None  # the lowest rate that failed
        self.high_limit: str | None = None  # what limited it
        self.passed: list[float] = []  # every rate that passed and was not refuted
        self.steps = 0
        self._pending: Step | None = Step(start, DOUBLE)
        self._result: Result | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> Result | None:
        return self._result

    def next_step(self) -> Step | None:
        """The rate to hold next, or None when the search ended (``result``)."""
        return self._pending

    def record(self, passed: bool, limited_by: str | None = None) -> None:
        """The verdict of the step ``next_step`` gave."""
        step = self._pending
        if step is None:
            raise RuntimeError("the search has ended")
        self.steps += 1
        if passed:
            if step.purpose == CONFIRM:
                return self._end(step.rate, True, "confirmed by a second hold")
            self.low = step.rate
            self.passed.append(step.rate)
        else:
            if self.high is None or step.rate <= self.high:
                self.high, self.high_limit = step.rate, limited_by
            if step.purpose == CONFIRM or (self.low is not None and step.rate <= self.low):
                # ``low`` failed when held again: it does not pass. Step down.
                self.passed = [r for r in self.passed if r < step.rate]
                self.low = max(self.passed, default=None)
            if self.low is None:
                again = " when held again" if step.purpose == CONFIRM else ""
                return self._end(None, False, f"the start rate {self.start:g}/s failed{again}")
        if self.steps >= self.max_steps:
            return self._end(self.low, False, f"stopped after {self.steps} steps, not confirmed")
        self._pending = self._plan()

    def _plan(self) -> Step:
        low, high = self.low, self.high
        assert low is not None
        if high is None:
            return Step(low * 2, DOUBLE)
        if high > low * (1 + self.precision):
            return Step((low + high) / 2, BISECT)
        return Step(low, CONFIRM)

    def _end(self, capacity: float | None, confirmed: bool, reason: str) -> None:
        self._pending = None
        self._result = Result(capacity, confirmed, self.high_limit, reason)

    def stop(self, reason: str) -> Result:
        """End early (the run stopped): the best rate so far, not confirmed."""
        if self._result is None:
            self._end(self.low, False, reason)
        assert self._result is not None
        return self._result
