"""What a registry calls its requests, read off one scrape: request latency by handler and
method, requests in flight, storage actions, and the process's CPU, memory and goroutines.

- CNCF distribution (and Harbor's registry component): ``registry_http_request_duration_seconds
  {handler,method}`` (histogram), ``registry_http_in_flight_requests{handler}``,
  ``registry_storage_action_seconds{driver,action}`` (distribution ``metrics/prometheus.go``).
- Harbor's core: ``harbor_core_http_request_duration_seconds{method,operation}``, a *summary*,
  and ``harbor_core_http_inflight_requests{operation}`` (goharbor.io, "Access Metrics").
- zot: ``zot_http_method_latency_seconds{method}`` (histogram, buckets .05 … 600 s) and
  ``zot_storage_lock_latency_seconds{storageName,lockType}`` (zot
  ``pkg/extensions/monitoring/extension.go``).
- Any Go or Python process: ``process_cpu_seconds_total``, ``process_resident_memory_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .scrape import Histogram, Scrape, Summary

ANY_HANDLER = "*"  # zot times requests by method only


@dataclass
class RequestSeries:
    handler: str  # distribution's handler (manifest, blob…), Harbor's operation, or ANY_HANDLER
    method: str  # lower case
    histogram: Histogram | None = None
    summary: Summary | None = None

    @property
    def count(self) -> float:
        return self.histogram.count if self.histogram is not None else (self.summary.count if self.summary else 0.0)


@dataclass
class ServerView:
    dialect: str  # distribution, harbor, zot, or process (only the process metrics)
    at: float
    requests: dict[tuple[str, str], RequestSeries] = field(default_factory=dict)
    in_flight: float | None = None
    storage: dict[str, Histogram] = field(default_factory=dict)  # by action (zot: lock type)
    cpu_seconds: float | None = None
    rss_bytes: float | None = None
    goroutines: float | None = None
    redirects: float = 0.0  # blob GETs answered 307 (to object storage or a CDN)


def view(scrape: Scrape) -> ServerView:
    families = scrape.families()
    if "registry_http_request_duration_seconds" in families:
        out = _distribution(scrape)
    elif "harbor_core_http_request_duration_seconds" in families:
        out = _harbor(scrape)
    elif "zot_http_method_latency_seconds" in families:
        out = _zot(scrape)
    else:
        out = ServerView("process", scrape.at)
    out.cpu_seconds = scrape.value("process_cpu_seconds_total")
    out.rss_bytes = scrape.value("process_resident_memory_bytes")
    out.goroutines = scrape.value("go_goroutines")
    return out


def _distribution(scrape: Scrape) -> ServerView:
    out = ServerView("distribution", scrape.at)
    for (name, labels), histogram in scrape.histograms.items():
        tags = dict(labels)
        if name == "registry_http_request_duration_seconds":
            key = (tags.get("handler", ""), tags.get("method", "").lower())
            out.requests[key] = RequestSeries(*key, histogram=histogram)
        elif name == "registry_storage_action_seconds":
            action = tags.get("action", "")
            merged = out.storage.setdefault(action, Histogram())
            _add(merged, histogram)
    out.in_flight = _sum(scrape, "registry_http_in_flight_requests")
    out.redirects = sum(
        value
        for (name, labels), value in scrape.values.items()
        if name == "registry_http_requests_total" and dict(labels).get("code") == "307"
    )
    return out


def _harbor(scrape: Scrape) -> ServerView:
    out = ServerView("harbor", scrape.at)
    for (name, labels), summary in scrape.summaries.items():
        if name == "harbor_core_http_request_duration_seconds":
            tags = dict(labels)
            key = (tags.get("operation", ""), tags.get("method", "").lower())
            out.requests[key] = RequestSeries(*key, summary=summary)
    out.in_flight = _sum(scrape, "harbor_core_http_inflight_requests")
    return out


def _zot(scrape: Scrape) -> ServerView:
    out = ServerView("zot", scrape.at)
    for (name, labels), histogram in scrape.histograms.items():
        tags = dict(labels)
        if name == "zot_http_method_latency_seconds":
            key = (ANY_HANDLER, tags.get("method", "").lower())
            out.requests[key] = RequestSeries(*key, histogram=histogram)
        elif name == "zot_storage_lock_latency_seconds":
            _add(out.storage.setdefault(f"lock {tags.get('lockType', '')}", Histogram()), histogram)
    return out


def _sum(scrape: Scrape, name: str) -> float | None:
    values = [v for (n, _), v in scrape.values.items() if n == name]
    return sum(values) if values else None


def _add(total: Histogram, more: Histogram) -> None:
    counts = dict(total.buckets)
    for bound, count in more.buckets:
        counts[bound] = counts.get(bound, 0.0) + count
    total.buckets = sorted(counts.items())
    total.count += more.count
    total.sum += more.sum
