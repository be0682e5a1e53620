"""Content digests (``algorithm:hex``) and streaming verification of content against them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import DigestMismatch, ManifestError

# OCI image-spec descriptor.md#digests: registered algorithms and their encoded forms.
_ALGORITHMS = {"sha256": 64, "sha512": 128}
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)\Z")
_HEX_RE = re.compile(r"[a-f0-9]+")
# A load test parses the same few digests over and over (every pull of a pool image): parsed
# values are immutable, so they are kept, up to this many.
_PARSED_MAX = 4096
_parsed: dict[str, Digest] = {}


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 hex>``; raises ``ManifestError`` for anything else."""
        known = _parsed.get(text) if isinstance(text, str) else None
        if known is not None:
            return known
        m = _DIGEST_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise ManifestError(f"invalid digest {_short(text)!r}")
        algorithm, encoded = m.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise ManifestError(f"unsupported digest algorithm {algorithm!r} in {_short(text)!r}")
        if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
            raise ManifestError(f"invalid {algorithm} digest {_short(text)!r}")
        digest = cls(algorithm, encoded)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[text] = digest
        return digest

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, _HASHES[algorithm](data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return _HASHES[self.algorithm]()

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= 80 else s[:77] + "..."


class Verifier:
    """Hashes and counts content as it streams, then checks it against the expected digest/size.

    ``update`` raises as soon as more bytes than ``expected_size`` arrive, so a registry that
    streams garbage forever cannot fill a disk.
    """

    __slots__ = ("digest", "expected_size", "size", "_hash", "what")

    def __init__(self, digest: Digest, expected_size: int | None, what: str = "blob") -> None:
        self.digest = digest
        self.expected_size = expected_size
        self.size = 0
        self._hash = digest.hasher()
        self.what = what

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatch(f"{self.what} {self.digest.short}: more than the expected {self.expected_size} bytes")

    def check(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(
                f"{self.what} {self.digest.short}: got {self.size} bytes, expected {self.expected_size}"
            )
        actual = self._hash.hexdigest()
        if actual != self.digest.hex:
            raise DigestMismatch(
                f"{self.what} {self.digest.short}: content has digest "
                f"{self.digest.algorithm}:{actual[:12]}, expected {self.digest.short}"
            )


class Hasher:
    """Computes the sha256 digest and size of content streamed through it (for uploads)."""

    __slots__ = ("_hash", "size")

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest("sha256", self._hash.hexdigest())
