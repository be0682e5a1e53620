"""Reading layer blobs as uncompressed tar streams, and checking them (and the config) against digests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..compression import SNIFF_SIZE, GunzipReader, sniff
from ..digest import Digest
from ..errors import DigestMismatch, ManifestError, ProtocolError
from ..manifest import Descriptor
from ..streams import TallyReader
from .base import PulledImage


@contextmanager
def open_layer(path: Path, layer: Descriptor) -> Iterator[TallyReader]:
    """Open a layer blob as its uncompressed tar stream, hashed (sha256) as it is read. The bytes
    decide whether it is gzip, not the media type: registries and builders mislabel layers."""
    what = f"layer {layer.digest.short}"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the decompressor
    except FileNotFoundError:
        raise ProtocolError(f"{what}: blob is missing from the download directory") from None
    with f:
        kind = sniff(f.peek(SNIFF_SIZE)[:SNIFF_SIZE])
        if kind == "gzip":

            def corrupt(reason: str) -> ProtocolError:
                return ProtocolError(f"{what}: corrupt compressed stream ({reason})")

            yield TallyReader(GunzipReader(f, corrupt))
        elif kind is None:
            yield TallyReader(f)
        else:
            raise ProtocolError(f"{what}: {kind} layers are not supported (media type {layer.media_type})")


def check_diff_id(reader: TallyReader, layer: Descriptor, expected: Digest | None) -> None:
    """Raise ``DigestMismatch`` when the uncompressed stream does not match the config's diff_id."""
    if expected is None:
        return
    actual = reader.tally.digest() if expected.algorithm == "sha256" else None
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
