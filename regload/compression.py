"""Compression formats: recognising them by their first bytes, and bounded gzip decoding."""

from __future__ import annotations

from collections.abc import Callable, Iterator

# ISA-L's inflate (python-isal), a drop-in for zlib's decompressobj at about twice its speed.
from isal import isal_zlib

from .streams import CHUNK, Chunk, Readable

# Magic numbers: gzip (RFC 1952 section 2.3.1), zstd (RFC 8878 section 3.1.1), bzip2, xz. A media
# type is not trusted for this: registries and builders mislabel layers, so the bytes decide.
GZIP_MAGIC = b"\x1f\x8b"
MAGIC = {GZIP_MAGIC: "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
SNIFF_SIZE = 6  # bytes that hold any of them


def sniff(head: bytes) -> str | None:
    """The compression whose magic number starts ``head`` (``gzip``, ``zstd`` …), or None."""
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    return None


Fail = Callable[[str], Exception]  # makes the error to raise from a reason ("gzip data is truncated")


class Gunzip:
    """Incremental gzip decompression, at most ``CHUNK`` bytes of output at a time (so a small
    compressed chunk of zeros cannot expand to gigabytes in memory). Accepts several gzip
    members in a row (pigz, concatenated files) and zero padding after them (as ``gzip.GzipFile``).
    Corrupt or truncated data raises ``fail(reason)``."""

    def __init__(self, fail: Fail) -> None:
        self._fail = fail
        self._d: isal_zlib.Decompress | None = None
        self._members = 0

    def feed(self, data: Chunk) -> Iterator[bytes]:
        rest = bytes(data)
        while rest:
            if self._d is None:
                if self._members:
                    rest = rest.lstrip(b"\0")
                    if not rest:
                        return
                # ISA-L reports a wrong header only once it has all of it (10 bytes): look at
                # the magic number at once, as zlib does.
                if len(rest) >= 2 and not rest.startswith(GZIP_MAGIC):
                    raise self._fail("invalid gzip data (not a gzip member: wrong magic number)")
                self._d = isal_zlib.decompressobj(31)
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
            raise self._fail("gzip data is truncated")

    def _inflate(self, d: isal_zlib.Decompress, data: bytes) -> bytes:
        try:
            return d.decompress(data, CHUNK)
        except isal_zlib.error as e:  # type: ignore[misc]  # (its stub does not say it is an Exception)
            raise self._fail(f"invalid gzip data ({e})") from None


class GunzipReader:
    """The decompressed content of the gzip stream ``raw``, as a read-only file."""

    def __init__(self, raw: Readable, fail: Fail) -> None:
        self._pieces = self._inflate(raw, Gunzip(fail))
        self._piece = b""
        self._at = 0

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            rest, self._piece, self._at = self._piece[self._at :], b"", 0
            return rest + b"".join(self._pieces)
        while self._at >= len(self._piece):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._piece, self._at = piece, 0
        if self._at == 0 and n >= len(self._piece):
            self._at = len(self._piece)
            return self._piece  # the common case: no copy
        out = self._piece[self._at : self._at + n]
        self._at += len(out)
        return out

    @staticmethod
    def _inflate(raw: Readable, gunzip: Gunzip) -> Iterator[bytes]:
        while data := raw.read(CHUNK):
            yield from gunzip.feed(data)
        gunzip.finish()
