"""Arrival rates over time, and the arrival times they give (the open model's schedule).

A rate is constant (``10``) or a list of stages ``30s:5,2m:50,1m:50,30s:0``: from the last
target (0 at the start), a linear ramp to each stage's target over its duration, as k6's
ramping-arrival-rate executor; after the last stage no more arrivals come. Arrival times are
computed from the schedule's origin, never from the last arrival's real time, so a late wake-up
does not shift the ones after it (no drift):

- ``uniform``: the k-th arrival is where the expected count ``Λ(t) = ∫ rate`` reaches k;
- ``poisson``: where it reaches a sum of k exponential(1) gaps — a Poisson process of that rate.

A process that runs a share of the total rate (one worker of several) keeps its part of the same
schedule: arrivals where ``share · Λ(t)`` crosses its levels, offset by ``phase`` (uniform: the
workers' arrivals interleave). Nothing here imports Locust or gevent.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from ..errors import UsageError
from ..units import parse_duration

ARRIVALS = ("poisson", "uniform")
MAX_RATE = 1_000_000.0


@dataclass(frozen=True)
class Segment:
    """``rate`` goes linearly from ``start_rate`` at ``start`` to ``end_rate`` at ``end`` (seconds)."""

    start: float
    end: float
    start_rate: float
    end_rate: float

    def count(self, t: float) -> float:
        """Arrivals expected between ``start`` and ``t`` (≤ ``end``)."""
        x = t - self.start
        return self.start_rate * x + self._slope() * x * x / 2

    def time_of(self, count: float) -> float:
        """The time at which ``count`` arrivals are expected since ``start`` (≤ the segment's)."""
        slope, r0 = self._slope(), self.start_rate
        if count <= 0:
            return self.start
        if slope == 0:
            return self.start + count / r0
        # (slope/2) x² + r0 x - count = 0, the root in the segment (x ≥ 0).
        return self.start + 2 * count / (r0 + math.sqrt(r0 * r0 + 2 * slope * count))

    def _slope(self) -> float:
        span = self.end - self.start
        return 0.0 if math.isinf(span) or span == 0 else (self.end_rate - self.start_rate) / span


class Schedule(Protocol):
    """A rate over time, as segments from the origin (t = 0) onwards."""

    def segments(self) -> Iterator[Segment]: ...


@dataclass(frozen=True)
class ConstantRate:
    rate: float

    def segments(self) -> Iterator[Segment]:
        if self.rate > 0:
            yield Segment(0.0, math.inf, self.rate, self.rate)

    def __str__(self) -> str:
        return f"{self.rate:g}/s"


@dataclass(frozen=True)
class Stages:
    """Linear ramps: ``stages`` are (duration in seconds, target rate)."""

    stages: tuple[tuple[float, float], ...]

    def segments(self) -> Iterator[Segment]:
        start, rate = 0.0, 0.0
        for duration, target in self.stages:
            if duration > 0 and (rate > 0 or target > 0):
                yield Segment(start, start + duration, rate, target)
            start, rate = start + duration, target

    def __str__(self) -> str:
        return ",".join(f"{d:g}s:{r:g}" for d, r in self.stages)


class ArrivalShape(Protocol):
    """A rate of one's own, as Locust's ``LoadTestShape`` gives users: ``tick(elapsed)`` is the
    target rate (arrivals per second, in total) ``elapsed`` seconds after the schedule started,
    or None to end it. It is read once a second; the rate holds for that second."""

    def tick(self, elapsed: float) -> float | None: ...


@dataclass(frozen=True)
class ShapeRate:
    shape: ArrivalShape
    step: float = 1.0

    def segments(self) -> Iterator[Segment]:
        t = 0.0
        while (rate := self.shape.tick(t)) is not None:
            if rate > 0:
                yield Segment(t, t + self.step, rate, rate)
            t += self.step

    def __str__(self) -> str:
        return type(self.shape).__name__


def parse_rate(text: str, what: str) -> Schedule:
    """``10`` (arrivals per second) or stages ``30s:5,2m:50,30s:0``."""
    text = text.strip()
    if ":" not in text:
        return ConstantRate(_rate(text, what))
    stages = []
    for part in text.split(","):
        duration, sep, target = part.strip().partition(":")
        if not sep:
            raise UsageError(f"invalid {what} stage {part.strip()!r}: expected DURATION:RATE, e.g. 30s:10")
        stages.append((parse_duration(duration, what), _rate(target, what)))
    return Stages(tuple(stages))


def _rate(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text!r}: expected arrivals per second, e.g. 10 or 0.5") from None
    if not (0 <= value <= MAX_RATE):
        raise UsageError(f"invalid {what} {text!r}: must be between 0 and {MAX_RATE:g} per second")
    return value


def expected_count(schedule: Schedule, t: float) -> float:
    """Arrivals the schedule expects (in total) from its origin to ``t``."""
    total = 0.0
    for segment in schedule.segments():
        if segment.start >= t:
            break
        total += segment.count(min(t, segment.end))
    return total


def arrival_times(
    schedule: Schedule,
    kind: str,
    *,
    share: float = 1.0,
    phase: float = 0.0,
    rng: random.Random | None = None,
    start: float = 0.0,
) -> Iterator[float]:
    """This process's arrival times, in seconds from the origin, in order, for ``share`` of the
    schedule's total rate, from ``start`` on (the levels before it are skipped by arithmetic,
    not walked: a schedule resumed after an hour at 1,000/s starts at once). Ends with the
    schedule."""
    if kind not in ARRIVALS:
        raise UsageError(f"unknown arrivals {kind!r}: choose {' or '.join(ARRIVALS)}")
    if share <= 0:
        return
    rng = rng or random.Random()
    done = 0.0  # this process's expected count at the current segment's start
    level: float | None = None
    for segment in schedule.segments():
        total = share * segment.count(segment.end) if not math.isinf(segment.end) else math.inf
        if level is None:
            if segment.end <= start:
                done += total
                continue
            reached = done + share * segment.count(max(start, segment.start))
            if kind == "uniform":  # the first of the levels phase, phase + 1, … not behind us
                level = phase + max(0.0, math.ceil(reached - phase))
            else:  # memoryless: the next gap starts at ``start``
                level = reached + rng.expovariate(1.0)
        while level < done + total:
            yield segment.time_of((level - done) / share)
            level += 1.0 if kind == "uniform" else rng.expovariate(1.0)
        done += total


class SteppedRate:
    """A rate set while the schedule runs (the capacity search's steps): constant from each
    change on, until the next. ``segments`` gives those known so far; the last one lasts until
    the next change, which ``changes`` counts (the scheduler then plans again from now)."""

    open_ended = True  # no more arrivals now does not mean the schedule ended

    def __init__(self) -> None:
        self._steps: list[tuple[float, float]] = []  # (seconds from the origin, rate)
        self.changes = 0

    def set(self, at: float, rate: float) -> None:
        """From ``at`` (seconds from the origin, not before the last change) on, ``rate``/s."""
        if self._steps and at < self._steps[-1][0]:
            at = self._steps[-1][0]
        self._steps.append((at, max(0.0, rate)))
        self.changes += 1

    @property
    def rate(self) -> float:
        return self._steps[-1][1] if self._steps else 0.0

    def segments(self) -> Iterator[Segment]:
        steps = list(self._steps)  # a change while a caller iterates starts a new plan anyway
        for i, (at, rate) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else math.inf
            if rate > 0 and end > at:
                yield Segment(at, end, rate, rate)

    def __str__(self) -> str:
        return f"capacity steps, now {self.rate:g}/s"
