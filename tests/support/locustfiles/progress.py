"""A locustfile for tests: regload's own users, each logging when it last completed an image
operation, so a test can tell that every user kept working (none stuck in a request).

``--csv`` files are flushed every second (Locust: every 5 s), so that a test can follow the
``--csv-full-history`` rows while the run goes on instead of sleeping for a guessed time."""

from __future__ import annotations

import logging
import time
from typing import Any

import locust.stats
from locust import events

from regload.locust import PullUser, PushUser

locust.stats.CSV_STATS_FLUSH_INTERVAL_SEC = 0  # read by the CSV writer at each of its 1 s ticks

LAST_SUCCESS: dict[int, tuple[str, float]] = {}  # id(user) -> (class name, time.time())


def _record(user: Any, result: object) -> None:
    LAST_SUCCESS.setdefault(id(user), (type(user).__name__, 0.0))
    if result is not None:
        LAST_SUCCESS[id(user)] = (type(user).__name__, time.time())


class TrackedPullUser(PullUser):
    def pull_image(self, *args: Any, **kwargs: Any) -> Any:
        result = super().pull_image(*args, **kwargs)
        _record(self, result)
        return result


class TrackedPushUser(PushUser):
    def push_image(self, *args: Any, **kwargs: Any) -> Any:
        result = super().push_image(*args, **kwargs)
        _record(self, result)
        return result


@events.quitting.add_listener
def _report(environment: Any, **_: Any) -> None:
    for key, (name, when) in sorted(LAST_SUCCESS.items()):
        logging.info("progress: %s %x last success at %.3f", name, key, when)
