"""How the protocol core runs independent work (layer transfers) side by side.

The core does not import gevent: a front end passes a ``Runner``. ``SequentialRunner`` runs one
task at a time (unit tests); ``regload.transports.gevent_runner.GeventRunner`` runs greenlets,
and hashes in a native thread while the next chunk is being received (``offload``).
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

    def offload(self, fn: Callable[[T], R], arg: T) -> Callable[[], R]:
        """Start ``fn(arg)``, possibly in another OS thread (CPU work that releases the GIL,
        such as hashing a large chunk), and return a function that waits for its result (or
        raises its exception)."""
        ...


class SequentialRunner:
    def map(self, fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
        return [fn(item) for item in items]

    def offload(self, fn: Callable[[T], R], arg: T) -> Callable[[], R]:
        return done(fn(arg))


def done(result: R) -> Callable[[], R]:
    """A finished offload: waiting returns ``result``."""
    return lambda: result
