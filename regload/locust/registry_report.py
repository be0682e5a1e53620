"""The registry's side at the end of a run: per matched endpoint the server's and the client's
counts, p50 and p99 and their difference, the registry process's CPU, memory and requests in
flight, storage actions, and the blind spots that apply; on the console, in
``PREFIX_registry.json`` and ``PREFIX_registry.csv``, and in the web UI's Registry tab."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from locust.stats import RequestStats, StatsEntry

from ..workload.server.compare import ClientKey, ClientSide, EndpointRow, ServerReport, compare
from .registry_watch import without_credentials

if TYPE_CHECKING:
    from .run import LoadRun

GAP_WORTH_SAYING_MS = 5.0  # a client p99 this much above the server's is said in words


def server_reports(run: LoadRun) -> list[ServerReport]:
    watch = run.registry_watch
    stats = run.environment.stats
    known: list[ClientKey] = [(e.method, e.name) for e in stats.entries.values()]

    def client(rows: list[ClientKey]) -> ClientSide | None:
        merged = StatsEntry(RequestStats(use_response_times_cache=False), "merged", "")
        for method, name in rows:
            entry = stats.entries.get((name, method))
            if entry is not None:
                merged.extend(entry)
        if not merged.num_requests:
            return None
        return ClientSide(
            merged.num_requests,
            merged.get_response_time_percentile(0.5),
            merged.get_response_time_percentile(0.99),
        )

    upstream = run.storms.upstream_metrics()
    out = []
    for url in watch.urls:
        views = watch.views(url)
        if len(views) < 2:
            continue
        if url != upstream:
            out.append(compare(without_credentials(url), views, client, known))
            continue
        # The upstream of a cache answers the cache, not regload's clients: its rows stand alone.
        alone = compare(without_credentials(url), views, lambda rows: None, known)
        note = (
            "the upstream of the cache at --host: it answers the cache (and the storms' pushes),"
            " not regload's pulls: no client side"
        )
        out.append(replace(alone, blind_spots=(note, *alone.blind_spots)))
    return out


def summary_lines(reports: list[ServerReport]) -> list[str]:
    lines = []
    for report in reports:
        lines.append(f"regload registry: {report.source} ({report.dialect}, {report.seconds:.0f} s of scrapes)")
        if report.endpoints:
            lines.append(
                f"  {'handler':<18} {'method':<6} {'server n':>9} {'p50':>7} {'p99':>7}  {'client n':>9} {'p50':>7}"
                f" {'p99':>7}  {'gap p50':>8} {'gap p99':>8}"
            )
        for row in report.endpoints:
            lines.append(
                f"  {row.handler:<18} {row.method:<6} {row.server_requests:>9,} {_ms(row.server_p50_ms):>7}"
                f" {_ms(row.server_p99_ms):>7}  {_n(row.client_requests):>9} {_ms(row.client_p50_ms):>7}"
                f" {_ms(row.client_p99_ms):>7}  {_ms(row.p50_gap_ms):>8} {_ms(row.p99_gap_ms):>8}"
                + (" (summary)" if row.quantiles_from == "summary" else "")
            )
        p = report.process
        lines.append(
            f"  registry process: CPU {_cores(p.cpu_cores_avg)} cores on average, {_cores(p.cpu_cores_max)} at peak;"
            f" peak RSS {_mib(p.rss_max_bytes)}; peak in flight {_n(p.in_flight_max)}"
        )
        storage = [f"{action} {_ms(v)} ms" for action, v in report.storage_p99_ms.items() if v is not None]
        if storage:
            lines.append("  storage actions, p99: " + ", ".join(storage))
        lines += [f"  where the time went: {line}" for line in _gaps(report.endpoints)]
        lines += [f"  count mismatch, {row.handler} {row.method}: {row.note}" for row in report.endpoints if row.note]
        lines += [f"  note: {line}" for line in report.blind_spots]
    return lines


def _gaps(rows: tuple[EndpointRow, ...]) -> list[str]:
    out = []
    for row in rows:
        gap = row.p99_gap_ms
        if gap is not None and gap > GAP_WORTH_SAYING_MS and row.client_rows:
            out.append(
                f"{row.client_rows[0]}: the client's p99 is {gap:,.0f} ms above the registry's"
                f" ({_ms(row.client_p99_ms)} vs {_ms(row.server_p99_ms)} ms): that time is spent between them"
                " (network, a proxy or load balancer, queueing in the client), not in the registry"
            )
    return out


def as_dicts(reports: list[ServerReport]) -> list[dict[str, Any]]:
    out = []
    for report in reports:
        data = asdict(report)
        data["endpoints"] = [_endpoint(row) for row in report.endpoints]
        out.append(data)
    return out


def _endpoint(row: EndpointRow) -> dict[str, Any]:
    data = asdict(row)
    data["client_row"] = ", ".join(row.client_rows) or None
    data["p50_gap_ms"], data["p99_gap_ms"] = row.p50_gap_ms, row.p99_gap_ms
    return data


def write_json(path: str, reports: list[ServerReport]) -> None:
    with open(path, "w") as f:
        json.dump(as_dicts(reports), f, indent=2)


CSV_COLUMNS = (
    "source",
    "handler",
    "method",
    "client_row",
    "server_requests",
    "server_p50_ms",
    "server_p99_ms",
    "quantiles_from",
    "client_requests",
    "client_p50_ms",
    "client_p99_ms",
    "p50_gap_ms",
    "p99_gap_ms",
    "note",
)


def write_csv(path: str, reports: list[ServerReport]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for report in reports:
            for row in report.endpoints:
                data = {"source": report.source, **_endpoint(row)}
                writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])


UI_COLUMNS = (
    ("endpoint", "Endpoint"),
    ("server", "Server n / p50 / p99"),
    ("client", "Client n / p50 / p99"),
    ("gap", "Gap p50 / p99 ms"),
    ("note", "Note"),
)


def ui_rows(reports: list[ServerReport]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"endpoint": "charts: the run over time, client and registry", "server": "/regload/timeline"}
    ]
    for report in reports:
        for row in report.endpoints:
            rows.append(
                {
                    "endpoint": f"{row.handler} {row.method} ({', '.join(row.client_rows) or 'no client row'})",
                    "server": f"{row.server_requests:,} / {_ms(row.server_p50_ms)} / {_ms(row.server_p99_ms)}",
                    "client": f"{_n(row.client_requests)} / {_ms(row.client_p50_ms)} / {_ms(row.client_p99_ms)}",
                    "gap": f"{_ms(row.p50_gap_ms)} / {_ms(row.p99_gap_ms)}",
                    "note": row.note or ("summary quantiles" if row.quantiles_from == "summary" else ""),
                }
            )
        p = report.process
        rows.append(
            {
                "endpoint": f"process ({report.source})",
                "server": f"CPU {_cores(p.cpu_cores_avg)} avg, {_cores(p.cpu_cores_max)} peak",
                "client": f"RSS {_mib(p.rss_max_bytes)} peak",
                "gap": f"in flight {_n(p.in_flight_max)} peak",
                "note": "; ".join(report.blind_spots),
            }
        )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"
