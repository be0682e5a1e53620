"""The server's rows beside the client's, over a run: per matched endpoint the registry's request
count, p50 and p99 (from the bucket deltas between the first and the last scrape; for a summary,
its last published quantiles, marked as such) and the client's for the same rows; the registry
process's CPU, memory and requests in flight; storage actions; and the blind spots that apply."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .dialects import ANY_HANDLER, RequestSeries, ServerView
from .quantile import bucket_bounds, delta, histogram_quantile

ClientKey = tuple[str, str]  # (method, row name) as Locust keys them, upper-case method
MISMATCH = 0.05  # server and client counts further apart than this are flagged

# distribution's route names (registry/handlers/app.go) → regload's endpoint rows, by method.
_DISTRIBUTION: dict[str, tuple[str, ...]] = {
    "base": ("/v2/",),
    "manifest": ("/v2/<name>/manifests/<reference>",),
    "blob": ("/v2/<name>/blobs/<digest>",),
    "blob_upload": (
        "/v2/<name>/blobs/uploads/",
        "/v2/<name>/blobs/uploads/?mount=<digest>&from=<other>",
        "/v2/<name>/blobs/uploads/?digest=<digest>",
    ),
    "blob_upload_chunk": ("/v2/<name>/blobs/uploads/<session>", "/v2/<name>/blobs/uploads/<session>?digest=<digest>"),
    "tags": ("/v2/<name>/tags/list",),
    "catalog": ("/v2/_catalog",),
}
# Harbor's core names operations, not routes: matched when the name says which.
_HARBOR_WORDS = (("upload", "blob_upload"), ("manifest", "manifest"), ("blob", "blob"), ("tag", "tags"))


def client_rows(dialect: str, handler: str, method: str, known: list[ClientKey]) -> list[ClientKey]:
    """The client's rows (among ``known``) that a server row counts."""
    verb = method.upper()
    if handler == ANY_HANDLER:
        return [key for key in known if key[0] == verb and key[1].startswith("/v2/")]
    if dialect == "harbor":
        word = next((route for w, route in _HARBOR_WORDS if w in handler.lower()), None)
        if word is None:
            return []
        handler = word
    names = _DISTRIBUTION.get(handler, ())
    if handler == "blob_upload" and dialect == "harbor":
        names = _DISTRIBUTION["blob_upload"] + _DISTRIBUTION["blob_upload_chunk"]
    return [key for key in known if key[0] == verb and key[1] in names]


@dataclass(frozen=True)
class ClientSide:
    requests: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class EndpointRow:
    handler: str
    method: str
    client_rows: tuple[str, ...]  # "GET /v2/<name>/blobs/<digest>"
    server_requests: int
    server_p50_ms: float | None
    server_p99_ms: float | None
    quantiles_from: str  # "buckets" (this run's), "summary" (the registry's own window)
    server_p50_range_ms: tuple[float, float] | None  # the bucket the p50 lies in (None: a summary)
    client_requests: int | None
    client_p50_ms: float | None
    client_p99_ms: float | None
    note: str = ""  # a count mismatch, in words

    @property
    def p50_gap_ms(self) -> float | None:
        return _gap(self.client_p50_ms, self.server_p50_ms)

    @property
    def p99_gap_ms(self) -> float | None:
        return _gap(self.client_p99_ms, self.server_p99_ms)


@dataclass(frozen=True)
class ProcessSide:
    cpu_cores_avg: float | None
    cpu_cores_max: float | None
    rss_max_bytes: float | None
    in_flight_max: float | None
    goroutines_max: float | None


@dataclass(frozen=True)
class ServerReport:
    source: str  # the metrics URL, without credentials
    dialect: str
    seconds: float
    endpoints: tuple[EndpointRow, ...]
    process: ProcessSide
    storage_p99_ms: dict[str, float | None] = field(default_factory=dict)
    blind_spots: tuple[str, ...] = ()


