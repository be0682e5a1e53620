"""The sink of a pull that only verifies: every blob is hashed while it streams, then dropped."""

from __future__ import annotations

from ..blobstore import BlobStore
from .base import PulledImage


class DiscardSink:
    """Writes nothing, and has no blob store: the pull flow drops each blob once verified."""

    def blob_store(self) -> BlobStore | None:
        return None

    def finish(self, image: PulledImage) -> None:
        pass

    def abort(self) -> None:
        pass
