"""GeventRunner: ``regload.concurrency.Runner`` on greenlets."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, cast

import gevent
from gevent.event import Event
from gevent.pool import Pool
from gevent.threadpool import ThreadPool

T = TypeVar("T")
R = TypeVar("R")


class GeventRunner:
    """Runs ``fn`` over the items in at most ``limit`` greenlets.

    Results come back in item order. After the first failure no new item starts and the
    greenlets still running are killed (``GreenletExit`` unwinds them, closing what they hold);
    then the failure of the lowest item index is raised. The runner leaves no greenlet behind,
    also when the calling greenlet is itself killed while it waits.
    """

    def map(self, fn: Callable[[T], R], items: Sequence[T], limit: int) -> list[R]:
        if len(items) <= 1 or limit <= 1:
            # Nothing runs beside anything: no pool, no greenlet (an image of one layer, the
            # common case in a load test, pays nothing for concurrency it does not use).
            return [fn(item) for item in items]
        results: list[R | None] = [None] * len(items)
        errors: dict[int, Exception] = {}
        failed = Event()

        def run(index: int) -> None:
            # Failures are kept as values: a greenlet dying of an exception would also make the
            # hub print its traceback.
            try:
                results[index] = fn(items[index])
            except Exception as exc:  # noqa: BLE001 - re-raised by map() below
                errors[index] = exc
                failed.set()

        pool = Pool(max(1, limit))
        try:
            for index in range(len(items)):
                pool.wait_available()
                if failed.is_set():
                    break
                pool.spawn(run, index)
            # Until everything finished or something failed.
            while not failed.is_set():
                running = [greenlet for greenlet in pool.greenlets if not greenlet.dead]
                if not running:
                    break
                gevent.wait([failed, *running], count=1)
        finally:
            pool.kill(block=True)
        if errors:
            raise errors[min(errors)]
        return results  # type: ignore[return-value]


class NativeThreads:
    """``regload.sources.compress.Threads`` on gevent's pools of native threads: ``map`` on one
    thread per core, ``pipe`` on one thread of its own. For work that releases the GIL (ISA-L,
    hashlib, file writes): the calling greenlet waits cooperatively, and the items are read by a
    greenlet of its thread, a few ahead. An error reading the items, or raised by ``fn``, is
    raised here, to the caller (raised in gevent's reader greenlet or in a worker, the hub would
    print it as a traceback); a caller that stops early stops the reading."""

    _wide: ThreadPool | None = None  # made on first use, one of each per process
    _single: ThreadPool | None = None

    def map(self, fn: Callable[[T], R], items: Iterator[T]) -> Iterator[R]:
        if NativeThreads._wide is None:
            NativeThreads._wide = ThreadPool(max(1, os.cpu_count() or 1))
        return _imap(NativeThreads._wide, fn, items)

    def pipe(self, fn: Callable[[T], R], items: Iterator[T]) -> Iterator[R]:
        if NativeThreads._single is None:
            NativeThreads._single = ThreadPool(1)
        return _imap(NativeThreads._single, fn, items)


def _imap(pool: ThreadPool, fn: Callable[[T], R], items: Iterator[T]) -> Iterator[R]:
    failures: list[Exception] = []

    def guarded() -> Iterator[T]:
        try:
            yield from items
        except Exception as exc:  # noqa: BLE001 - raised again below, in the caller
            failures.append(exc)

    def call(item: T) -> tuple[bool, R | Exception]:
        try:
            return True, fn(item)
        except Exception as exc:  # noqa: BLE001 - raised again below, in the caller
            return False, exc

    results = pool.imap(call, guarded(), maxsize=2 * pool.maxsize)
    try:
        for ok, value in cast(Iterator[tuple[bool, R | Exception]], results):
            if not ok:
                raise cast(Exception, value)
            yield cast(R, value)
    finally:
        results.kill()  # a no-op once every item is read
    if failures:
        raise failures[0]
