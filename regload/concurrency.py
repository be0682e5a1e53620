"""How the protocol core runs independent work (layer transfers) side by side.

The core does not import gevent: a front end passes a ``Runner``. ``SequentialRunner`` runs one
task at a time (unit tests); ``regload.wiring.gevent_runner.GeventRunner`` runs greenlets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Runner(Protocol):
    def map(self, fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
        """Call ``fn`` on every item, at most ``limit`` at a time; results in item order.

        When a call raises, the remaining calls are cancelled or awaited and the first
        exception (in item order) is raised.
        """
        ...


class SequentialRunner:
    def map(self, fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
        return [fn(item) for item in items]
