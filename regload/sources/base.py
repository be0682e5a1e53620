"""The contract between push sources and the push flow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..digest import Digest
from ..manifest import Descriptor

CHUNK = 1 << 20  # blobs stream in chunks of at most 1 MiB


class BlobSource(Protocol):
    """One blob to push. ``open()`` may be called more than once (a retry, a pre-pass for the
    digest) and yields the exact same bytes each time, in chunks of at most ``CHUNK`` bytes.

    A ``StreamDigestedBlob`` computes (or checks) its digest during a complete ``open()`` pass,
    so that ``known_descriptor()`` answers after it: the push then does not hash the stream a
    second time."""

    media_type: str

    def descriptor(self) -> Descriptor:
        """Digest and size of the blob; computed on first call if not known (may cost a pass
        over the content, e.g. compressing to a spool file), then cached."""
        ...

    def known_descriptor(self) -> Descriptor | None:
        """The descriptor if it is known without a pass over the content."""
        ...

    def open(self) -> Iterator[bytes | memoryview]: ...


class StreamDigestedBlob:
    """Base of blob sources whose ``open()`` records ``_digest`` (or checks it) on its first
    complete pass; ``descriptor()`` makes that pass when the digest is still unknown."""

    media_type: str
    size: int
    _digest: Digest | None

    def known_descriptor(self) -> Descriptor | None:
        return Descriptor(self.media_type, self._digest, self.size) if self._digest else None

    def descriptor(self) -> Descriptor:
        if self._digest is None:
            for _ in self.open():
                pass
        assert self._digest is not None
        return Descriptor(self.media_type, self._digest, self.size)

    def open(self) -> Iterator[bytes | memoryview]:
        raise NotImplementedError


@runtime_checkable
class CompressedWhileSent(Protocol):
    """A blob whose digest is learnt only by compressing it (a docker-save layer). The push
    sends it as it compresses instead of compressing it twice, and asks the registry for it
    first only when ``likely_descriptor()`` answers (a digest an earlier run found)."""

    def likely_descriptor(self) -> Descriptor | None: ...


@dataclass
class BytesBlob:
    """A small blob held in memory (configs, manifests)."""

    media_type: str
    data: bytes

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, Digest.of(self.data), len(self.data))

    def known_descriptor(self) -> Descriptor | None:
        return self.descriptor()

    def open(self) -> Iterator[bytes | memoryview]:
        view = memoryview(self.data)
        for i in range(0, len(view), CHUNK):
            yield view[i : i + CHUNK]


@dataclass
class SourceImage:
    """An image ready to push.

    ``manifest`` holds exact manifest bytes when the source already has them and its blobs are
    pushed unchanged (an OCI layout); otherwise the push flow builds a manifest of
    ``manifest_media_type`` from the config and layer descriptors.
    """

    manifest_media_type: str
    config: BytesBlob
    layers: list[BlobSource]
    manifest: bytes | None = None
    description: str = ""
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for fn in reversed(self.cleanup):
            fn()
        self.cleanup.clear()
