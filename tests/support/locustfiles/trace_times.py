"""A locustfile for tests: regload's TraceUser, and when each replayed record was answered.

At quit, the wall-clock times of the ``TRACE GET …`` and ``TRACE PUT …`` rows (successes and
failures alike) are written as JSON to the file named by ``REGLOAD_TEST_TRACE_TIMES``."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from locust import events

from regload.locust import TraceUser

TIMES: dict[str, list[float]] = {}


@events.request.add_listener
def _on_request(request_type: str, name: str, **_: Any) -> None:
    if request_type == "TRACE":
        TIMES.setdefault(name, []).append(time.time())


@events.quitting.add_listener
def _on_quitting(**_: Any) -> None:
    with open(os.environ["REGLOAD_TEST_TRACE_TIMES"], "w") as f:
        json.dump(TIMES, f)


__all__ = ["TraceUser"]
