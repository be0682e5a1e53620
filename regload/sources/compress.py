"""Streaming gzip for push sources: deterministic compression, and blobs compressed once into a
spool file. (Decompression is ``regload.compression.Gunzip``.)

By default layers are compressed by ISA-L's igzip (python-isal) at ``ISAL_LEVEL``: on a Debian
rootfs layer it is about 15x faster than zlib at docker's level 6, for blobs about 10 % larger
(``bench/real_image.py`` prints the figures). ``--compression-level 1-9`` asks for zlib at that
level instead, byte for byte what earlier versions pushed.

Nothing here holds a whole blob in memory.
"""

from __future__ import annotations

import contextlib
import os
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


def check_level(level: int | None) -> int | None:
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 9):
        raise SourceError(f"invalid gzip level {level!r}: expected 1 to 9")
    return level


def gzip_chunks(chunks: Iterable[Chunk], level: int | None = DEFAULT_LEVEL) -> Iterator[bytes]:
    """Gzip-compress a stream, yielding pieces of any size: ISA-L when ``level`` is None, else
    zlib at ``level``.

    The output is a function of the input and level only: the gzip header (wbits=31) carries no
    file name and mtime 0. (Another build of the library may still compress differently.)
    """
    level = check_level(level)
    z = (
        isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, 31)
        if level is None
        else zlib.compressobj(level, zlib.DEFLATED, 31)
    )
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
        level: int | None = DEFAULT_LEVEL,
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
        tally = Tally()
        try:
            with os.fdopen(fd, "wb") as f:
                for piece in gzip_chunks(self._content(), self._level):
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