def compare(
    source: str,
    views: list[ServerView],
    client: Callable[[list[ClientKey]], ClientSide | None],
    known: list[ClientKey],
) -> ServerReport:
    """The run seen by the registry (``views``: its scrapes in order) beside the client's rows."""
    first, last = views[0], views[-1]
    rows = []
    for key, series in sorted(last.requests.items()):
        before = first.requests.get(key)
        matched = client_rows(last.dialect, series.handler, series.method, known)
        server = _server_side(series, before)
        if server is None:
            continue
        count, p50, p99, origin, p50_range = server
        side = client(matched) if matched else None
        rows.append(
            EndpointRow(
                series.handler,
                series.method,
                tuple(f"{m} {n}" for m, n in matched),
                count,
                p50,
                p99,
                origin,
                p50_range,
                side.requests if side else None,
                side.p50_ms if side else None,
                side.p99_ms if side else None,
                _mismatch(count, side.requests if side else None),
            )
        )
    return ServerReport(
        source,
        last.dialect,
        last.at - first.at,
        tuple(rows),
        _process(views),
        {
            action: _ms(histogram_quantile(0.99, delta(h.buckets, first.storage[action].buckets)))
            if action in first.storage
            else _ms(histogram_quantile(0.99, h.buckets))
            for action, h in sorted(last.storage.items())
        },
        tuple(_blind_spots(last, first, rows)),
    )


def _server_side(
    series: RequestSeries, before: RequestSeries | None
) -> tuple[int, float | None, float | None, str, tuple[float, float] | None] | None:
    """The server's count, p50 and p99 in ms, where they come from, and the p50's bucket."""
    if series.histogram is not None:
        buckets = series.histogram.buckets
        if before is not None and before.histogram is not None:
            buckets = delta(buckets, before.histogram.buckets)
        count = int(round(max(b[1] for b in buckets))) if buckets else 0
        if count == 0:
            return None
        bounds = bucket_bounds(0.5, buckets)
        p50_range = (bounds[0] * 1000, bounds[1] * 1000) if bounds is not None else None
        return (
            count,
            _ms(histogram_quantile(0.5, buckets)),
            _ms(histogram_quantile(0.99, buckets)),
            "buckets",
            p50_range,
        )
    if series.summary is not None:
        count = int(round(series.summary.count - (before.summary.count if before and before.summary else 0.0)))
        if count <= 0:
            return None
        q = series.summary.quantiles
        return count, _ms(q.get(0.5)), _ms(q.get(0.99)), "summary", None
    return None


def _process(views: list[ServerView]) -> ProcessSide:
    cpu = [(v.at, v.cpu_seconds) for v in views if v.cpu_seconds is not None]
    rates = [(c2 - c1) / (t2 - t1) for (t1, c1), (t2, c2) in zip(cpu, cpu[1:], strict=False) if t2 > t1 and c2 >= c1]
    average = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0]) if len(cpu) > 1 and cpu[-1][0] > cpu[0][0] else None
    return ProcessSide(
        round(average, 3) if average is not None else None,
        round(max(rates), 3) if rates else None,
        _max(v.rss_bytes for v in views),
        _max(v.in_flight for v in views),
        _max(v.goroutines for v in views),
    )


def _blind_spots(last: ServerView, first: ServerView, rows: list[EndpointRow]) -> list[str]:
    out = []
    if last.redirects > first.redirects:
        out.append(
            "blob GETs were redirected (307, to object storage or a CDN): the registry's blob latency covers"
            " only the redirect, the client's the whole download"
        )
    if any(r.quantiles_from == "summary" for r in rows):
        out.append(
            "summary quantiles (Harbor's core): the registry's own sliding window, not exactly this run's, and"
            " they cannot be merged across replicas"
        )
    if last.dialect == "zot":
        out.append(
            "zot times requests by method only (every GET together) with coarse buckets (50 ms, 500 ms, 1 s…):"
            " a server percentile is known only to within its bucket"
        )
    elif last.dialect == "distribution":
        out.append("distribution's buckets start at 5 ms: a server percentile under 5 ms is an interpolation")
    if last.dialect == "process":
        out.append("no request metrics this regload knows: only the process's CPU and memory")
    return out


def _mismatch(server: int, client: int | None) -> str:
    if client is None or max(server, client) == 0:
        return ""
    gap = abs(server - client) / max(server, client)
    if gap <= MISMATCH:
        return ""
    if server > client:
        return (
            f"the registry counted {server:,} requests, the client {client:,} ({gap:.0%} apart): other clients,"
            " or requests the client did not report (retries, set-up)"
        )
    return (
        f"the client sent {client:,} requests, the registry counted {server:,} ({gap:.0%} apart): something"
        " between them answered (a proxy, a cache), or the registry dropped requests"
    )


def _gap(client: float | None, server: float | None) -> float | None:
    return None if client is None or server is None else round(client - server, 1)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or math.isnan(seconds) else round(seconds * 1000, 2)


def _max(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
