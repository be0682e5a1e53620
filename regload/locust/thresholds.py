"""Pass/fail checks for headless CI runs: ``--check-fail-ratio`` and ``--check-percentile``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

_PERCENTILE_RE = re.compile(r"^\s*(\S+)\s+(.+?)\s*:\s*(?:p)?(\d+(?:\.\d+)?)\s*<\s*(\d+(?:\.\d+)?)\s*(?:ms)?\s*$")


@dataclass(frozen=True)
class PercentileCheck:
    request_type: str
    name: str
    percentile: float  # 0-100
    limit_ms: float

    @classmethod
    def parse(cls, text: str) -> PercentileCheck:
        """``'PULL image:95<2000'`` or ``'GET /v2/<name>/blobs/<digest>:p99<500'``."""
        m = _PERCENTILE_RE.match(text)
        if not m or not 0 < float(m.group(3)) <= 100:
            raise UsageError(
                f"invalid --check-percentile {text!r}: expected 'TYPE NAME:PCT<MS', e.g. 'PULL image:95<2000'"
            )
        return cls(m.group(1), m.group(2), float(m.group(3)), float(m.group(4)))


# Whole operations, and the open model's dropped arrivals: each one an operation that failed.
OPERATION_ROWS = (("image", "PULL"), ("image", "PUSH"), ("dropped", "PULL"), ("dropped", "PUSH"))


def observed_fail_ratio(stats: Any) -> tuple[str, float]:
    """The share of whole image operations that failed, a dropped arrival counted as one. A
    failed pull is one failed operation, though its failed request is in an endpoint row too;
    runs without operation rows (custom scenarios) use the share of all requests."""
    rows = [stats.entries[key] for key in OPERATION_ROWS if key in stats.entries]
    total = sum(r.num_requests for r in rows)
    if total:
        return "image operation", sum(r.num_failures for r in rows) / total
    return "request", stats.total.fail_ratio


def breaches(stats: Any, fail_ratio: float | None, percentiles: list[PercentileCheck]) -> list[str]:
    """Every check that failed, as one line each (empty when all passed)."""
    out = []
    if fail_ratio is not None:
        what, ratio = observed_fail_ratio(stats)
        if ratio > fail_ratio:
            out.append(f"{what} failure ratio {ratio:.4f} is above --check-fail-ratio {fail_ratio}")
    for check in percentiles:
        entry = stats.entries.get((check.name, check.request_type))
        if entry is None or entry.num_requests == 0:
            out.append(f"{check.request_type} {check.name}: no requests, cannot check p{check.percentile:g}")
            continue
        value = entry.get_response_time_percentile(check.percentile / 100)
        if value > check.limit_ms:
            out.append(
                f"{check.request_type} {check.name}: p{check.percentile:g} is {value:.0f} ms,"
                f" above {check.limit_ms:g} ms"
            )
    return out
