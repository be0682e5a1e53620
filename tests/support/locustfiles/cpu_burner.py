"""A locustfile for tests: regload's PullUser beside one user that keeps its process busy (a load
process pinned at full CPU, as an overloaded generator is), to see a capacity search blame the
generator rather than the registry."""

from __future__ import annotations

import time

import gevent
from locust import User, constant, task

from regload.locust import PullUser

__all__ = ["CpuBurner", "PullUser"]


class CpuBurner(User):
    fixed_count = 1
    wait_time = constant(0)

    @task
    def burn(self) -> None:
        # 20 ms of CPU, then a short turn for the other greenlets: ~95 % of the core.
        until = time.process_time() + 0.020
        while time.process_time() < until:
            pass
        gevent.sleep(0.001)
