"""regload's Locust plugin: the one module that registers listeners.

Importing ``regload.locust`` (which a locustfile does to get a user class) registers two
listeners on Locust's global events: one adds regload's options to Locust's parser, the other
installs a ``LoadRun`` on each environment Locust initialises. ``install`` registers the run's
own listeners on that environment's events; an environment made by hand with events of its own
gets a run with ``install(environment)``. (Environments that share Locust's global events would
each hear the others' ``spawning_complete`` and ``report_to_master``, which name no environment:
give each its own ``Events()``.)
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import gevent
from locust import events
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from ..audit import check_writable
from ..errors import RegloadError
from ..local_registry import LocalRegistry, RegistryBinaryNotFound, RegistryConfig
from .capacity_run import STEP_MESSAGE, WINDOW_MESSAGE
from .open_run import SHARE_MESSAGE
from .options import add_arguments, settings_from
from .pull_pool import READY_MESSAGE
from .run import LoadRun
from .storm_crowd import STORM_DONE_MESSAGE, STORM_MESSAGE
from .thresholds import PercentileCheck

log = logging.getLogger("regload")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    install(environment)


def install(environment: Any) -> LoadRun:
    """The environment's run, made once: options checked (a bad value stops Locust here, in one
    line), the metrics for Prometheus served (``--metrics-port``, never on a worker), the embedded
    registry started when no ``--host`` was given, the run's listeners and worker messages
    registered, the web UI extended."""
    existing = getattr(environment, "regload", None)
    if isinstance(existing, LoadRun):
        return existing
    try:
        run = LoadRun(environment, settings_from(environment.parsed_options))
        if run.settings.audit_file:
            check_writable(run.settings.audit_file)
        for text in run.settings.checks.percentiles:
            PercentileCheck.parse(text)
        run.replay()  # a trace that cannot be read stops the run here
        if not isinstance(environment.runner, WorkerRunner):
            run.exposition.serve(run.settings.exposition)  # --metrics-port: a port in use stops the run here
    except RegloadError as e:
        print(f"regload: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    environment.regload = run
    worker = isinstance(environment.runner, WorkerRunner)
    if worker:
        environment.runner.register_message(SHARE_MESSAGE, run.open_model.on_share)
        environment.runner.register_message(READY_MESSAGE, run.pool.on_ready)
        environment.runner.register_message(STEP_MESSAGE, run.capacity.on_step_message)
        environment.runner.register_message(STORM_MESSAGE, run.crowd.on_storm_message)
    elif isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(WINDOW_MESSAGE, run.capacity.on_window_message)
        environment.runner.register_message(STORM_DONE_MESSAGE, run.storms.on_done_message)
    if not worker and not environment.host:
        run.local_registry = _start_local_registry()
        environment.host = run.local_registry.url
    listen = environment.events
    listen.test_start.add_listener(run.start_test)
    listen.test_stopping.add_listener(run.stop_test)
    listen.test_stop.add_listener(run.stop_test)
    listen.spawning_complete.add_listener(run.spawning_complete)
    listen.report_to_master.add_listener(run.report_to_master)
    listen.worker_report.add_listener(run.worker_report)
    listen.quitting.add_listener(run.quit)
    listen.request.add_listener(run.capacity.on_request)
    if worker and environment.runner.worker_state in (STATE_SPAWNING, STATE_RUNNING):
        # A worker joining a running test can take its spawn message, and fire test_start, before
        # Locust fires init (locust/main.py starts the runner first): the test began without us.
        run.start_test()
    if environment.web_ui is not None:
        from .web import extend_web_ui

        extend_web_ui(run)
    _interrupt_cleanly()
    return run


def _start_local_registry() -> Any:
    try:
        registry = LocalRegistry(config=RegistryConfig(metrics=True)).start()
    except RegistryBinaryNotFound as e:
        sys.exit(f"regload: error: no --host given and {e}")
    log.warning(
        "no --host given: started a local docker-registry at %s (storage %s); its metrics at %s",
        registry.url,
        registry.storage_dir,
        registry.metrics_url,
    )
    return registry


def _interrupt_cleanly() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main greenlet, where Locust waits for it to shut
    down, and not in whichever greenlet runs when the signal comes: in a busy run that is a
    user's transfer, which then dies with a traceback on the terminal. The signal is taken from
    the event loop instead (left alone when ignored: a background job)."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        main = gevent.getcurrent()  # the init event fires in the main greenlet
        gevent.signal_handler(signal.SIGINT, main.throw, KeyboardInterrupt)
