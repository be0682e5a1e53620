"""Reading layer blobs as uncompressed tar streams, and checking them (and the config) against digests."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..digest import Digest
from ..errors import DigestMismatch, ManifestError, ProtocolError
from ..manifest import Descriptor
from .base import PulledImage

CHUNK = 1 << 20

# Magic numbers: gzip (RFC 1952 section 2.3.1), zstd (RFC 8878 section 3.1.1), bzip2, xz. The media
# type is not trusted for this: registries and builders mislabel layers, so the bytes decide.
_GZIP = b"\x1f\x8b"
_OTHER_COMPRESSIONS = {b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


class HashingReader:
    """A read-only stream that hashes what passes through it (the diff_id of a layer)."""

    def __init__(self, raw: BinaryIO, what: str) -> None:
        self._raw = raw
        self._what = what
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except (OSError, EOFError, zlib.error) as e:
            # gzip.BadGzipFile is an OSError; a truncated stream is an EOFError.
            raise ProtocolError(f"{self._what}: corrupt compressed stream ({e})") from None
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end: tar readers stop at the end-of-archive marker, the digest does not."""
        while self.read(CHUNK):
            pass

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())


@contextmanager
def open_layer(path: Path, layer: Descriptor) -> Iterator[HashingReader]:
    """Open a layer blob as its uncompressed tar stream, hashed as it is read."""
    what = f"layer {layer.digest.short}"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the decompressor
    except FileNotFoundError:
        raise ProtocolError(f"{what}: blob is missing from the download directory") from None
    with f:
        head = f.peek(8)[:8]
        for magic, name in _OTHER_COMPRESSIONS.items():
            if head.startswith(magic):
                raise ProtocolError(f"{what}: {name} layers are not supported (media type {layer.media_type})")
        if head.startswith(_GZIP):
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                yield HashingReader(gz, what)  # type: ignore[arg-type]
        else:
            yield HashingReader(f, what)


def check_diff_id(reader: HashingReader, layer: Descriptor, expected: Digest | None) -> None:
    """Raise ``DigestMismatch`` when the uncompressed stream does not match the config's diff_id."""
    if expected is None:
        return
    actual = reader.digest() if expected.algorithm == "sha256" else None
    if actual != expected:
        got = actual.short if actual else f"(a {expected.algorithm} diff_id is not supported)"
        raise DigestMismatch(
            f"layer {layer.digest.short}: uncompressed content is {got}, the config's diff_id is {expected.short}"
        )


def config_diff_ids(config: bytes, layer_count: int, required: bool) -> list[Digest | None]:
    """The config's ``rootfs.diff_ids``, one per layer. When absent and not ``required``, no checks."""
    try:
        doc = json.loads(config)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ManifestError("image config is not valid JSON") from None
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if ids is None and not required:
        return [None] * layer_count
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ManifestError("image config has no valid rootfs.diff_ids list")
    if len(ids) != layer_count:
        raise ManifestError(f"image config lists {len(ids)} diff_ids for {layer_count} layers")
    return [Digest.parse(i) for i in ids]


def check_config(image: PulledImage) -> Digest:
    """The config's digest, after checking the bytes against the manifest's config descriptor."""
    want = image.config_descriptor.digest
    actual = Digest.of(image.config, want.algorithm)
    if actual != want:
        raise DigestMismatch(f"config {want.short}: content has digest {actual.short}")
    return actual
