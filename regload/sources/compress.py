"""Streaming gzip for push sources: deterministic compression, and blobs compressed while they
are sent or once into a spool file. (Decompression is ``regload.compression.Gunzip``.)

By default layers are compressed by ISA-L's igzip (python-isal) at ``ISAL_LEVEL``, in blocks
of ``BLOCK`` bytes, each primed with the 32 KiB before it and ended by a sync flush (as pigz
does), so that blocks can be compressed at once on several cores (``Threads.map``) and the
bytes are the same however many. A blob's hashes (its diff_id check, its digest) and a spool's
writes run beside that, one at a time, in order (``Threads.pipe``): hashing on the thread that
feeds the compressors would leave them waiting. On a Debian rootfs layer one core does about
14x zlib at docker's level 6, for a blob about 7 % larger (``bench/real_image.py`` prints the
figures). ``--compression-level 1-9`` asks for zlib at that level instead, in one stream, byte for byte
what earlier versions pushed.

Nothing here holds a whole blob in memory.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

import isal
from isal import isal_zlib

from ..digest import Tally
from ..errors import SourceError
from ..manifest import Descriptor
from ..streams import Chunk, StreamCheck, checked, regrouped
from .base import StreamDigestedBlob
from .digest_cache import DigestCache
from .files import read_range

T = TypeVar("T")
R = TypeVar("R")

ISAL_LEVEL = 2  # ISA-L's levels are 0-3; 2 compresses as well as zlib 1, as fast as ISA-L 1
DEFAULT_LEVEL: int | None = None  # None: ISA-L at ISAL_LEVEL; 1-9: zlib at that level
BLOCK = 1 << 20  # input bytes per independently compressed block
_WINDOW = 32 * 1024  # deflate's window: what a block may refer to in the one before it
# RFC 1952 section 2.3: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as Go).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

Job = tuple[bytes, bytes]  # (the 32 KiB before the block, the block)


class Threads(Protocol):
    """Where the heavy steps run: ``INLINE`` (the caller itself), or native threads
    (``regload.wiring.gevent_runner.NativeThreads``). Both maps read a bounded number ahead."""

    def map(self, fn: Callable[[T], R], items: Iterator[T], /) -> Iterable[R]:
        """``fn`` over ``items``, several at once, results in order."""
        ...

    def pipe(self, fn: Callable[[T], R], items: Iterator[T], /) -> Iterable[R]:
        """``fn`` over ``items`` one at a time and in order, beside the caller."""
        ...


class _Inline:
    def map(self, fn: Callable[[T], R], items: Iterator[T], /) -> Iterable[R]:
        return map(fn, items)

    pipe = map


INLINE: Threads = _Inline()


def check_level(level: int | None) -> int | None:
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9):
        raise SourceError(f"invalid gzip level {level!r}: expected 1 to 9")
    return level


def gzip_chunks(
    chunks: Iterable[Chunk], level: int | None = DEFAULT_LEVEL, threads: Threads = INLINE
) -> Iterator[bytes]:
    """Gzip-compress a stream, yielding pieces of any size: ISA-L in blocks when ``level`` is
    None (through ``threads.map``), else zlib at ``level``.

    The output is a function of the input and level only: the gzip header carries no file name
    and mtime 0. (Another build of the library may still compress differently.)
    """
    level = check_level(level)
    if level is None:
        return _isal_gzip(chunks, threads)
    return _zlib_gzip(chunks, zlib.compressobj(level, zlib.DEFLATED, 31))


def _zlib_gzip(chunks: Iterable[Chunk], z: zlib._Compress) -> Iterator[bytes]:
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


def _isal_gzip(chunks: Iterable[Chunk], threads: Threads) -> Iterator[bytes]:
    crc = size = 0

    def jobs() -> Iterator[Job]:
        nonlocal crc, size
        before = b""
        for block in regrouped(chunks, BLOCK):
            crc = isal_zlib.crc32(block, crc)
            size += len(block)
            yield before, block
            before = block[-_WINDOW:]

    yield _GZIP_HEADER
    yield from threads.map(_deflate_block, jobs())
    yield b"\x03\x00"  # an empty final block (BFINAL set): the deflate stream ends
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _deflate_block(job: Job) -> bytes:
    """One block as raw deflate that ends on a byte boundary (sync flush), not the last block.
    ISA-L releases the GIL while it compresses: blocks in threads use several cores."""
    before, block = job
    if before:
        z = isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, -15, zdict=before)
    else:  # the first block: nothing before it
        z = isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, -15)
    return z.compress(block) + z.flush(isal_zlib.Z_SYNC_FLUSH)


def encoder_name(level: int | None) -> str:
    """The gzip encoder and its build: what a cached digest of its output depends on."""
    if check_level(level) is None:
        return f"isal {isal.__version__} level {ISAL_LEVEL} block {BLOCK}"
    return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {level}"


class SpooledBlob(StreamDigestedBlob):
    """A blob made by gzip-compressing ``content()``: compressed while it streams, or once into
    a temporary file when its digest is wanted before any upload.

    Every complete pass runs ``checks()`` over the content (a diff_id) and records digest and
    size, also in ``cache`` under ``cache_key`` (with the encoder's name), so that a later run
    can ask the registry for the blob before compressing it (``likely_descriptor()``).
    ``descriptor()`` spools: ``open()`` then streams the spool file, so each push of the blob
    costs a file read instead of a compression. Without a spool ``open()`` compresses again,
    to the same bytes. ``content()`` must yield pieces of its own (no reused buffer): they
    are hashed beside the compression. ``close()`` deletes the spool.
    """

    def __init__(
        self,
        media_type: str,
        content: Callable[[], Iterable[Chunk]],
        *,
        checks: Callable[[], list[StreamCheck]] | None = None,
        level: int | None = DEFAULT_LEVEL,
        tmpdir: str | None = None,
        what: str = "blob",
        threads: Threads = INLINE,
        cache: DigestCache | None = None,
        cache_key: str = "",
    ) -> None:
        self.media_type = media_type
        self.what = what
        self._content = content
        self._checks = checks
        self._level = check_level(level)
        self._threads = threads
        self._tmpdir = tmpdir
        self._cache = cache if cache_key else None
        self._cache_key = f"{cache_key} {encoder_name(level)}"
        self._path: str | None = None
        self._descriptor: Descriptor | None = None
        self._lock = threading.Lock()

    def known_descriptor(self) -> Descriptor | None:
        return self._descriptor

    def likely_descriptor(self) -> Descriptor | None:
        """The descriptor, or what an earlier run's pass over the same content found (unchecked)."""
        if self._descriptor is None and self._cache is not None:
            hit = self._cache.get(self._cache_key)
            return Descriptor(self.media_type, hit[0], hit[1]) if hit else None
        return self._descriptor

    def descriptor(self) -> Descriptor:
        self._spooled()
        assert self._descriptor is not None
        return self._descriptor

    def open(self) -> Iterator[Chunk]:
        path = self._path
        if path is not None:
            assert self._descriptor is not None
            return read_range(path, 0, self._descriptor.size, self.what)
        return self._compressed()

    def close(self) -> None:
        with self._lock:
            path, self._path = self._path, None
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def _compressed(self) -> Iterator[bytes]:
        """One pass: the gzip stream, hashed beside it; recorded once it ended well."""
        tally = Tally()
        threads = self._threads
        content = self._content()
        if self._checks:
            content = checked(content, *self._checks(), beside=threads.pipe)

        def hashed(piece: bytes) -> bytes:
            tally.update(piece)
            return piece

        yield from threads.pipe(hashed, iter(gzip_chunks(content, self._level, threads)))
        self._record(Descriptor(self.media_type, tally.digest(), tally.size))

    def _record(self, desc: Descriptor) -> None:
        if self._descriptor is not None and self._descriptor != desc:
            raise SourceError(f"{self.what}: content changed since it was first compressed")
        self._descriptor = desc
        if self._cache is not None:
            self._cache.put(self._cache_key, desc.digest, desc.size)

    def _spooled(self) -> str:
        # The lock is never held while compressing: the spool waits for native threads, and in a
        # process gevent has not patched (the CLI) a thread lock held across that wait would stop
        # every greenlet of the thread. Two first calls at once each compress; one file is kept.
        path = self._path
        if path is not None:
            return path
        fresh = self._spool()
        with self._lock:
            if self._path is None:
                self._path = fresh
                return fresh
            kept = self._path
        os.unlink(fresh)
        return kept

    def _spool(self) -> str:
        try:
            fd, path = tempfile.mkstemp(prefix="regload-", suffix=".tar.gz", dir=self._tmpdir)
        except OSError as e:
            raise SourceError(f"{self.what}: cannot create a spool file: {e.strerror or e}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                for _ in self._threads.pipe(f.write, self._compressed()):
                    pass
        except OSError as e:
            os.unlink(path)
            raise SourceError(f"{self.what}: cannot write spool file {path}: {e.strerror or e}") from None
        except BaseException:
            os.unlink(path)
            raise
        return path
