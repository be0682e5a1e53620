"""Locust event listeners: options, a local registry when no --host is given, a fresh pull pool
per test, the throughput tab and summary, and the pass/fail checks.

They are registered when this module is imported, and ``users`` imports it: whatever a
locustfile imports from regload's Locust layer to get a user class (``regload.locust``,
``regload.locust.users``), the options and listeners come with it. Nothing here imports a
user class."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

import gevent
from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, WorkerRunner

from ..audit import check_writable
from ..errors import RegloadError
from ..local_registry import LocalRegistry, RegistryBinaryNotFound
from . import arrival_chart, arrival_report, pool_sync, throughput
from .open_hooks import arrival_rows  # also registers the open model's listeners
from .options import add_arguments
from .seeding import stop_seeding
from .state import reset_for_test, settings_for
from .thresholds import PercentileCheck, breaches
from .trace_replay import replay_for
from .web_secrets import protect_secrets

log = logging.getLogger("regload")
_local_registry: Any = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global _local_registry
    options = environment.parsed_options
    try:
        if options is not None:
            settings = settings_for(environment)  # fail early on bad option values
            if settings.audit_file:
                check_writable(settings.audit_file)
            for text in options.check_percentile or ():
                PercentileCheck.parse(text)
            replay_for(settings)  # a trace that cannot be read stops the run here, in one line
    except RegloadError as e:
        print(f"regload: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    if not isinstance(environment.runner, WorkerRunner) and not environment.host:
        _local_registry = start_local_registry()
        environment.host = _local_registry.url
    if environment.web_ui is not None:
        _extend_web_ui(environment)
    _interrupt_cleanly()


def _interrupt_cleanly() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main greenlet, where Locust waits for it to shut
    down, and not in whichever greenlet runs when the signal comes: in a busy run that is a
    user's transfer, which then dies with a traceback on the terminal. The signal is taken from
    the event loop instead (left alone when ignored: a background job)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        main = gevent.getcurrent()  # the init event fires in the main greenlet
        gevent.signal_handler(signal.SIGINT, main.throw, KeyboardInterrupt)


def start_local_registry() -> Any:

    try:
        registry = LocalRegistry().start()
    except RegistryBinaryNotFound as e:
        sys.exit(f"regload: error: no --host given and {e}")
    log.warning(
        "no --host given: started a local docker-registry at %s (storage %s)", registry.url, registry.storage_dir
    )
    return registry


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    stop_seeding()
    reset_for_test()
    pool_sync.on_test_start(environment)  # a master seeds the pull pool for its workers


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    global _local_registry
    try:
        if not isinstance(environment.runner, WorkerRunner):
            _stop_users(environment)
            _report(environment)
            _check(environment)
    finally:
        if _local_registry is not None:
            _local_registry.stop()
            _local_registry = None


def _stop_users(environment: Any) -> None:
    """Stop the users before the local registry and before the report. Locust fires
    ``quitting`` first and stops the runner only after it (locust/main.py, ``shutdown``): on
    SIGTERM or Ctrl-C during a web-UI run the users are still running here, and every request
    in flight would fail once the registry is gone. ``stop`` waits for a master's workers."""
    runner = environment.runner
    if runner is not None and runner.state in (STATE_SPAWNING, STATE_RUNNING):
        runner.stop()


def _report(environment: Any) -> None:
    """The throughput and open-model summaries on stderr, and beside Locust's own CSV and JSON
    reports. At ``quitting`` a master holds the workers' final stats, so this is the whole run."""
    options = environment.parsed_options
    rows = throughput.throughput(environment.stats)
    arrivals = arrival_rows(environment)
    if options is not None and rows and any(r.images for r in rows):
        chosen = settings_for(environment).profile
        print(f"regload client profile: {chosen.name} ({chosen.client})", file=sys.stderr)
    for line in throughput.summary_lines(rows) + arrival_report.summary_lines(arrivals):
        print(line, file=sys.stderr)
    outputs = []
    if options is not None and getattr(options, "csv_prefix", None):
        outputs.append((f"{options.csv_prefix}_throughput.csv", lambda path: throughput.write_csv(path, rows)))
        if arrivals:
            outputs.append(
                (f"{options.csv_prefix}_arrivals.csv", lambda path: arrival_report.write_csv(path, arrivals))
            )
    if options is not None and getattr(options, "json_file", None):
        outputs.append((f"{options.json_file}_throughput.json", lambda path: throughput.write_json(path, rows)))
        if arrivals:
            outputs.append(
                (f"{options.json_file}_arrivals.json", lambda path: arrival_report.write_json(path, arrivals))
            )
    for path, write in outputs:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # Locust makes it only later
            write(path)
        except OSError as e:
            log.error("regload: cannot write %s: %s", path, e.strerror or e)


def _check(environment: Any) -> None:
    """With checks given, they alone decide the exit code: 1 on a breach, else 0 (Locust would
    exit 1 on any failure, which a run with an accepted failure ratio expects)."""
    options = environment.parsed_options
    if options is None:
        return
    checks = [PercentileCheck.parse(t) for t in options.check_percentile or ()]
    fail_ratio = _fail_ratio(options.check_fail_ratio)
    if fail_ratio is None and not checks:
        return
    failed = breaches(environment.stats, fail_ratio, checks)
    for line in failed:
        log.error("regload check failed: %s", line)
    environment.process_exit_code = 1 if failed else 0
    if not failed:
        log.info("regload: all checks passed")


def _fail_ratio(value: Any) -> float | None:
    """A float from the command line, but text from the web UI's form, where Locust keeps the
    type of a None default as str: "" when the field was left empty."""
    return None if value is None or value == "" else float(value)


def _extend_web_ui(environment: Any) -> None:
    """Throughput and Arrivals tabs in the web UI, fed with the stats the UI polls, and the
    arrivals chart page; no secret in its pages."""
    from flask import request

    web_ui = environment.web_ui
    if environment.parsed_options is not None:
        protect_secrets(web_ui, environment.parsed_options)
    web_ui.template_args["extended_tabs"] = [
        {"title": "Throughput", "key": "throughput"},
        {"title": "Arrivals", "key": "arrivals"},
    ]
    web_ui.template_args["extended_tables"] = [throughput.UI_TABLE, arrival_report.UI_TABLE]

    @web_ui.app.route(arrival_chart.PATH)
    @web_ui.auth_required_if_enabled
    def _arrival_chart() -> Any:
        return arrival_chart.PAGE

    @web_ui.app.route(arrival_chart.PATH + ".json")
    @web_ui.auth_required_if_enabled
    def _arrival_series() -> Any:
        return arrival_chart.series(environment, arrival_rows(environment))

    @web_ui.app.after_request
    def _add_throughput(response: Any) -> Any:
        if request.path.endswith("/stats/requests") and response.is_json and environment.runner is not None:
            data = response.get_json()
            rows = throughput.ui_rows(throughput.throughput(environment.runner.stats))
            arrivals = arrival_report.ui_rows(arrival_rows(environment))
            data["extended_stats"] = [
                {"key": "throughput", "data": rows},
                {"key": "arrivals", "data": arrivals},
            ]
            response.set_data(json.dumps(data))
        return response
