"""Blobs by digest in a directory, as an OCI image layout keeps them (image-spec image-layout.md:
``blobs/<algorithm>/<encoded>``): where a pull's sink receives verified blobs, and where an OCI
layout source reads them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .digest import Digest


class BlobStore:
    """``root/<algorithm>/<hex>`` for each blob. A blob is received into ``<hex>.partial`` and
    renamed into place only when its writer finishes without an error, so a file under its
    digest's name is always complete (verified, when the writer verifies)."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: Digest) -> Path:
        return self.root / digest.algorithm / digest.hex

    @contextmanager
    def receive(self, digest: Digest) -> Iterator[BinaryIO]:
        """A file to write the blob into; kept under its name if the block ends normally,
        removed if it raises (a digest mismatch, a dropped connection, a cancelled pull)."""
        target = self.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        out = open(partial, "wb")
        try:
            yield out
            out.close()
            os.replace(partial, target)
        finally:
            if not out.closed:
                out.close()
            if partial.exists():
                partial.unlink()

    def write(self, digest: Digest, data: bytes) -> None:
        with self.receive(digest) as out:
            out.write(data)

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"
