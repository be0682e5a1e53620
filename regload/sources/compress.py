"""Streaming gzip: deterministic compression, blobs compressed once into a spool file, and
bounded decompression (to check the diff_id of a layer that is already compressed).

Nothing here holds a whole blob in memory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator

from ..errors import SourceError
from ..manifest import Descriptor
from .base import CHUNK
from .files import Chunk, DigestRecorder, read_range

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_LEVEL = 6  # what docker (Go's gzip.DefaultCompression) uses, so blob sizes look real


def check_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9:
        raise SourceError(f"invalid gzip level {level!r}: expected 1 to 9")
    return level


def gzip_chunks(chunks: Iterable[Chunk], level: int = DEFAULT_LEVEL) -> Iterator[bytes]:
    """Gzip-compress a stream, yielding pieces of any size.

    The output is a function of the input and level only: zlib's own gzip header (wbits=31)
    carries no file name and mtime 0. (Another zlib build may still compress differently.)
    """
    z = zlib.compressobj(check_level(level), zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


class SpooledBlob:
    """A blob made by gzip-compressing ``content()`` once, on first need, into a temporary file.

    The pass computes digest and size; ``open()`` then streams the spool file, so each push
    of the blob costs a file read instead of a compression. ``close()`` deletes the spool (a
    later ``open()`` compresses again and must get the same digest).
    """

    def __init__(
        self,
        media_type: str,
        content: Callable[[], Iterable[Chunk]],
        *,
        level: int = DEFAULT_LEVEL,
        tmpdir: str | None = None,
        what: str = "blob",
    ) -> None:
        self.media_type = media_type
        self.what = what
        self._content = content
        self._level = check_level(level)
        self._tmpdir = tmpdir
        self._path: str | None = None
        self._descriptor: Descriptor | None = None
        self._lock = threading.Lock()

    def known_descriptor(self) -> Descriptor | None:
        return self._descriptor

    def descriptor(self) -> Descriptor:
        self._spooled()
        assert self._descriptor is not None
        return self._descriptor

    def open(self) -> Iterator[Chunk]:
        path = self._spooled()
        assert self._descriptor is not None
        return read_range(path, 0, self._descriptor.size, self.what)

    def close(self) -> None:
        with self._lock:
            path, self._path = self._path, None
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _spooled(self) -> str:
        with self._lock:
            if self._path is None:
                self._path = self._spool()
            return self._path

    def _spool(self) -> str:
        try:
            fd, path = tempfile.mkstemp(prefix="regload-", suffix=".tar.gz", dir=self._tmpdir)
        except OSError as e:
            raise SourceError(f"{self.what}: cannot create a spool file: {e.strerror or e}") from None
        hasher = DigestRecorder()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in gzip_chunks(self._content(), self._level):
                    hasher.update(piece)
                    size += len(piece)
                    f.write(piece)
        except OSError as e:
            os.unlink(path)
            raise SourceError(f"{self.what}: cannot write spool file {path}: {e.strerror or e}") from None
        except BaseException:
            os.unlink(path)
            raise
        desc = Descriptor(self.media_type, hasher.digest(), size)
        if self._descriptor is not None and self._descriptor != desc:
            os.unlink(path)
            raise SourceError(f"{self.what}: content changed since it was first compressed")
        self._descriptor = desc
        return path


class Gunzip:
    """Incremental gzip decompression, at most ``CHUNK`` bytes of output at a time (so a small
    compressed chunk of zeros cannot expand to gigabytes in memory). Accepts several gzip
    members in a row (pigz, concatenated files) and trailing zero padding."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._d: zlib._Decompress | None = None
        self._members = 0

    def feed(self, data: Chunk) -> Iterator[bytes]:
        rest = bytes(data)
        while rest:
            if self._d is None:
                if not rest.strip(b"\0") and self._members:
                    return
                self._d = zlib.decompressobj(31)
            d = self._d
            out = self._inflate(d, rest)
            if out:
                yield out
            while len(out) == CHUNK and not d.eof and not d.unconsumed_tail:
                out = self._inflate(d, b"")  # output still pending inside zlib
                if out:
                    yield out
            if d.eof:
                rest = d.unused_data
                self._d = None
                self._members += 1
            else:
                rest = d.unconsumed_tail

    def finish(self) -> None:
        if self._d is not None or not self._members:
            raise SourceError(f"{self.what}: gzip data is truncated")

    def _inflate(self, d: zlib._Decompress, data: bytes) -> bytes:
        try:
            return d.decompress(data, CHUNK)
        except zlib.error as e:
            raise SourceError(f"{self.what}: invalid gzip data ({e})") from None
