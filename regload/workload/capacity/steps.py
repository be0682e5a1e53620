"""One step of a capacity search: what was measured in its window, and its verdict.

A step holds a rate; its window is the step after its settling time. The step fails when a
check of the SLO is breached in the window, when the achieved rate is below ``ACHIEVED_SHARE``
of the offered one, or when more than ``DROP_SHARE`` of the arrivals were dropped; a failed
step is attributed to the generator, the registry or the users (``limits``).

The achieved rate is the rate of operations *completed* in the window: above its capacity a
registry still takes every arrival (users are idle enough), but answers fewer than arrive and
its queue grows; a short step at a loose SLO would not see the latency climb yet, the
completions fall short at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from .limits import GENERATOR, GENERATOR_ADVICE, REGISTRY, USERS, GeneratorHealth, users_advice

ACHIEVED_SHARE = 0.95
DROP_SHARE = 0.01


class PercentileLimit(Protocol):
    """A latency check: ``TYPE NAME:pPCT<MS`` (``regload.locust.thresholds.PercentileCheck``)."""

    @property
    def request_type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def percentile(self) -> float: ...  # 0-100
    @property
    def limit_ms(self) -> float: ...


@dataclass(frozen=True)
class Slo:
    percentiles: tuple[PercentileLimit, ...]
    fail_ratio: float | None = None

    def describe(self) -> list[str]:
        out = [f"{c.request_type} {c.name}: p{c.percentile:g} < {c.limit_ms:g} ms" for c in self.percentiles]
        if self.fail_ratio is not None:
            out.append(f"failure ratio ≤ {self.fail_ratio:g}")
        return out


@dataclass(frozen=True)
class RowWindow:
    """One stats row (``PULL image``, ``GET /v2/<name>/blobs/<digest>``) in a step's window."""

    request_type: str
    name: str
    count: int
    failures: int
    percentiles: dict[float, float]  # percentile (0-100) → ms: 50, 99 and every checked one

    @property
    def label(self) -> str:
        return f"{self.request_type} {self.name}"


@dataclass(frozen=True)
class Measurement:
    """What every load process measured in one step's window, together."""

    offered: float  # operations/s asked for, every kind together
    seconds: float  # the window's length
    scheduled: int  # arrivals that came due
    started: int  # handed to a user
    dropped: int  # found no idle user
    health: GeneratorHealth
    rows: tuple[RowWindow, ...]  # the operation rows and every checked row
    errors: int = 0  # failed requests and operations, every row
    users: dict[str, int] = field(default_factory=dict)  # users by kind (PULL, PUSH)
    rates: dict[str, float] = field(default_factory=dict)  # offered operations/s by kind
    poisson: bool = False

    @property
    def completed(self) -> int:
        """Operations (``PULL image``, ``PUSH image``) that ended in the window, failed or not."""
        rows = [self.row(kind, "image") for kind in self.rates]
        return sum(row.count for row in rows if row is not None)

    @property
    def achieved(self) -> float:
        """Operations completed per second."""
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    @property
    def drop_share(self) -> float:
        return self.dropped / self.scheduled if self.scheduled else 0.0

    def row(self, request_type: str, name: str) -> RowWindow | None:
        for row in self.rows:
            if (row.request_type, row.name) == (request_type, name):
                return row
        return None

    def short(self, count: int) -> bool:
        """Whether ``count`` operations in the window fall below ``ACHIEVED_SHARE`` of the offered
        rate. Poisson arrivals are allowed their own noise: three standard deviations."""
        expected = self.offered * self.seconds
        allowed = ACHIEVED_SHARE * expected - (3 * math.sqrt(expected) if self.poisson else 0.0)
        return count < allowed


@dataclass(frozen=True)
class Verdict:
    passed: bool
    limited_by: str | None = None  # a failed step's: registry, users or generator
    reasons: tuple[str, ...] = ()  # each breach, one line
    advice: str | None = None  # what to do about a users or generator limit

    def summary(self) -> str:
        if self.passed:
            return "pass"
        return f"fail ({self.limited_by}): " + "; ".join(self.reasons)


def judge(m: Measurement, slo: Slo, lateness_bound_ms: float) -> Verdict:
    """The step's verdict, and what limited it when it failed."""
    breaches = _breaches(m, slo)
    short = m.short(m.completed)
    dropping = m.drop_share > DROP_SHARE
    reasons = list(breaches)
    if dropping:
        reasons.append(f"{m.dropped:,} of {m.scheduled:,} arrivals dropped ({m.drop_share:.1%}): no idle user")
    if short:
        reasons.append(f"{m.achieved:.3g}/s completed, below {ACHIEVED_SHARE:.0%} of the {m.offered:.3g}/s offered")
    if not reasons:
        return Verdict(True)
    problem = m.health.problem(lateness_bound_ms)
    if problem is not None:
        return Verdict(False, GENERATOR, (*reasons, problem), GENERATOR_ADVICE)
    if breaches:
        return Verdict(False, REGISTRY, tuple(reasons))
    if dropping:
        return Verdict(False, USERS, tuple(reasons), _users_advice(m))
    if m.short(m.started):  # arrivals did not even start on time, and no user was missing
        return Verdict(False, GENERATOR, (*reasons, "the schedule fell behind its arrivals"), GENERATOR_ADVICE)
    # Every arrival started, fewer completed: the registry queued them.
    return Verdict(False, REGISTRY, (*reasons[:-1], reasons[-1] + ": the registry's queue grew"))


def _users_advice(m: Measurement) -> str:
    parts = []
    for kind, rate in m.rates.items():
        op = m.row(kind, "image")
        p99 = op.percentiles.get(99.0) if op is not None else None
        parts.append(users_advice(kind, rate, m.users.get(kind, 0), p99))
    return "; ".join(parts)


def _breaches(m: Measurement, slo: Slo) -> list[str]:
    out = []
    for check in slo.percentiles:
        row = m.row(check.request_type, check.name)
        value = row.percentiles.get(check.percentile) if row is not None else None
        if row is None or row.count == 0 or value is None:
            out.append(f"{check.request_type} {check.name}: none completed in the window")
        elif value > check.limit_ms:
            out.append(
                f"{check.request_type} {check.name}: p{check.percentile:g} {value:,.0f} ms > {check.limit_ms:g} ms"
            )
    if slo.fail_ratio is not None:
        operations = [m.row(kind, "image") for kind in m.rates]
        done = sum(r.count for r in operations if r is not None)
        failed = sum(r.failures for r in operations if r is not None)
        if done and failed / done > slo.fail_ratio:
            out.append(f"failure ratio {failed / done:.4f} > {slo.fail_ratio:g} ({failed:,} of {done:,} failed)")
    return out
