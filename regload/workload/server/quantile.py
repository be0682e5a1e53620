"""``histogram_quantile`` as PromQL computes it, over cumulative buckets (Prometheus
``promql/quantile.go``): the rank's bucket is found and the value interpolated linearly inside
it; the first bucket starts at 0; a rank in the ``+Inf`` bucket gives the highest finite bound."""

from __future__ import annotations

import math
from collections.abc import Sequence


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0-1) of cumulative ``(upper bound, count)`` buckets, or None when
    they hold no observation."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower_bound  # the highest finite bound: the +Inf bucket has no width
            if count == lower_count:
                return upper
            return lower_bound + (upper - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper, count
    return ordered[-2][0] if len(ordered) > 1 else None


def delta(after: Sequence[tuple[float, float]], before: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative buckets observed between two scrapes (a restart in between: ``after`` alone)."""
    earlier = dict(before)
    out = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after]
    if any(count < 0 for _, count in out):
        return list(after)  # the counters were reset: the process restarted
    return out


def bucket_bounds(q: float, buckets: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """The bounds of the bucket that holds the ``q`` quantile: what a histogram knows of it (the
    interpolated value is a guess inside them). The ``+Inf`` bucket's upper bound is inf."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank, lower = q * ordered[-1][1], 0.0
    for upper, count in ordered:
        if count >= rank:
            return lower, upper
        lower = upper
    return None
