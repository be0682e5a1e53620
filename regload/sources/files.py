"""Blobs stored in files (a tar member, an OCI layout blob), checked while they stream.

A check hashes a stream as it passes and raises ``SourceError`` at its end when the content is
not what was promised, so verifying costs no extra pass: the push's own read does it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from ..digest import Digest
from ..errors import SourceError
from .base import CHUNK, StreamDigestedBlob

Chunk = bytes | memoryview


class StreamCheck(Protocol):
    """Sees every chunk of a stream, then judges it when the stream ends."""

    def update(self, chunk: Chunk) -> None: ...

    def check(self) -> None:
        """Raise ``SourceError`` if the content seen was wrong."""
        ...


class DigestCheck:
    """The stream must have ``digest`` (and ``size`` bytes, when given). ``kind`` names the
    expected digest in the message (``digest``, ``diff_id``)."""

    def __init__(self, digest: Digest, size: int | None, what: str, *, kind: str = "digest") -> None:
        self.digest = digest
        self.expected_size = size
        self.what = what
        self.kind = kind
        self.size = 0
        self._hash = digest.hasher()

    def update(self, chunk: Chunk) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def check(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise SourceError(f"{self.what}: {self.size} bytes, expected {self.expected_size}")
        actual = Digest(self.digest.algorithm, self._hash.hexdigest())
        if actual != self.digest:
            raise SourceError(
                f"{self.what}: content has digest {actual.short}, not its {self.kind} {self.digest.short}"
            )


class DigestRecorder:
    """A check that never fails: it records the sha256 digest of what streamed."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, chunk: Chunk) -> None:
        self._hash.update(chunk)

    def check(self) -> None:
        pass

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


def checked(chunks: Iterable[Chunk], *checks: StreamCheck) -> Iterator[Chunk]:
    """Pass ``chunks`` through, then run every check (raising at the end of the iteration)."""
    for chunk in chunks:
        for c in checks:
            c.update(chunk)
        yield chunk
    for c in checks:
        c.check()


def read_range(path: str, offset: int, size: int, what: str) -> Iterator[bytes]:
    """Stream ``size`` bytes of ``path`` from ``offset`` in pieces of at most ``CHUNK``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            left = size
            while left:
                piece = f.read(min(CHUNK, left))
                if not piece:
                    raise SourceError(f"{what}: {path} ends {left} bytes early (truncated?)")
                left -= len(piece)
                yield piece
    except OSError as e:
        raise SourceError(f"{what}: cannot read {path}: {e.strerror or e}") from None


class FileBlob(StreamDigestedBlob):
    """A blob that is a byte range of a file.

    With ``digest`` given, the descriptor is known without a pass and the content is verified
    against it while the first complete ``open()`` streams. Without it, the first complete pass
    (``descriptor()`` or a push's own read) computes and caches it. Either way later passes
    skip hashing: the file is trusted not to change during a run. ``kind`` names ``digest`` in
    messages (``diff_id``); ``checks`` makes extra checks for that first pass (e.g. a compressed
    layer's diff_id).
    """

    def __init__(
        self,
        media_type: str,
        path: str,
        *,
        size: int,
        offset: int = 0,
        digest: Digest | None = None,
        what: str = "blob",
        kind: str = "digest",
        checks: Callable[[], list[StreamCheck]] | None = None,
    ) -> None:
        self.media_type = media_type
        self.path = path
        self.offset = offset
        self.size = size
        self.what = what
        self.kind = kind
        self._digest = digest
        self._checks = checks
        self._verified = False

    def open(self) -> Iterator[Chunk]:
        chunks = read_range(self.path, self.offset, self.size, self.what)
        if self._verified:
            yield from chunks
            return
        extra = self._checks() if self._checks else []
        if self._digest is not None:
            yield from checked(chunks, DigestCheck(self._digest, self.size, self.what, kind=self.kind), *extra)
        else:
            hasher = DigestRecorder()
            yield from checked(chunks, hasher, *extra)
            self._digest = hasher.digest()
        self._verified = True
