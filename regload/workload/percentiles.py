"""Locust's percentile rule (``locust.stats.calculate_response_time_percentile``) over its
response-time histogram (rounded ms → count; keys as ints, or as the strings of its JSON file),
for what reads those histograms without importing Locust (which patches the interpreter for
gevent): the phases of maintenance windows, ``regload compare``, the tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def locust_percentile(times: Mapping[Any, int], total: int, fraction: float) -> float:
    """The smallest time with at most ``total × (1 − fraction)`` requests above it (0 when none)."""
    wanted, seen = int(total * fraction), 0
    for ms, n in sorted(((float(ms), n) for ms, n in times.items()), reverse=True):
        seen += n
        if total - seen <= wanted:
            return ms
    return 0.0
