"""Streaming gzip for push sources: deterministic compression, and blobs compressed once into a
spool file. (Decompression is ``regload.compression.Gunzip``.)

By default layers are compressed by ISA-L's igzip (python-isal) at ``ISAL_LEVEL``, in blocks
of ``BLOCK`` bytes, each primed with the 32 KiB before it and ended by a sync flush (as pigz
does), so that blocks can be compressed at once on several cores (``map_blocks``) and the bytes
are the same however many. On a Debian rootfs layer one core does about 14x zlib at docker's
level 6, for a blob about 7 % larger (``bench/real_image.py`` prints the figures).
``--compression-level 1-9`` asks for zlib at that level instead, in one stream, byte for byte
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

from isal import isal_zlib

from ..digest import Tally
from ..errors import SourceError
from ..manifest import Descriptor
from ..streams import Chunk
from .files import read_range

ISAL_LEVEL = 2  # ISA-L's levels are 0-3; 2 compresses as well as zlib 1, as fast as ISA-L 1
DEFAULT_LEVEL: int | None = None  # None: ISA-L at ISAL_LEVEL; 1-9: zlib at that level
BLOCK = 1 << 20  # input bytes per independently compressed block
_WINDOW = 32 * 1024  # deflate's window: what a block may refer to in the one before it
# RFC 1952 section 2.3: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as Go).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

Job = tuple[bytes, bytes]  # (the 32 KiB before the block, the block)
# An ordered map over jobs that reads ahead a bounded number: ``map`` itself, or one running
# them on several cores (``regload.wiring.gevent_runner.threaded_map``).
BlockMap = Callable[[Callable[[Job], bytes], Iterator[Job]], Iterable[bytes]]


def check_level(level: int | None) -> int | None:
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9):
        raise SourceError(f"invalid gzip level {level!r}: expected 1 to 9")
    return level


def gzip_chunks(
    chunks: Iterable[Chunk], level: int | None = DEFAULT_LEVEL, map_blocks: BlockMap = map
) -> Iterator[bytes]:
    """Gzip-compress a stream, yielding pieces of any size: ISA-L in blocks when ``level`` is
    None (through ``map_blocks``), else zlib at ``level``.

    The output is a function of the input and level only: the gzip header carries no file name
    and mtime 0. (Another build of the library may still compress differently.)
    """
    level = check_level(level)
    if level is None:
        return _isal_gzip(chunks, map_blocks)
    return _zlib_gzip(chunks, zlib.compressobj(level, zlib.DEFLATED, 31))


def _zlib_gzip(chunks: Iterable[Chunk], z: zlib._Compress) -> Iterator[bytes]:
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


def _isal_gzip(chunks: Iterable[Chunk], map_blocks: BlockMap) -> Iterator[bytes]:
    crc = size = 0

    def jobs() -> Iterator[Job]:
        nonlocal crc, size
        before = b""
        for block in _blocks(chunks):
            crc = isal_zlib.crc32(block, crc)
            size += len(block)
            yield before, block
            before = block[-_WINDOW:]

    yield _GZIP_HEADER
    yield from map_blocks(_deflate_block, jobs())
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


def _blocks(chunks: Iterable[Chunk]) -> Iterator[bytes]:
    """The stream re-cut into ``BLOCK``-byte pieces (the last one shorter)."""
    pending = bytearray()
    for chunk in chunks:
        if not pending and len(chunk) == BLOCK:
            yield bytes(chunk)
            continue
        pending += chunk
        while len(pending) >= BLOCK:
            yield bytes(pending[:BLOCK])
            del pending[:BLOCK]
    if pending:
        yield bytes(pending)


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
        level: int | None = DEFAULT_LEVEL,
        tmpdir: str | None = None,
        what: str = "blob",
        map_blocks: BlockMap = map,
    ) -> None:
        self.media_type = media_type
        self.what = what
        self._content = content
        self._level = check_level(level)
        self._map_blocks = map_blocks
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
        tally = Tally()
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in gzip_chunks(self._content(), self._level, self._map_blocks):
                    tally.update(piece)
                    f.write(piece)
        except OSError as e:
            os.unlink(path)
            raise SourceError(f"{self.what}: cannot write spool file {path}: {e.strerror or e}") from None
        except BaseException:
            os.unlink(path)
            raise
        desc = Descriptor(self.media_type, tally.digest(), tally.size)
        if self._descriptor is not None and self._descriptor != desc:
            os.unlink(path)
            raise SourceError(f"{self.what}: content changed since it was first compressed")
        self._descriptor = desc
        return path
