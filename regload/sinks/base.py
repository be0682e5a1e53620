"""The contract between the pull flow and pull sinks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..blobstore import BlobStore
from ..digest import Digest
from ..manifest import Descriptor, ImageManifest, Index, Schema1Manifest


@dataclass(frozen=True)
class PulledImage:
    """Everything a sink needs once every blob is downloaded and verified.

    ``layers`` are oldest first. ``config`` is the exact config blob (for schema 1 images, a
    config synthesised by the pull flow with the layers' diff_ids). ``blobs`` holds the verified
    layer blobs; ``blob_path(digest)`` is the file of one.
    """

    repository: str  # e.g. "library/busybox"
    tag: str | None
    manifest: ImageManifest | Schema1Manifest
    index: Index | None
    config: bytes
    config_descriptor: Descriptor
    layers: tuple[Descriptor, ...]
    blobs: BlobStore

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs.path(digest)


class Sink(Protocol):
    """Writes a pulled image.

    ``blob_store()`` is where the pull flow puts verified blobs: a store in a staging directory
    beside the output, or None when blobs are verified and dropped. ``finish`` assembles the
    output and moves it into place in one rename, so an interrupted or failed pull never leaves a
    half-written output at the user's path; ``abort`` removes the staging directory.
    """

    def blob_store(self) -> BlobStore | None: ...

    def finish(self, image: PulledImage) -> None: ...

    def abort(self) -> None: ...
