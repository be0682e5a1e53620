"""Synthetic images: ``synthetic:layers=3,size=10MiB,seed=7``.

Each layer is an uncompressed tar holding one file ``regload/layer-<i>.bin`` of ``size``
pseudo-random bytes (``noise``), generated while it streams: nothing is held in memory or
written to disk. The same (seed, layer, size) always gives the same bytes; another seed gives
other bytes. Building an image costs nothing: a layer's digest is computed by its first full
pass (``descriptor()`` or the push's own read) and cached, and the config, which lists the
digests, is built on first use.

With ``gzip=R`` (R > 1) each layer is instead a gzip stream of about ``size`` bytes whose tar
compresses by R (``gzip_layer.GzipLayer``: shared members compressed once per process, digests
at no cost per push).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .. import mediatypes as mt
from .. import ustar
from ..digest import Digest, Tally
from ..errors import SourceError, UsageError
from ..streams import Chunk, checked
from ..units import parse_size
from .base import BlobSource, BytesBlob, SourceImage, StreamDigestedBlob
from .gzip_layer import GzipLayer, check_ratio
from .noise import noise

PREFIX = "synthetic"
MAX_LAYERS = 10_000
MTIME = 946684800  # 2000-01-01T00:00:00Z, fixed so the tar headers are reproducible
CREATED = "2000-01-01T00:00:00Z"


@dataclass(frozen=True, slots=True)
class SyntheticSpec:
    layers: int = 1
    size: int = 1 << 20
    seed: int = 0
    gzip: float | None = None  # None: uncompressed tars of noise; else the compression ratio

    def image(self, seed: int | None = None) -> SourceImage:
        """The image of this spec, or of the same shape with another ``seed``."""
        return synthetic_image(self.layers, self.size, self.seed if seed is None else seed, ratio=self.gzip)

    def __str__(self) -> str:
        text = f"{PREFIX}:layers={self.layers},size={self.size},seed={self.seed}"
        return text + (f",gzip={self.gzip:g}" if self.gzip is not None else "")


def parse_synthetic(spec: str) -> SyntheticSpec:
    """Parse ``synthetic[:key=value,…]`` with keys ``layers`` (1), ``size`` per layer (1MiB,
    units B, KB/KiB, MB/MiB, GB/GiB), ``seed`` (0) and ``gzip`` (none: uncompressed; a ratio
    from 1 to 50: gzip layers of ``size`` bytes compressed, compressing by that ratio)."""
    head, _, body = spec.partition(":")
    if head != PREFIX:
        raise SourceError(f"invalid synthetic spec {spec!r}: expected {PREFIX}:layers=N,size=S,seed=K")
    values: dict[str, int | float | None] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        if not eq:
            raise SourceError(f"invalid synthetic spec {spec!r}: {item!r} is not key=value")
        if key not in ("layers", "size", "seed", "gzip"):
            raise SourceError(f"invalid synthetic spec {spec!r}: unknown key {key!r} (known: layers, size, seed, gzip)")
        if key in values:
            raise SourceError(f"invalid synthetic spec {spec!r}: {key} given twice")
        if key == "gzip":
            values[key] = _ratio(value, spec)
        else:
            values[key] = _size(value, spec) if key == "size" else _integer(key, value, spec)
    result = SyntheticSpec(**values)  # type: ignore[arg-type]  # (each key's type is checked above)
    _check(result.layers, result.size)
    return result


def synthetic_image(layers: int = 1, size: int = 1 << 20, seed: int = 0, ratio: float | None = None) -> SourceImage:
    """An OCI image of ``layers`` layers of ``size`` pseudo-random bytes each; cheap to build.
    ``ratio``: gzip layers of ``size`` bytes compressing by it instead (None or 1: uncompressed)."""
    _check(layers, size)
    ratio = _gzip_ratio(ratio)
    return synthetic_image_of([size] * layers, seed, str(SyntheticSpec(layers, size, seed, ratio)), ratio=ratio)


def synthetic_image_of(
    sizes: Sequence[int], seed: int, description: str = "", ratio: float | None = None
) -> SourceImage:
    """An OCI image with one layer of pseudo-random bytes per entry of ``sizes``; with a
    ``ratio`` above 1, gzip layers of those compressed sizes whose tars compress by ``ratio``."""
    for size in sizes:
        _check(len(sizes), size)
    ratio = _gzip_ratio(ratio)
    blobs: list[SyntheticLayer] | list[GzipLayer]
    if ratio is None:
        blobs = [SyntheticLayer(seed, i, size) for i, size in enumerate(sizes, start=1)]
    else:
        blobs = [GzipLayer(seed, i, size, ratio) for i, size in enumerate(sizes, start=1)]
    config = LazyBytesBlob(mt.OCI_CONFIG, lambda: _config(blobs, seed))
    layer_list: list[BlobSource] = list(blobs)
    return SourceImage(mt.OCI_MANIFEST, config, layer_list, description=description or f"synthetic, seed {seed}")


class SyntheticLayer(StreamDigestedBlob):
    """One synthetic layer: a tar of one file of noise."""

    media_type = mt.OCI_LAYER_TAR

    def __init__(self, seed: int, index: int, size: int) -> None:
        self.seed = seed
        self.index = index
        self.content_size = size
        self._header, self._trailer = _tar_frame(f"regload/layer-{index}.bin", size)
        self.size = len(self._header) + size + len(self._trailer)
        self._digest: Digest | None = None

    def open(self) -> Iterator[Chunk]:
        if self._digest is not None:
            yield from self._chunks()
            return
        tally = Tally()
        yield from checked(self._chunks(), tally)
        self._digest = tally.digest()

    def _chunks(self) -> Iterator[bytes]:
        yield self._header
        yield from noise(b"regload-synthetic-v1\0%d\0%d" % (self.seed, self.index), self.content_size)
        yield self._trailer


class LazyBytesBlob(BytesBlob):
    """A ``BytesBlob`` whose bytes are built on first use."""

    def __init__(self, media_type: str, build: Callable[[], bytes]) -> None:  # no super(): data is lazy
        self.media_type = media_type
        self._build = build
        self._data: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self._build()
        return self._data

    @data.setter
    def data(self, value: bytes) -> None:
        self._data = value

    def __repr__(self) -> str:
        return f"LazyBytesBlob({self.media_type!r}, built={self._data is not None})"


def _config(layers: Sequence[SyntheticLayer | GzipLayer], seed: int) -> bytes:
    """A minimal valid OCI image config; uncompressed layers' digests are their diff_ids."""
    doc = {
        "architecture": "amd64",
        "config": {},
        "created": CREATED,
        "history": [
            {
                "created": CREATED,
                "created_by": f"regload synthetic layer {b.index}: {b.content_size} bytes"
                + (f" gzip, ratio {b.ratio:g}" if isinstance(b, GzipLayer) else "")
                + f", seed {seed}",
            }
            for b in layers
        ],
        "os": "linux",
        "rootfs": {"diff_ids": [str(_diff_id(b)) for b in layers], "type": "layers"},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _diff_id(layer: SyntheticLayer | GzipLayer) -> Digest:
    return layer.diff_id() if isinstance(layer, GzipLayer) else layer.descriptor().digest


def _gzip_ratio(ratio: float | None) -> float | None:
    """None for uncompressed layers (None or 1); else the ratio, checked (UsageError)."""
    if ratio is None:
        return None
    value = check_ratio(ratio)
    return None if value == 1.0 else value


def _tar_frame(name: str, size: int) -> tuple[bytes, bytes]:
    """The tar headers (a directory, then the file) and what follows the file's content."""
    head = ustar.header("regload/", directory=True, mode=0o755, mtime=MTIME)
    head += ustar.header(name, size=size, mode=0o644, mtime=MTIME)
    return head, ustar.padding(size) + ustar.END


def _check(layers: int, size: int) -> None:
    if not 1 <= layers <= MAX_LAYERS:
        raise SourceError(f"synthetic layers must be 1 to {MAX_LAYERS}, not {layers}")
    if size < 0:
        raise SourceError(f"synthetic size must not be negative, not {size}")


def _integer(key: str, value: str, spec: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise SourceError(f"invalid synthetic spec {spec!r}: {key}={value!r} is not an integer") from None


def _ratio(value: str, spec: str) -> float | None:
    if value.lower() in ("", "none", "off", "0"):
        return None
    try:
        return _gzip_ratio(float(value))
    except (ValueError, UsageError) as e:
        reason = str(e) if isinstance(e, UsageError) else f"{value!r} is not a number"
        raise SourceError(f"invalid synthetic spec {spec!r}: gzip={value}: {reason}") from None


def _size(value: str, spec: str) -> int:
    try:
        return parse_size(value, "size")
    except UsageError as e:
        raise SourceError(f"invalid synthetic spec {spec!r}: {e}") from None
