"""A master telling its workers something, again and again: at once, whenever the worker count
changes, and every few seconds anyway. A worker that joins late needs the message too, and a
worker may take a message before the spawn message that resets its run (then it needs it once
more); to a worker that has it, a repeat is no news."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent

WATCH_INTERVAL = 1.0  # seconds between two looks at the worker count
RETELL_EVERY = 5  # looks between two tellings of an unchanged count


class Broadcast:
    """Sends ``message`` with ``data(workers)`` from a greenlet of its own until stopped; ``before``
    is waited for first (the pool's readiness, say)."""

    def __init__(
        self,
        runner: Any,
        message: str,
        data: Callable[[int], dict[str, Any]],
        before: Callable[[], object] | None = None,
    ) -> None:
        self._greenlet = gevent.spawn(self._tell, runner, message, data, before)

    def stop(self) -> None:
        self._greenlet.kill(block=False)

    @staticmethod
    def _tell(runner: Any, message: str, data: Callable[[int], dict[str, Any]], before: Any) -> None:
        if before is not None:
            before()
        told, ticks = None, 0
        while True:
            count = runner.worker_count
            if count > 0 and (count != told or ticks % RETELL_EVERY == 0):
                runner.send_message(message, data(count))
                told = count
            ticks += 1
            gevent.sleep(WATCH_INTERVAL)
