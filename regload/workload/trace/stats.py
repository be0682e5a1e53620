"""``regload trace stats``: what a trace asks of a registry — its mix, rates, sizes, and what a
replay's warm-up must create first."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .plan import TracePlan
from .records import Trace

OPERATIONS = (("GET", "manifest"), ("GET", "blob"), ("PUT", "manifest"), ("PUT", "blob"))
PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[int], pct: float) -> int | None:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def trace_stats(trace: Trace, plan: TracePlan | None = None) -> dict[str, Any]:
    records = trace.records
    plan = plan or TracePlan.of(trace)
    duration = trace.duration
    mix = Counter((r.method, r.kind) for r in records)
    per_second = Counter(int(r.offset) for r in records)
    sizes: dict[str, dict[str, int | None]] = {}
    for kind in ("manifest", "blob"):
        values = sorted(r.size for r in records if r.method == "GET" and r.kind == kind and r.size is not None)
        sizes[kind] = {f"p{p}": percentile(values, p) for p in PERCENTILES}
        sizes[kind]["max"] = values[-1] if values else None
        sizes[kind]["count"] = len(values)
    return {
        "files": list(trace.files),
        "start": trace.start.isoformat() if trace.start else None,
        "records": len(records),
        "skipped": dict(sorted(trace.skipped.items())),
        "duration": round(duration, 3),
        "rate": {
            "mean": round(len(records) / duration, 3) if duration > 0 else None,
            "peak_second": max(per_second.values(), default=0),
        },
        "mix": {f"{m} {k}": mix.get((m, k), 0) for m, k in OPERATIONS},
        "repositories": len({r.repository for r in records}),
        "sizes": sizes,
        "warm_up": {
            "repositories": len(plan.repositories()),
            "blobs": len(plan.warm_blobs),
            "blob_bytes": sum(plan.blob_size(key) for key in plan.warm_blobs),
            "manifests": len(plan.warm_manifests),
            "blobs_without_size": plan.unsized,
        },
    }
