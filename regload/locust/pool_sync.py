"""Seeding once per distributed run: the master seeds the pull pool at test start and tells its
workers when it is ready (a custom message, sent again whenever a worker joins and every few
seconds: a worker may take it before the spawn message that resets its pool, and a worker that
joins late needs it too). A worker never pushes pool images: on the message it builds the same
list (it is deterministic) and its PullUsers start pulling."""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from ..errors import RegloadError
from ..reference import Registry
from .seeding import ensure_pool, fill_pool, pool_spec
from .state import POOL, POOL_READY, settings_for

log = logging.getLogger("regload")
READY_MESSAGE = "regload_pool_ready"
WATCH_INTERVAL = 1.0
RETELL_EVERY = 5  # looks between two tellings of an unchanged worker count

_teller: gevent.Greenlet | None = None


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(READY_MESSAGE, _on_ready)


def on_test_start(environment: Any) -> None:
    """Called by ``hooks`` once the pool is reset: on a master whose users pull, seed and tell."""
    global _teller
    stop_telling()
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    pulling = [c for c in environment.user_classes or () if getattr(c, "kind", None) == "PULL"]
    if not pulling:
        return
    ensure_pool(environment, getattr(pulling[0], "transport_factory", None))
    _teller = gevent.spawn(_tell_workers, runner, environment)


def stop_telling() -> None:
    global _teller
    if _teller is not None:
        _teller.kill(block=False)
        _teller = None


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    stop_telling()


def ready_message(environment: Any) -> dict[str, Any]:
    return {
        "fingerprint": pool_spec(settings_for(environment)).fingerprint,
        "error": str(POOL.error) if POOL.error is not None else None,
    }


def _tell_workers(runner: Any, environment: Any) -> None:
    POOL_READY.wait()
    data = ready_message(environment)
    told, ticks = None, 0
    while True:
        count = runner.worker_count
        if count > 0 and (count != told or ticks % RETELL_EVERY == 0):
            runner.send_message(READY_MESSAGE, data)
            told = count
        ticks += 1
        gevent.sleep(WATCH_INTERVAL)


def _on_ready(environment: Any, msg: Any, **_: Any) -> None:
    if POOL_READY.is_set():
        return  # told again: nothing new
    settings = settings_for(environment)
    error, fingerprint = msg.data.get("error"), msg.data.get("fingerprint")
    try:
        if error:
            raise RegloadError(f"the master could not seed the pull pool: {error}")
        if fingerprint != pool_spec(settings).fingerprint:
            raise RegloadError("the master's pull pool has another spec than this worker's options")
        fill_pool(settings, Registry.from_url(environment.host))
        log.info("regload: pull pool ready: %d images (seeded by the master)", len(POOL))
    except RegloadError as e:
        POOL.error = e
        log.error("regload: %s", e)
    finally:
        POOL_READY.set()
