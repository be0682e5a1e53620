"""Blobs stored in files (a tar member, an OCI layout blob), checked while they stream.

A check hashes a stream as it passes and raises ``SourceError`` at its end when the content is
not what was promised, so verifying costs no extra pass: the push's own read does it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..digest import Digest, Tally
from ..errors import RegloadError, SourceError
from ..streams import Chunk, StreamCheck, checked
from .base import CHUNK, StreamDigestedBlob


class DigestCheck(Tally):
    """The stream must have ``digest`` (and ``size`` bytes, when given), or ``SourceError``.
    ``kind`` names the expected digest in the message (``digest``, ``diff_id``)."""

    __slots__ = ("kind",)

    def __init__(self, digest: Digest, size: int | None, what: str, *, kind: str = "digest") -> None:
        super().__init__(digest, size, what)
        self.kind = kind

    def too_long(self) -> RegloadError:
        return self.wrong_size()

    def wrong_size(self) -> RegloadError:
        return SourceError(f"{self.what}: {self.size} bytes, expected {self.expected_size}")

    def wrong_digest(self, actual: Digest, expected: Digest) -> RegloadError:
        return SourceError(f"{self.what}: content has digest {actual.short}, not its {self.kind} {expected.short}")


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
            tally = Tally()
            yield from checked(chunks, tally, *extra)
            self._digest = tally.digest()
        self._verified = True
