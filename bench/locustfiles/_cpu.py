"""Imported by the bench locustfiles: writes the process's CPU seconds (user + system) spent
between test start and test stop to $BENCH_CPU_FILE, so that a run reports CPU per request
as well as requests per second (the steadier figure on a shared machine)."""

import json
import os
import time

from locust import events

_started: list[float] = []


@events.test_start.add_listener
def _on_start(**_: object) -> None:
    _started[:] = [time.process_time(), time.perf_counter()]


@events.test_stop.add_listener
def _on_stop(**_: object) -> None:
    path = os.environ.get("BENCH_CPU_FILE")
    if path and _started:
        cpu, wall = time.process_time() - _started[0], time.perf_counter() - _started[1]
        with open(path, "w") as f:
            json.dump({"cpu": cpu, "wall": wall}, f)
