"""What limited a rate the generator offered: the registry, the users, or the generator itself.

A load generator's own limits must not pass for the registry's (DESIGN.md §7):

- ``generator``: a load process was busy above ``CPU_BOUND`` of its core, or handed arrivals to
  users late (scheduler lateness p99 above ``lateness_bound_ms``): its own queueing, not the
  registry's, then sits in every latency measured from the scheduled time;
- ``users``: arrivals were dropped because every user was busy: the rate needs about
  rate × the operation's p99 users at once (Little's law, with the tail's time);
- ``registry``: the checks broke while the generator was healthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REGISTRY, USERS, GENERATOR = "registry", "users", "generator"
CPU_BOUND = 0.90  # a gevent load process is one thread: above 90 % of a core its loop queues
# Scheduler lateness (scheduled arrival → taken by a user) is the generator's own delay, counted
# in every open-model latency. Measured here: a healthy process keeps its p99 under ~5 ms at
# 1,000 small arrivals/s (bench/arrivals.py), but one 15 % busy pulling 3 MiB images at 35/s
# showed 11 ms (hashing a buffer holds the loop that long), while a saturated one is late by
# hundreds of ms. The bound: 10 % of the tightest latency check (the generator may take no more
# of the SLO's budget than that), kept within 25-100 ms.
LATENESS_FLOOR_MS, LATENESS_CEILING_MS, LATENESS_SHARE = 25.0, 100.0, 0.10


def lateness_bound_ms(limits_ms: list[float]) -> float:
    """The scheduler lateness p99 above which the generator, not the registry, is late."""
    if not limits_ms:
        return LATENESS_CEILING_MS
    return min(LATENESS_CEILING_MS, max(LATENESS_FLOOR_MS, LATENESS_SHARE * min(limits_ms)))


@dataclass(frozen=True)
class GeneratorHealth:
    """How the load processes fared over a window."""

    cpu: tuple[float, ...]  # each load process's busy share of one core (0-1)
    lateness_p99_ms: float | None

    def problem(self, bound_ms: float) -> str | None:
        """Why the generator limited the rate, or None when it was healthy."""
        busiest = max(self.cpu, default=0.0)
        if busiest > CPU_BOUND:
            which = "the load process" if len(self.cpu) == 1 else f"a load process (of {len(self.cpu)})"
            return f"{which} was {busiest:.0%} busy (above {CPU_BOUND:.0%} of its core)"
        if self.lateness_p99_ms is not None and self.lateness_p99_ms > bound_ms:
            return (
                f"arrivals were handed to users late (lateness p99 {self.lateness_p99_ms:g} ms, above {bound_ms:g} ms)"
            )
        return None


GENERATOR_ADVICE = "add load processes (--processes N) or workers: this is a lower bound, not the registry's limit"


def users_needed(rate: float, p99_ms: float | None) -> int | None:
    """About how many users hold ``rate`` operations/s that take ``p99_ms`` each (Little's law
    with the tail's time), or None when no operation completed."""
    if p99_ms is None or rate <= 0:
        return None
    return max(1, math.ceil(rate * p99_ms / 1000.0))


def users_advice(kind: str, rate: float, users: int, p99_ms: float | None) -> str:
    """What to do when arrivals found no idle user."""
    needed = users_needed(rate, p99_ms)
    have = f"{users} {kind.lower()} user{'s' if users != 1 else ''}"
    if needed is None:
        return f"every one of the {have} was busy: run with more users (-u)"
    return (
        f"every one of the {have} was busy: at {rate:g}/s with a {kind} image p99 of {p99_ms:,.0f} ms the"
        f" rate needs about {needed:,} (rate × p99): run with more users (-u, split among the classes by"
        f" their weights); this is a lower bound, not the registry's limit"
    )


def explain_drops(
    kind: str,
    rate: float,
    dropped: int,
    scheduled: int,
    users: int,
    p99_ms: float | None,
    health: GeneratorHealth,
    bound_ms: float,
) -> str:
    """One line saying why an open-model run dropped arrivals, and what to do."""
    share = dropped / scheduled if scheduled else 0.0
    head = f"regload arrivals: {kind} dropped {dropped:,} of {scheduled:,} ({share:.1%}): "
    problem = health.problem(bound_ms)
    if problem is not None:
        return head + f"the generator limited the rate: {problem}; {GENERATOR_ADVICE}"
    return head + users_advice(kind, rate, users, p99_ms)
