"""Content passing through a check on its way: an iterator of chunks, or a file being read.

A check (a ``digest.Tally``, or anything with ``update`` and ``check``) sees every byte once, so
hashing and verifying cost no extra pass: the transfer's own read does it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .digest import Tally

Chunk = bytes | memoryview
CHUNK = 1 << 20


class StreamCheck(Protocol):
    """Sees every chunk of a stream, then judges it when the stream ends."""

    def update(self, chunk: Chunk) -> None: ...

    def check(self) -> None:
        """Raise if the content seen was wrong."""
        ...


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


Pipe = Callable[[Callable[[Chunk], Chunk], Iterator[Chunk]], Iterable[Chunk]]


def checked(chunks: Iterable[Chunk], *checks: StreamCheck, beside: Pipe | None = None) -> Iterator[Chunk]:
    """Pass ``chunks`` through, then run every check (raising at the end of the iteration).
    ``beside``: the checks' updates run by this pipe instead (one chunk at a time, in order,
    beside the caller: a hash on another core); the chunks must not share a buffer then."""

    def update(chunk: Chunk) -> Chunk:
        for c in checks:
            c.update(chunk)
        return chunk

    if beside is not None:
        yield from beside(update, iter(chunks))
    else:
        for chunk in chunks:
            yield update(chunk)
    for c in checks:
        c.check()


class Count:
    """Counts the bytes of a stream (no hash), telling ``progress`` each chunk's length."""

    __slots__ = ("size", "_progress")

    def __init__(self, progress: Callable[[int], None] | None = None) -> None:
        self.size = 0
        self._progress = progress

    def update(self, chunk: Chunk) -> None:
        self.size += len(chunk)
        if self._progress is not None:
            self._progress(len(chunk))

    def check(self) -> None:
        pass


class TallyReader:
    """A read-only file: what is read from ``raw`` goes through ``tally`` (a new sha256 one by
    default) on its way."""

    def __init__(self, raw: Readable, tally: Tally | None = None) -> None:
        self._raw = raw
        self.tally = tally if tally is not None else Tally()

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(n)
        self.tally.update(data)
        return data

    def drain(self) -> None:
        """Read to the end (a tar reader stops at the end-of-archive marker; a digest does not)."""
        while self.read(CHUNK):
            pass


def regrouped(chunks: Iterable[Chunk], size: int) -> Iterator[bytes]:
    """The stream re-cut into pieces of exactly ``size`` bytes (the last one shorter); a chunk
    that is one piece already is passed on without joining."""
    pending = bytearray()
    for chunk in chunks:
        if not pending and len(chunk) == size:
            yield bytes(chunk)
            continue
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)
