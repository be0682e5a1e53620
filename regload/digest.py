"""Content digests (``algorithm:hex``), and the tally that hashes, counts and checks content as it
streams (``regload.streams`` passes iterators and files through one)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import DigestMismatch, InvalidDigest, RegloadError

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
        """Parse ``sha256:<64 hex>``; raises ``InvalidDigest`` for anything else."""
        known = _parsed.get(text) if isinstance(text, str) else None
        if known is not None:
            return known
        m = _DIGEST_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise InvalidDigest(f"invalid digest {_short(text)!r}")
        algorithm, encoded = m.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise InvalidDigest(f"unsupported digest algorithm {algorithm!r} in {_short(text)!r}")
        if len(encoded) != length or not _HEX_RE.fullmatch(encoded):
            raise InvalidDigest(f"invalid {algorithm} digest {_short(text)!r}")
        digest = cls(algorithm, encoded)
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[text] = digest
        return digest

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, _HASHES[algorithm](data).hexdigest())

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= 80 else s[:77] + "..."


class Tally:
    """Hashes and counts the bytes passed to ``update``; ``digest()`` and ``size`` tell the result.

    With an ``expected`` digest (and size), ``check()`` raises at the end when the content
    differs, and ``update`` as soon as more bytes than the size arrive, so a registry that
    streams garbage forever cannot fill a disk. The messages name ``what`` for a blob read from
    a registry (``DigestMismatch``); a subclass words them otherwise (``sources.files``).
    """

    __slots__ = ("expected", "expected_size", "what", "size", "_hash")

    def __init__(self, expected: Digest | None = None, expected_size: int | None = None, what: str = "blob") -> None:
        self.expected = expected
        self.expected_size = expected_size
        self.what = what
        self.size = 0
        self._hash = _HASHES[expected.algorithm if expected is not None else "sha256"]()

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise self.too_long()

    def digest(self) -> Digest:
        return Digest(self._hash.name, self._hash.hexdigest())

    def check(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise self.wrong_size()
        expected = self.expected
        # The hash is of the expected digest's algorithm: comparing the hex is enough, and no
        # Digest is made for content that matches.
        if expected is not None and self._hash.hexdigest() != expected.hex:
            raise self.wrong_digest(self.digest(), expected)

    def too_long(self) -> RegloadError:
        return DigestMismatch(f"{self._subject()}: more than the expected {self.expected_size} bytes")

    def wrong_size(self) -> RegloadError:
        return DigestMismatch(f"{self._subject()}: got {self.size} bytes, expected {self.expected_size}")

    def wrong_digest(self, actual: Digest, expected: Digest) -> RegloadError:
        return DigestMismatch(f"{self._subject()}: content has digest {actual.short}, expected {expected.short}")

    def _subject(self) -> str:
        return f"{self.what} {self.expected.short}" if self.expected is not None else self.what
