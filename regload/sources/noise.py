"""Deterministic pseudo-random bytes, generated while streaming.

The stream for a key is defined by SHAKE-128 (FIPS 202), so it is the same in every process,
on every machine and in every Python version. SHAKE alone runs at ~300-500 MB/s here; to go
about twice as fast, only one pool of ``CHUNK + SPREAD`` bytes is drawn from it per stream:
chunk 0 is the start of the pool, and each later chunk is a window of the pool at a
per-chunk offset under a per-chunk byte permutation (``bytes.translate``), both also drawn
from SHAKE. The content is incompressible and distinct per key and per chunk; it is meant
for load, not for cryptography.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from .base import CHUNK

SPREAD = 1 << 16  # range of the per-chunk window offset


def noise(key: bytes, size: int) -> Iterator[bytes]:
    """``size`` pseudo-random bytes determined by ``key``, in pieces of at most ``CHUNK``."""
    if size <= 0:
        return
    pool = hashlib.shake_128(b"pool\0" + key).digest(min(size, CHUNK) + SPREAD)
    yield pool[: min(size, CHUNK)]
    left = size - CHUNK
    j = 1
    while left > 0:
        n = min(left, CHUNK)
        params = hashlib.shake_128(b"chunk\0%d\0" % j + key).digest(4 + 512)
        offset = int.from_bytes(params[:4], "little") % SPREAD
        # a permutation of the 256 byte values: sort them by a 16-bit random key each
        keys = [params[4 + 2 * b : 6 + 2 * b] for b in range(256)]
        table = bytes(sorted(range(256), key=keys.__getitem__))
        yield pool[offset : offset + n].translate(table)
        left -= n
        j += 1
