"""Synthetic gzip layers that compress to a chosen ratio, at no compression cost per push.

A gzip file may be several members in a row (RFC 1952 section 2.2), and every reader of layers
(Go's ``compress/gzip``, zlib, ``gzip.decompress``, regload's ``Gunzip``) reads them as one
stream. So a layer is made of members compressed once per process and reused by every layer,
plus one small member that is compressed per layer and makes its digests unique::

    gzip:  [dirs] ([hdr k] [CONTENT])*K  [hdr f] [FILL j]*  [UNIQUE]
    tar:   regload/ regload/c/  regload/c/000000 … (CHUNK bytes each)  regload/f  regload/layer-….bin  END

``CONTENT`` is ``CHUNK`` bytes of compressible content, compressed once per ratio; ``hdr k`` is
the 512-byte tar header of the k-th chunk entry (its own small member, compressed when sent);
``FILL j`` are members of ``GRANULE << j`` bytes of the same content (each compressed once per
ratio), picked to bring the blob to the target size; ``UNIQUE`` is the last entry's header,
``UNIQUE_BYTES`` bytes drawn from (seed, index), the tar padding and the end-of-archive.

The issue asked for the unique member at the head. It is at the tail on purpose: sha256 is a
running state, so with the shared part first, the states after it (of the blob and of the tar
within) are computed once per process and ``.copy()``'d, and a layer's ``descriptor()`` and
``diff_id()`` hash only its last member (~0.1 KiB compressed, 2 KiB of tar). With the unique bytes first,
every layer would hash all of its bytes twice. States are cached after each chunk entry (a few
hundred bytes each, never the members' bytes), and per target size after the filler.

The content: each ``GRANULE`` of bytes starts with a share of pseudo-random bytes (``noise``,
a fixed key, so every process builds the same) and ends with zeros; the share is calibrated
once per ratio so that zlib level 6 compresses it by the ratio. The bytes are the same for a
given zlib build (another zlib, e.g. zlib-ng, may give other, equally valid members).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import mediatypes as mt
from .. import ustar
from ..digest import Digest
from ..errors import UsageError
from ..manifest import Descriptor
from .base import CHUNK
from .noise import noise

MTIME = 946684800  # 2000-01-01T00:00:00Z, as synthetic.SyntheticLayer
LEVEL = 6  # docker's (Go's default) level
GRANULE = ustar.BLOCK  # noise then zeros, in every GRANULE of content; also the smallest filler member
MIN_RATIO, MAX_RATIO = 1.0, 50.0
UNIQUE_BYTES = 32
_FILL_SIZES = tuple(GRANULE << j for j in range((CHUNK // GRANULE).bit_length()))  # 512 B … CHUNK
_NOISE_KEY = b"regload-gzip-content-v1"
_SAMPLE = 64 << 10  # content compressed to calibrate the noise share
_YIELD_EVERY = 16  # chunk entries hashed between two yields to other greenlets (~20 ms)
_PLANS_MAX = 256  # target sizes whose filler state is kept, per ratio
# RFC 1952 section 2.3: magic, deflate, no flags, mtime 0, no extra flags, OS unknown (as Go).
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def check_ratio(ratio: float) -> float:
    """``ratio`` as a float, or ``UsageError`` when it is not in [1, 50]."""
    value = float(ratio)
    if not (MIN_RATIO <= value <= MAX_RATIO):  # also refuses NaN
        raise UsageError(f"gzip ratio must be from {MIN_RATIO:g} to {MAX_RATIO:g}, not {ratio!r}")
    return value


def member(data: bytes | memoryview) -> bytes:
    """One gzip member of ``data`` (zlib level 6), with a fixed header (no name, mtime 0)."""
    c = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return _GZIP_HEADER + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def content(share: float, size: int) -> bytes:
    """``size`` bytes (a multiple of GRANULE) whose every GRANULE holds about ``share`` × GRANULE
    bytes of noise, then zeros. The counts are spread (n or n + 1) so that any share is met."""
    pool = b"".join(noise(_NOISE_KEY, size))
    out = bytearray(size)
    per = share * GRANULE
    for g in range(size // GRANULE):
        lo = g * GRANULE
        n = int((g + 1) * per) - int(g * per)
        out[lo : lo + n] = pool[lo : lo + n]
    return bytes(out)


def calibrate(ratio: float) -> float:
    """The noise share whose CHUNK of content zlib compresses by ``ratio``: bisection on a
    sample (the compressed size grows with the share), then secant steps on a whole CHUNK
    (deflate's blocks make the sample's ratio drift from the chunk's at high ratios)."""
    target = _SAMPLE / ratio
    lo, hi = 0.0, 1.0
    share = min(1.0, 1.0 / ratio)
    for _ in range(24):
        size = len(member(content(share, _SAMPLE)))
        if abs(size - target) <= target * 0.001:
            break
        if size < target:
            lo = share
        else:
            hi = share
        share = (lo + hi) / 2
    target = CHUNK / ratio
    prev: tuple[float, int] | None = None
    for _ in range(4):
        size = len(member(content(share, CHUNK)))
        if abs(size - target) <= target * 0.005 or share >= 1.0:
            break
        if prev is None or prev[1] == size:
            guess = share * target / size
        else:
            guess = share + (target - size) * (share - prev[0]) / (size - prev[1])
        prev = (share, size)
        share = min(1.0, max(0.0, guess))
    return share


def _chunk_header(k: int) -> bytes:
    return ustar.header(f"regload/c/{k:06d}", size=CHUNK, mode=0o644, mtime=MTIME)


@dataclass(frozen=True, slots=True)
class _State:
    """sha256 states and sizes after a prefix, of the gzip stream and of the tar inside it.
    Never updated: users ``copy()`` them."""

    gz: Any  # hashlib sha256
    tar: Any
    gz_size: int
    tar_size: int

    def extended(self, gz: bytes | memoryview, tar: bytes | memoryview) -> _State:
        g, t = self.gz.copy(), self.tar.copy()
        g.update(gz)
        t.update(tar)
        return _State(g, t, self.gz_size + len(gz), self.tar_size + len(tar))


@dataclass(frozen=True, slots=True)
class _Plan:
    """A target size's shared part: chunk entries, then the filler entry, and the states after it."""

    chunks: int
    fill_header: bytes  # its gzip member (empty when there is no filler)
    fills: tuple[int, ...]  # indexes into _FILL_SIZES
    state: _State


class Profile:
    """Everything shared by the layers of one ratio in this process."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.share = calibrate(ratio)
        self.raw = content(self.share, CHUNK)
        self.content = member(self.raw)
        dirs_raw = ustar.header("regload/", directory=True, mode=0o755, mtime=MTIME)
        dirs_raw += ustar.header("regload/c/", directory=True, mode=0o755, mtime=MTIME)
        self.dirs = member(dirs_raw)
        start = _State(hashlib.sha256(), hashlib.sha256(), 0, 0)
        self._states = [start.extended(self.dirs, dirs_raw)]  # after the dirs and k chunk entries
        self._fills: dict[int, bytes] = {}
        self._plans: OrderedDict[int, _Plan] = OrderedDict()
        self._lock = threading.Lock()
        # What a unique member weighs, to aim the filler (the real one differs by a few bytes).
        self.unique_estimate = len(unique_member(0, 0)[0])

    def fill(self, j: int) -> bytes:
        found = self._fills.get(j)
        if found is None:
            size = _FILL_SIZES[j]
            found = self.content if size == CHUNK else member(memoryview(self.raw)[:size])
            self._fills[j] = found
        return found

    def state(self, k: int) -> _State:
        """The states after the dirs and ``k`` chunk entries (computed once, in order)."""
        states = self._states
        while len(states) <= k:
            n = len(states) - 1
            header = _chunk_header(n)
            s = states[-1].extended(member(header), header)
            g, t = s.gz, s.tar  # the shared content: hashed in place, no copy of the state
            g.update(self.content)
            t.update(self.raw)
            states.append(_State(g, t, s.gz_size + len(self.content), s.tar_size + CHUNK))
            if n % _YIELD_EVERY == _YIELD_EVERY - 1:
                # The first layer of a new largest size hashes its whole prefix (~1 s per GiB):
                # under gevent's monkey-patching (Locust) this lets the other users run meanwhile;
                # unpatched, it is a no-op system call. The core cannot import gevent itself.
                time.sleep(0)
        return states[k]

    def plan(self, target: int) -> _Plan:
        """The shared part of a layer of about ``target`` bytes (LRU-cached per target)."""
        with self._lock:
            found = self._plans.get(target)
            if found is not None:
                self._plans.move_to_end(target)
                return found
            found = self._make_plan(target)
            self._plans[target] = found
            if len(self._plans) > _PLANS_MAX:
                self._plans.popitem(last=False)
            return found

    def _make_plan(self, target: int) -> _Plan:
        budget = target - self.unique_estimate
        k = 0
        while self.state(k + 1).gz_size <= budget:
            k += 1
        base = self.state(k)
        left = budget - base.gz_size
        fills: list[int] = []
        fill_header = member(ustar.header("regload/f", size=0, mode=0o644, mtime=MTIME))  # to estimate
        left -= len(fill_header)
        for j in reversed(range(len(_FILL_SIZES))):
            while len(self.fill(j)) <= left:
                fills.append(j)
                left -= len(self.fill(j))
        if not fills:
            return _Plan(k, b"", (), base)
        raw_size = sum(_FILL_SIZES[j] for j in fills)
        header = ustar.header("regload/f", size=raw_size, mode=0o644, mtime=MTIME)
        fill_header = member(header)
        state = base.extended(fill_header, header)
        g, t = state.gz, state.tar
        for j in fills:
            g.update(self.fill(j))
            t.update(memoryview(self.raw)[: _FILL_SIZES[j]])
        size = sum(len(self.fill(j)) for j in fills)
        return _Plan(k, fill_header, tuple(fills), _State(g, t, state.gz_size + size, state.tar_size + raw_size))


_profiles: dict[float, Profile] = {}
_profiles_lock = threading.Lock()


def profile(ratio: float) -> Profile:
    """The process's shared profile of ``ratio`` (built on first use: ~0.1 s of zlib)."""
    ratio = check_ratio(ratio)
    with _profiles_lock:
        found = _profiles.get(ratio)
        if found is None:
            found = _profiles[ratio] = Profile(ratio)
        return found


def unique_member(seed: int, index: int) -> tuple[bytes, bytes]:
    """The last entry of a layer, as (gzip member, tar bytes): its header, UNIQUE_BYTES drawn
    from (seed, index), padding and the end-of-archive."""
    data = hashlib.shake_128(b"regload-gzip-layer-v1\0%d\0%d" % (seed, index)).digest(UNIQUE_BYTES)
    name = f"regload/layer-{index}-{seed & 0xFFFFFFFFFFFFFFFF:016x}.bin"
    raw = ustar.header(name, size=len(data), mode=0o644, mtime=MTIME) + data + ustar.padding(len(data)) + ustar.END
    return member(raw), raw


@dataclass(frozen=True, slots=True)
class _Built:
    descriptor: Descriptor
    diff_id: Digest
    tar_size: int
    plan: _Plan
    last: bytes  # the unique member


class GzipLayer:
    """One synthetic gzip layer of about ``target`` bytes (the compressed size, as studies
    report it) whose tar compresses by ``ratio``. The digest, size and diff_id are computed on
    first use from the shared states (O(last member)); ``open()`` yields views of shared
    members. A layer cannot be smaller than its fixed frame (~0.3 KiB)."""

    media_type = mt.OCI_LAYER_GZIP

    def __init__(self, seed: int, index: int, target: int, ratio: float) -> None:
        if target < 0:
            raise UsageError(f"synthetic size must not be negative, not {target}")
        self.seed = seed
        self.index = index
        self.content_size = target
        self.ratio = check_ratio(ratio)
        self._done: _Built | None = None

    def _build(self) -> _Built:
        if self._done is None:
            plan = profile(self.ratio).plan(self.content_size)
            gz_member, raw = unique_member(self.seed, self.index)
            final = plan.state.extended(gz_member, raw)
            desc = Descriptor(self.media_type, Digest("sha256", final.gz.hexdigest()), final.gz_size)
            self._done = _Built(desc, Digest("sha256", final.tar.hexdigest()), final.tar_size, plan, gz_member)
        return self._done

    @property
    def size(self) -> int:
        return self._build().descriptor.size

    @property
    def tar_size(self) -> int:
        """Size of the uncompressed tar."""
        return self._build().tar_size

    @property
    def achieved_ratio(self) -> float:
        """Uncompressed tar size over blob size."""
        return self.tar_size / self.size

    def descriptor(self) -> Descriptor:
        return self._build().descriptor

    def known_descriptor(self) -> Descriptor | None:
        return self._build().descriptor  # costs a few hundred bytes of hashing, not a pass

    def diff_id(self) -> Digest:
        """sha256 of the uncompressed tar (the config's ``rootfs.diff_ids`` entry)."""
        return self._build().diff_id

    def open(self) -> Iterator[bytes | memoryview]:
        built = self._build()
        plan = built.plan
        p = profile(self.ratio)
        yield memoryview(p.dirs)
        for k in range(plan.chunks):
            yield member(_chunk_header(k))  # ~9 µs per MiB of tar: not worth a cache per k
            yield from _views(p.content)
        if plan.fills:
            yield memoryview(plan.fill_header)
            for j in plan.fills:
                yield from _views(p.fill(j))
        yield memoryview(built.last)

    def raw(self) -> Iterator[bytes | memoryview]:
        """The uncompressed tar, as ``gzip.decompress`` of the blob gives it (tests, benches)."""
        plan = self._build().plan
        p = profile(self.ratio)
        yield ustar.header("regload/", directory=True, mode=0o755, mtime=MTIME)
        yield ustar.header("regload/c/", directory=True, mode=0o755, mtime=MTIME)
        for k in range(plan.chunks):
            yield _chunk_header(k)
            yield memoryview(p.raw)
        if plan.fills:
            size = sum(_FILL_SIZES[j] for j in plan.fills)
            yield ustar.header("regload/f", size=size, mode=0o644, mtime=MTIME)
            for j in plan.fills:
                yield memoryview(p.raw)[: _FILL_SIZES[j]]
        yield unique_member(self.seed, self.index)[1]

    def __repr__(self) -> str:
        return f"GzipLayer(seed={self.seed}, index={self.index}, target={self.content_size}, ratio={self.ratio:g})"


def _views(data: bytes) -> list[memoryview]:
    """``data`` as views of at most CHUNK bytes (a member of barely compressible content may be
    a little longer than CHUNK)."""
    view = memoryview(data)
    return [view[i : i + CHUNK] for i in range(0, len(view), CHUNK)] or [view]
