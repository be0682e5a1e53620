"""Push source for an OCI image layout directory (image-spec ``image-layout.md``).

Blobs are pushed unchanged under the layout's exact manifest bytes, so every descriptor is known
without a pass. The manifest and config are verified when read; layer files are checked for size
up front and for digest while the push streams them.
"""

from __future__ import annotations

import json
import os

from ..blobstore import BlobStore
from ..digest import Digest
from ..errors import ManifestError, SourceError
from ..manifest import (
    DEFAULT_PLATFORM,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageManifest,
    Index,
    Manifest,
    Platform,
    parse_manifest,
)
from ..mediatypes import OCI_INDEX
from .base import BlobSource, BytesBlob, SourceImage
from .files import FileBlob
from .pathref import split_path_ref

REF_NAME = "org.opencontainers.image.ref.name"
MAX_CONFIG = 64 << 20
_MAX_NESTING = 4  # an index of indexes of … manifests


def parse_layout_arg(arg: str) -> tuple[str, str | None]:
    """``DIR`` or ``DIR:REF`` → (directory, ref or None).

    The whole argument is the directory when it is one; otherwise the longest prefix before a
    ``:`` that is an existing directory, the rest being the ref (``layout:alpine:3.19`` →
    ``("layout", "alpine:3.19")``). See ``split_path_ref``.
    """
    return split_path_ref(arg, os.path.isdir)


def open_oci_layout(path: str, ref: str | None = None, platform: Platform | None = None) -> SourceImage:
    """Open the image named ``ref`` (its ``org.opencontainers.image.ref.name``) in the layout at
    ``path``, or its only image; from an index, the manifest for ``platform`` (linux/amd64)."""
    wanted = platform or DEFAULT_PLATFORM
    layout = _Layout(path)
    desc = _pick(layout.index(), ref, wanted, path)
    for _ in range(_MAX_NESTING):
        raw = layout.read(desc, "manifest", MAX_MANIFEST_BYTES)
        manifest = _parse(raw, desc, path)
        if isinstance(manifest, ImageManifest):
            break
        if not isinstance(manifest, Index):
            raise SourceError(f"{path}: manifest {desc.digest.short} is schema 1, which cannot be pushed")
        desc = _select(manifest, wanted, path)
    else:
        raise SourceError(f"{path}: indexes nested more than {_MAX_NESTING} deep")
    config = BytesBlob(manifest.config.media_type, layout.read(manifest.config, "config", MAX_CONFIG))
    n = len(manifest.layers)
    layers: list[BlobSource] = [layout.blob(d, f"layer {i + 1} of {n}") for i, d in enumerate(manifest.layers)]
    name = f" ({ref})" if ref else ""
    return SourceImage(manifest.media_type, config, layers, manifest=raw, description=f"OCI layout {path}{name}")


class _Layout:
    """Files of one layout directory."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._blobs = BlobStore(os.path.join(root, "blobs"))
        if not os.path.isdir(root):
            raise SourceError(f"no such directory: {root}")
        try:
            with open(os.path.join(root, "oci-layout"), "rb") as f:
                marker = json.loads(f.read(4096))
        except FileNotFoundError:
            raise SourceError(f"{root}: not an OCI image layout (no oci-layout file)") from None
        except (OSError, ValueError, UnicodeDecodeError, RecursionError):
            raise SourceError(f"{root}: unreadable or invalid oci-layout file") from None
        if not isinstance(marker, dict) or not isinstance(marker.get("imageLayoutVersion"), str):
            raise SourceError(f"{root}: oci-layout has no imageLayoutVersion")

    def index(self) -> Index:
        try:
            with open(os.path.join(self.root, "index.json"), "rb") as f:
                raw = f.read(MAX_MANIFEST_BYTES + 1)
        except OSError as e:
            raise SourceError(f"{self.root}: cannot read index.json: {e.strerror or e}") from None
        try:
            index = parse_manifest(raw, OCI_INDEX)
        except ManifestError as e:
            raise SourceError(f"{self.root}: index.json: {e}") from None
        if not isinstance(index, Index):
            raise SourceError(f"{self.root}: index.json is not an image index")
        return index

    def path(self, digest: Digest) -> str:
        return str(self._blobs.path(digest))

    def read(self, desc: Descriptor, what: str, limit: int) -> bytes:
        """A small blob (manifest, config), read whole and verified."""
        if desc.size > limit:
            raise SourceError(f"{self.root}: {what} {desc.digest.short} is {desc.size} bytes, too large")
        self._stat(desc, what)
        try:
            with open(self.path(desc.digest), "rb") as f:
                raw = f.read(desc.size + 1)
        except OSError as e:
            raise SourceError(f"{self.root}: cannot read {what} {desc.digest.short}: {e.strerror or e}") from None
        actual = Digest.of(raw, desc.digest.algorithm)
        if len(raw) != desc.size or actual != desc.digest:
            raise SourceError(
                f"{self.root}: {what} blob does not match its digest {desc.digest.short} (has {actual.short})"
            )
        return raw

    def blob(self, desc: Descriptor, what: str) -> FileBlob:
        """A layer, verified while it streams."""
        self._stat(desc, what)
        return FileBlob(
            desc.media_type, self.path(desc.digest), size=desc.size, digest=desc.digest, what=f"{self.root}: {what}"
        )

    def _stat(self, desc: Descriptor, what: str) -> None:
        try:
            size = os.path.getsize(self.path(desc.digest))
        except OSError:
            raise SourceError(f"{self.root}: {what} blob {desc.digest.short} is missing") from None
        if size != desc.size:
            raise SourceError(
                f"{self.root}: {what} blob {desc.digest.short} is {size} bytes, the manifest says {desc.size}"
            )


def _pick(index: Index, ref: str | None, platform: Platform, path: str) -> Descriptor:
    """The index.json entry to push: the one named ``ref``, or the only one."""
    entries = index.manifests
    refs = sorted({r for d in entries if (r := d.annotation(REF_NAME))})
    if ref is not None:
        entries = tuple(d for d in entries if d.annotation(REF_NAME) == ref)
        if not entries:
            raise SourceError(f"{path}: no image named {ref!r} in the layout (names: {', '.join(refs) or 'none'})")
    if len(entries) == 1:
        return entries[0]
    if entries and all(d.platform for d in entries):  # one image, listed per platform
        return _select(Index(index.media_type, index.raw, index.digest, entries), platform, path)
    if not entries:
        raise SourceError(f"{path}: index.json lists no images")
    if ref is not None:
        raise SourceError(f"{path}: {len(entries)} images are named {ref!r}, without platforms to choose by")
    raise SourceError(
        f"{path}: {len(entries)} images in the layout; name one as {path}:REF (names: {', '.join(refs) or 'none'})"
    )


def _select(index: Index, platform: Platform, path: str) -> Descriptor:
    try:
        return index.select(platform)
    except ManifestError as e:
        raise SourceError(f"{path}: {e}") from None


def _parse(raw: bytes, desc: Descriptor, path: str) -> Manifest:
    try:
        return parse_manifest(raw, desc.media_type, desc.digest)
    except ManifestError as e:
        raise SourceError(f"{path}: manifest {desc.digest.short}: {e}") from None
