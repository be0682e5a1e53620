"""The sink of a pull that only verifies: every blob is hashed while it streams, then dropped."""

from __future__ import annotations

from pathlib import Path

from .base import PulledImage


class DiscardSink:
    """Writes nothing. The pull flow does not ask it for a blob directory (``stores_blobs``)."""

    stores_blobs = False

    def blob_dir(self) -> Path:
        raise RuntimeError("DiscardSink stores no blobs: the pull flow must check stores_blobs")

    def finish(self, image: PulledImage) -> None:
        pass

    def abort(self) -> None:
        pass
