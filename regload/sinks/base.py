"""The contract between the pull flow and pull sinks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..digest import Digest
from ..manifest import Descriptor, ImageManifest, Index, Schema1Manifest


@dataclass(frozen=True)
class PulledImage:
    """Everything a sink needs once every blob is downloaded and verified.

    ``layers`` are oldest first. ``config`` is the exact config blob (for schema 1 images, a
    config synthesised by the pull flow with the layers' diff_ids). ``blob_path(digest)`` is the
    verified file of each layer blob.
    """

    repository: str  # e.g. "library/busybox"
    tag: str | None
    manifest: ImageManifest | Schema1Manifest
    index: Index | None
    config: bytes
    config_descriptor: Descriptor
    layers: tuple[Descriptor, ...]
    blob_dir: Path

    def blob_path(self, digest: Digest) -> Path:
        return self.blob_dir / digest.algorithm / digest.hex


class Sink(Protocol):
    """Writes a pulled image. ``stores_blobs`` False means blobs are verified and dropped.

    ``blob_dir()`` is a staging directory beside the output, where the pull flow writes verified
    blobs; ``finish`` assembles the output and moves it into place in one rename, so an
    interrupted or failed pull never leaves a half-written output at the user's path; ``abort``
    removes the staging directory.
    """

    stores_blobs: bool

    def blob_dir(self) -> Path: ...

    def finish(self, image: PulledImage) -> None: ...

    def abort(self) -> None: ...
