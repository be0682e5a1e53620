"""regload's own metrics for Prometheus (``--metrics-port``), as metric families built from plain
values: Locust's stats rows, the bytes moved, the open model's arrivals, the users and the
capacity search's step. No Locust here (``locust/exposition.py`` reads a run into a
``Snapshot`` and serves it); the names below are an interface (docs/prometheus.md).

The request-duration histogram is computed at each scrape from a row's ``response_times`` (the
response times in milliseconds, as Locust rounds them to two significant digits above 100 ms,
each with its count): cumulative counts per bucket, the exact sum of the unrounded times, and
the count. A request is in the bucket of its rounded time, the one Locust's own percentiles use,
so that ``histogram_quantile`` and Locust's percentile fall in the same bucket.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

#: Upper bounds of the request-duration buckets, milliseconds: a manifest GET on loopback (1 ms)
#: to the push of a large layer over a slow link (2 min).
BUCKETS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10_000,
    30_000,
    60_000,
    120_000,
)
DIRECTIONS = ("pulled", "pushed")


@dataclass(frozen=True)
class Row:
    """One Locust stats row: ``GET /v2/[name]/manifests/[reference]``, ``PULL image``…"""

    method: str
    name: str
    response_times: Mapping[float, int]  # milliseconds, as Locust rounds them → requests
    total_response_time_ms: float  # the sum of the unrounded times
    requests: int
    failures: int


@dataclass(frozen=True)
class Arrivals:
    """The open model's arrivals of one kind (``PULL``, ``PUSH``, ``TRACE``) since the test began."""

    kind: str
    started: int
    dropped: int


@dataclass(frozen=True)
class CapacityStep:
    """Where the capacity search is: its step (0 before the first), each searched kind's rate
    now (operations/s), and the best rate that passed so far (the result once it ended)."""

    step: int
    rates: Mapping[str, float]
    best_rate: float | None


@dataclass(frozen=True)
class Snapshot:
    """What a scrape shows, read from the run at that moment (on a master: its workers' sums)."""

    rows: Sequence[Row] = ()
    bytes: Mapping[str, float] = field(default_factory=dict)  # direction (pulled, pushed) → bytes
    arrivals: Sequence[Arrivals] = ()
    users: Mapping[str, int] = field(default_factory=dict)  # user class → running users
    capacity: CapacityStep | None = None  # None: no --find-capacity


def cumulative_buckets(
    response_times: Mapping[float, int], bounds_ms: Sequence[float] = BUCKETS_MS
) -> list[tuple[float, int]]:
    """``(upper bound in seconds, requests at or below it)`` per bucket, ``+Inf`` last (its count
    is every request's)."""
    counts = [0] * (len(bounds_ms) + 1)
    for ms, n in response_times.items():
        counts[bisect_left(bounds_ms, float(ms))] += n  # the first bound >= ms: le is inclusive
    out, running = [], 0
    for bound, n in zip((*bounds_ms, float("inf")), counts, strict=True):
        running += n
        out.append((bound / 1000, running))
    return out


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of one scrape."""
    durations = HistogramMetricFamily(
        "regload_request_duration_seconds",
        "Response time of each Locust stats row (a registry request, or a whole image operation: PULL image,"
        " PUSH image), from Locust's rounded times",
        labels=("method", "name"),
        unit="seconds",
    )
    requests = CounterMetricFamily(
        "regload_requests",
        "Requests of each Locust stats row, by result (success, failure)",
        labels=("method", "name", "result"),
    )
    for row in snapshot.rows:
        buckets = cumulative_buckets(row.response_times)
        durations.add_metric(
            (row.method, row.name),
            [(floatToGoString(bound), float(n)) for bound, n in buckets],
            max(0.0, row.total_response_time_ms / 1000),
        )
        requests.add_metric((row.method, row.name, "success"), max(0, row.requests - row.failures))
        requests.add_metric((row.method, row.name, "failure"), row.failures)
    yield durations
    yield requests

    moved = CounterMetricFamily(
        "regload_bytes",
        "Bytes of the image operations: pulled (the PULL image row's), pushed (the PUSH image row's)",
        labels=("direction",),
        unit="bytes",
    )
    for direction in DIRECTIONS:
        moved.add_metric((direction,), float(snapshot.bytes.get(direction, 0)))
    yield moved

    arrivals = CounterMetricFamily(
        "regload_arrivals",
        "Arrivals of the open model (--pull-rate, --push-rate, --trace, --find-capacity) by kind: started by an"
        " idle user, or dropped (no idle user at the arrival time)",
        labels=("kind", "result"),
    )
    for a in snapshot.arrivals:
        arrivals.add_metric((a.kind, "started"), a.started)
        arrivals.add_metric((a.kind, "dropped"), a.dropped)
    yield arrivals

    users = GaugeMetricFamily("regload_users", "Users running now, by user class", labels=("class",))
    for name, count in sorted(snapshot.users.items()):
        users.add_metric((name,), count)
    yield users

    capacity = snapshot.capacity
    if capacity is not None:
        yield GaugeMetricFamily(
            "regload_capacity_step", "The capacity search's step now (0 before its first)", value=capacity.step
        )
        rate = GaugeMetricFamily(
            "regload_capacity_rate", "The capacity search's rate now, operations per second, by kind", labels=("kind",)
        )
        for kind, value in sorted(capacity.rates.items()):
            rate.add_metric((kind,), value)
        yield rate
        if capacity.best_rate is not None:
            yield GaugeMetricFamily(
                "regload_capacity_best_rate",
                "The best total rate that passed the SLO so far, operations per second (the capacity once the"
                " search ended)",
                value=capacity.best_rate,
            )
