"""What a run reports at its end: the throughput and open-model summaries on stderr and beside
Locust's CSV and JSON files, and the pass/fail checks that decide the exit code. At ``quitting``
a master holds the workers' final stats, so this is the whole run."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..workload.capacity.limits import GeneratorHealth, explain_drops, lateness_bound_ms
from . import (
    arrival_report,
    capacity_report,
    events_report,
    registry_report,
    storm_report,
    throughput,
    timeline_chart,
)
from .thresholds import PercentileCheck, breaches

if TYPE_CHECKING:
    from .run import LoadRun

log = logging.getLogger("regload")


def report(run: LoadRun) -> None:
    environment = run.environment
    options = environment.parsed_options
    rows = throughput.throughput(environment.stats)
    arrivals = run.open_model.rows()
    if options is not None and rows and any(r.images for r in rows):
        chosen = run.settings.profile
        print(f"regload client profile: {chosen.name} ({chosen.client})", file=sys.stderr)
    servers = registry_report.server_reports(run)
    lines = throughput.summary_lines(rows) + arrival_report.summary_lines(arrivals) + drop_lines(run, arrivals)
    lines += capacity_report.summary_lines(run.capacity) + registry_report.summary_lines(servers)
    lines += events_report.summary_lines(run.windows) + storm_report.summary_lines(run.storms.storms)
    for line in lines:
        print(line, file=sys.stderr)
    csv_prefix, json_prefix = getattr(options, "csv_prefix", None), getattr(options, "json_file", None)
    capacity = run.capacity
    outputs: list[tuple[str, Callable[[str], None]]] = []
    if csv_prefix:
        outputs.append((f"{csv_prefix}_throughput.csv", lambda path: throughput.write_csv(path, rows)))
        if arrivals:
            outputs.append((f"{csv_prefix}_arrivals.csv", lambda path: arrival_report.write_csv(path, arrivals)))
        if capacity.records:
            outputs.append((f"{csv_prefix}_capacity.csv", lambda path: capacity_report.write_csv(path, capacity)))
        if servers:
            outputs.append((f"{csv_prefix}_registry.csv", lambda path: registry_report.write_csv(path, servers)))
        outputs.append((f"{csv_prefix}_report.html", lambda path: timeline_chart.write_html(path, run, lines)))
    if json_prefix:
        outputs.append((f"{json_prefix}_throughput.json", lambda path: throughput.write_json(path, rows)))
        if arrivals:
            outputs.append((f"{json_prefix}_arrivals.json", lambda path: arrival_report.write_json(path, arrivals)))
    for prefix in {csv_prefix, json_prefix} - {None, ""}:  # beside either (once when both are one prefix)
        if capacity.records:
            outputs.append((f"{prefix}_capacity.json", lambda path: capacity_report.write_json(path, capacity)))
        if servers:
            outputs.append((f"{prefix}_registry.json", lambda path: registry_report.write_json(path, servers)))
        if run.storms.storms:
            outputs.append((f"{prefix}_storms.json", lambda path: storm_report.write_json(path, run.storms.storms)))
        if run.windows.active:
            outputs.append((f"{prefix}_events.json", lambda path: events_report.write_json(path, run.windows)))
    html_file = getattr(options, "html_file", None)
    if html_file:  # beside Locust's own report
        stem = html_file[: -len(".html")] if html_file.endswith(".html") else html_file
        outputs.append((f"{stem}_regload.html", lambda path: timeline_chart.write_html(path, run, lines)))
    for path, write in outputs:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # Locust makes it only later
            write(path)
        except OSError as e:
            log.error("regload: cannot write %s: %s", path, e.strerror or e)


def drop_lines(run: LoadRun, arrivals: list[arrival_report.ArrivalRow]) -> list[str]:
    """Why each kind dropped arrivals: every user busy (how many the rate needs), or the generator."""
    stats = run.environment.stats
    checks = [PercentileCheck.parse(t) for t in run.settings.checks.percentiles]
    bound = lateness_bound_ms([c.limit_ms for c in checks])
    cpu = run.open_model.load_cpu()
    lines = []
    for row in arrivals:
        if not row.dropped:
            continue
        entry = stats.entries.get(("image", row.operation))
        p99 = entry.get_response_time_percentile(0.99) if entry is not None and entry.num_requests else None
        health = GeneratorHealth(cpu, row.lateness_p99_ms)
        users = run.open_model.users.get(row.operation, 0)
        lines.append(
            explain_drops(row.operation, row.target_rate, row.dropped, row.scheduled, users, p99, health, bound)
        )
    return lines


def check(run: LoadRun) -> None:
    """With checks given, they alone decide the exit code: 1 on a breach, else 0 (Locust would
    exit 1 on any failure, which a run with an accepted failure ratio expects). A capacity search
    decides it instead: 0 when it found and confirmed a capacity, else 1 (its steps are meant to
    break the checks)."""
    environment = run.environment
    if run.capacity.active:
        result = run.capacity.result
        found = result is not None and result.capacity is not None and result.confirmed
        environment.process_exit_code = 0 if found else 1
        return
    checks = [PercentileCheck.parse(t) for t in run.settings.checks.percentiles]
    fail_ratio = run.settings.checks.fail_ratio
    if fail_ratio is None and not checks:
        return
    failed = breaches(environment.stats, fail_ratio, checks)
    for line in failed:
        log.error("regload check failed: %s", line)
    environment.process_exit_code = 1 if failed else 0
    if not failed:
        log.info("regload: all checks passed")
