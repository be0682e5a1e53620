"""The open model: operations arrive on a schedule and are handed to idle users (k6's
arrival-rate executors), instead of each user starting its next operation when the last ends.

Per process and per kind (``PULL``, ``PUSH``) one scheduler greenlet walks this process's arrival
times (``rates.arrival_times``, from the schedule's origin) and, at each, hands the scheduled time
to a user waiting on an unbuffered channel. An arrival that finds no user waiting is dropped and
counted — never queued, never delayed: a blocked scheduler would bring coordinated omission
back. The user times its whole operation from the scheduled time it was handed, so any wait
shows in the latency; the wait itself (scheduled → handed over) is the schedule's lateness.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import getcurrent
from gevent.event import Event
from gevent.queue import Channel, Full

from .rates import Schedule, arrival_times

DropFn = Callable[[str], None]
RELEASE_SECONDS = 5.0  # how long ``stop`` waits for the users it released to end


@dataclass
class ArrivalCounts:
    """What one process (or, on a master, every worker) counted for one kind."""

    scheduled: int = 0  # arrivals that came due
    started: int = 0  # handed to a user
    dropped: int = 0  # no user idle at that moment
    lateness: dict[float, int] = field(default_factory=dict)  # ms (rounded) → arrivals
    per_second: dict[int, int] = field(default_factory=dict)  # second of the schedule → started

    def add_lateness(self, seconds: float) -> None:
        key = _bucket(seconds * 1000.0)
        self.lateness[key] = self.lateness.get(key, 0) + 1

    def merge(self, data: dict[str, Any]) -> None:
        self.scheduled += data["scheduled"]
        self.started += data["started"]
        self.dropped += data["dropped"]
        for key, count in data["lateness"]:
            self.lateness[key] = self.lateness.get(key, 0) + count
        for second, count in data["per_second"]:
            self.per_second[second] = self.per_second.get(second, 0) + count

    def take(self) -> dict[str, Any]:
        """The counts so far as a message (pairs: msgpack maps want string keys), then zero."""
        out = {
            "scheduled": self.scheduled,
            "started": self.started,
            "dropped": self.dropped,
            "lateness": sorted(self.lateness.items()),
            "per_second": sorted(self.per_second.items()),
        }
        self.scheduled = self.started = self.dropped = 0
        self.lateness, self.per_second = {}, {}
        return out

    def started_per_second(self) -> list[int]:
        """Arrivals started in each second of the schedule, from its origin."""
        last = max(self.per_second, default=-1)
        return [self.per_second.get(second, 0) for second in range(last + 1)]

    def percentile(self, fraction: float) -> float | None:
        """Lateness in ms at ``fraction`` (0.5, 0.99) of the arrivals handed over, or None."""
        total = sum(self.lateness.values())
        if not total:
            return None
        seen = 0
        for key in sorted(self.lateness):
            seen += self.lateness[key]
            if seen >= fraction * total:
                return key
        return max(self.lateness)


def _bucket(ms: float) -> float:
    """Lateness rounded to what matters: 0.1 ms below 100 ms, 1 ms below 10 s, then 100 ms."""
    if ms < 100:
        return round(ms, 1)
    if ms < 10_000:
        return float(round(ms))
    return float(round(ms, -2))


class Share:
    """This process's part of the total rate: worker ``index`` of ``count``. ``known`` is set once
    every user of the test has been spawned (a master tells its workers then, with how many they
    are; a single process is 0 of 1): the schedules start there, as k6 starts its arrivals with
    every VU allocated."""

    def __init__(self) -> None:
        self.index, self.count = 0, 1
        self.known = Event()
        self.changed = Event()

    def reset(self) -> None:
        self.known.clear()
        self.changed.clear()

    def set(self, index: int, count: int) -> None:
        changed = self.known.is_set() and (index, count) != (self.index, self.count)
        self.index, self.count = index, max(1, count)
        self.known.set()
        if changed:
            self.changed.set()


class Arrivals:
    """The schedule of one kind in this process: its scheduler greenlet and the hand-off."""

    def __init__(self, kind: str, schedule: Schedule, arrivals: str, share: Share, on_drop: DropFn) -> None:
        self.kind = kind
        self.schedule = schedule
        self.arrivals = arrivals
        self.share = share
        self.on_drop = on_drop
        self.unreported = ArrivalCounts()  # since the last report (a worker sends it to its master)
        self.total = ArrivalCounts()  # since the start, this process only
        self.origin: float | None = None  # perf_counter at the schedule's t = 0
        self.stopped: float | None = None
        self._next_due: float | None = None  # the arrival the scheduler waits for, not reached yet
        self._channel: Channel = Channel()
        self._greenlet: gevent.Greenlet | None = None
        self._waiting: set[Any] = set()  # the greenlets of the users waiting for an arrival
        self._replan = Event()  # the rate changed (``retarget``): plan again from now

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """End the schedule, and let the users waiting for an arrival go (``next`` gives them
        None): a user blocked in its task would hold Locust's stop for its whole timeout.

        Then wait (a bounded time) until those users have ended: Locust must not meet them half
        gone when it stops its users (``regload.locust.open_run``)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            # The schedule ends at the first arrival not reached: one due while the process was
            # busy stopping (Locust's stop blocks the loop a moment) was neither started nor dropped.
            now = time.perf_counter()
            self.stopped = min(now, self._next_due) if self._next_due is not None else now
        while self._channel.getters:  # gevent's Channel: the greenlets waiting in get()
            self._channel.put(None, block=False)
        released = [g for g in self._waiting if isinstance(g, gevent.Greenlet) and g is not getcurrent()]
        gevent.joinall(released, timeout=RELEASE_SECONDS)

    def elapsed(self) -> float:
        """Seconds of schedule so far (0 before it started)."""
        if self.origin is None:
            return 0.0
        return (self.stopped or time.perf_counter()) - self.origin

    def next(self) -> float | None:
        """Wait, idle, for the next arrival; its scheduled time (``time.perf_counter``), or None
        once the schedule was stopped."""
        item = self.next_item()
        return None if item is None else item[0]

    def next_item(self) -> tuple[float, Any] | None:
        """``next`` with what the arrival carries (a trace's record; None for a rate)."""
        if self.stopped is not None:
            return None
        waiting = getcurrent()
        self._waiting.add(waiting)
        try:
            item: tuple[float, Any] | None = self._channel.get()
        finally:
            self._waiting.discard(waiting)
        if item is None:
            return None
        late = time.perf_counter() - item[0]
        self.unreported.add_lateness(late)
        self.total.add_lateness(late)
        return item

    def retarget(self, rate: float) -> None:
        """A ``SteppedRate`` schedule goes to ``rate`` (in total, all processes) from now on."""
        set_rate = getattr(self.schedule, "set", None)
        if set_rate is None:
            raise TypeError(f"the {self.kind} schedule {self.schedule} has a fixed rate")
        set_rate(self.elapsed(), rate)
        self._replan.set()

    def times(self, share: float, index: int, start: float = 0.0) -> Iterator[tuple[float, Any]]:
        """This process's arrivals for ``share`` of the schedule as worker ``index``, from
        ``start`` on: seconds from the origin, and what each carries."""
        rng = random.Random()
        for offset in arrival_times(
            self.schedule, self.arrivals, share=share, phase=index * share, rng=rng, start=start
        ):
            yield offset, None

    def wait_to_start(self) -> None:
        """Until the schedule may start: every user spawned and this process's share known."""
        self.share.known.wait()

    def _run(self) -> None:
        self.wait_to_start()
        self.origin = origin = time.perf_counter()
        resume = 0.0  # seconds of schedule already behind us (after a change of share or rate)
        while True:
            self.share.changed.clear()
            self._replan.clear()
            share, index = 1.0 / self.share.count, self.share.index % self.share.count
            for offset, payload in self.times(share, index, resume):
                if offset < resume:
                    continue  # a replay's records before now belonged to the old share
                self._next_due = origin + offset
                delay = self._next_due - time.perf_counter()
                if delay > 0 and self._changed(delay):
                    break  # a worker joined or left, or the rate changed: plan again from now
                self._arrive(origin + offset, payload)
                self._next_due = None
            else:
                if not getattr(self.schedule, "open_ended", False):
                    return  # the schedule ended
                self._changed(None)  # no arrival until the rate changes
            resume = time.perf_counter() - origin

    def _changed(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds for a change of share or rate; whether one came."""
        return bool(gevent.wait([self.share.changed, self._replan], timeout=timeout, count=1))

    def _arrive(self, scheduled: float, payload: Any = None) -> None:
        # Counted before the hand-off: it may switch to the user at once, and the test may stop
        # (killing this greenlet) before control comes back.
        second = int(scheduled - (self.origin or scheduled))
        for counts in (self.unreported, self.total):
            counts.scheduled += 1
            counts.started += 1
            counts.per_second[second] = counts.per_second.get(second, 0) + 1
        try:
            self._channel.put((scheduled, payload), block=False)  # succeeds only if a user is waiting
        except Full:
            for counts in (self.unreported, self.total):
                counts.started -= 1
                counts.per_second[second] -= 1
                counts.dropped += 1
            self.on_drop(self.kind)
