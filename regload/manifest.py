"""Descriptors, platforms, and parsing of manifests and indexes (Docker and OCI).

Manifests are kept as their exact bytes: digests are over bytes, never over re-serialised JSON
(a signed schema 1 manifest's digest is over its signed payload: see ``digested_bytes``).
``build_manifest`` is the one place that serialises a new manifest.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from . import mediatypes as mt
from .digest import Digest
from .errors import InvalidDigest, ManifestError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # distribution's own limit for a manifest PUT


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ManifestError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (from an index) satisfies this wanted platform."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if self.variant is None:
            return True
        return self.variant == (other.variant or _default_variant(other.architecture))

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


def _default_variant(arch: str) -> str | None:
    return {"arm64": "v8", "arm": "v7"}.get(arch)


DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: descriptor is not an object")
        media_type = obj.get("mediaType")
        size = obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"{where}: descriptor has no mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: descriptor has no valid size")
        if "digest" not in obj:
            raise ManifestError(f"{where}: descriptor has no digest")
        try:
            digest = Digest.parse(obj["digest"])
        except InvalidDigest as e:
            raise InvalidDigest(f"{where}: {e}") from None
        platform = None
        p = obj.get("platform")
        if isinstance(p, dict) and isinstance(p.get("os"), str) and isinstance(p.get("architecture"), str):
            variant = p.get("variant")
            platform = Platform(p["os"], p["architecture"], variant if isinstance(variant, str) else None)
        listed = obj.get("urls")
        urls = tuple(u for u in listed if isinstance(u, str)) if isinstance(listed, list) else ()
        ann = obj.get("annotations") or {}
        annotations = (
            tuple(sorted((k, v) for k, v in ann.items() if isinstance(v, str))) if isinstance(ann, dict) else ()
        )
        return cls(media_type, digest, size, platform, urls, annotations)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            plat = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        return out

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """A Docker v2 schema 2 or OCI image manifest."""

    media_type: str
    raw: bytes
    digest: Digest
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    """A Docker manifest list or OCI image index."""

    media_type: str
    raw: bytes
    digest: Digest
    manifests: tuple[Descriptor, ...]

    def select(self, wanted: Platform) -> Descriptor:
        for d in self.manifests:
            if d.platform and wanted.matches(d.platform):
                return d
        have = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise ManifestError(f"no manifest for platform {wanted} in the index (platforms: {have})")


@dataclass(frozen=True, slots=True)
class Schema1Manifest:
    """A Docker schema 1 manifest (read-only). Layers are listed newest first on the wire;
    ``layers`` here are oldest first, like every other manifest type."""

    media_type: str
    raw: bytes
    digest: Digest
    layers: tuple[Descriptor, ...]
    history: tuple[dict[str, Any], ...] = field(default=())  # v1Compatibility objects, oldest first
    architecture: str = "amd64"


Manifest = ImageManifest | Index | Schema1Manifest


# A load test parses the same few manifests over and over (every pull of a pool image). A parsed
# image manifest or index is immutable and depends only on its arguments, so it is kept.
_PARSED_MAX = 256
_PARSED_BYTES_MAX = 16 * 1024  # larger manifests are parsed each time (the cache stays under 4 MiB)
_parsed: dict[tuple[bytes, str | None, str | None, str | None], ImageManifest | Index] = {}


def parse_manifest(raw: bytes, media_type: str | None, digest: Digest | None = None) -> Manifest:
    """Parse manifest bytes. ``media_type`` is the response's Content-Type (may be absent or
    generic); the document's own ``mediaType`` wins when present."""
    key = (raw, media_type, digest.algorithm, digest.hex) if digest else (raw, media_type, None, None)
    known = _parsed.get(key) if len(raw) <= _PARSED_BYTES_MAX else None
    if known is not None:
        return known
    manifest = _parse(raw, media_type, digest)
    if len(raw) <= _PARSED_BYTES_MAX and isinstance(manifest, (ImageManifest, Index)):
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = manifest
    return manifest


def _parse(raw: bytes, media_type: str | None, digest: Digest | None) -> Manifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
    doc = _json_object(raw, "manifest")
    digest = digest or Digest.of(digested_bytes(raw))
    kind = _kind(doc, media_type)
    if kind in mt.INDEXES or kind in mt.IMAGE_MANIFESTS:
        _check_schema_version(doc, kind)
    if kind in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("index has no manifests list")
        return Index(kind, raw, digest, tuple(Descriptor.from_json(e, "index entry") for e in entries))
    if kind in mt.IMAGE_MANIFESTS:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest has no layers list")
        config = Descriptor.from_json(doc.get("config"), "manifest config")
        return ImageManifest(kind, raw, digest, config, tuple(Descriptor.from_json(x, "layer") for x in layers))
    if kind in mt.SCHEMA1:
        payload = digested_bytes(raw)
        if payload is not raw:
            # Read what the digest covers: bytes after formatLength (the signatures) could
            # otherwise carry a second fsLayers that the JSON parser would take instead.
            doc = _json_object(payload, "schema 1 payload")
        return _parse_schema1(doc, kind, raw, digest)
    raise ManifestError(f"unsupported manifest media type {kind!r}")


def digested_bytes(raw: bytes) -> bytes:
    """The bytes a manifest's digest is computed over: ``raw`` itself, except for a signed
    schema 1 manifest (libtrust "pretty" JWS), whose digest is that of its payload: the
    manifest without ``signatures``, rebuilt from the ``formatLength`` and ``formatTail`` of
    the signatures' protected headers (what distribution stores and names in
    Docker-Content-Digest; the signatures differ on every GET, as the registry signs again)."""
    if b'"signatures"' not in raw:  # the common case, without parsing
        return raw
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 1 or "signatures" not in doc:
        return raw
    formats = set()
    try:
        for signature in doc["signatures"]:
            protected = json.loads(_b64url_decode(signature["protected"]))
            formats.add((protected["formatLength"], _b64url_decode(protected["formatTail"])))
    except (TypeError, KeyError, ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
        raise ManifestError("signed schema 1 manifest: a signature has no valid protected header") from None
    if len(formats) != 1:
        raise ManifestError("signed schema 1 manifest: signatures missing or disagreeing on the payload format")
    ((length, tail),) = formats
    if not isinstance(length, int) or isinstance(length, bool) or not 0 < length <= len(raw):
        raise ManifestError("signed schema 1 manifest: invalid formatLength")
    return raw[:length] + tail


def _b64url_decode(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{what} is not valid JSON ({e.__class__.__name__}: {str(e)[:80]})") from None
    except RecursionError:  # the C decoder's depth limit: arrays or objects nested ~1000 deep
        raise ManifestError(f"{what} is JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return doc


def _check_schema_version(doc: dict[str, Any], kind: str) -> None:
    """OCI image-spec manifest.md and image-index.md: ``schemaVersion`` MUST be 2 (Docker's v2
    schema 2 and manifest list say the same). Tolerated when absent, as containerd does."""
    version = doc.get("schemaVersion", 2)
    if version != 2:
        raise ManifestError(f"unsupported schemaVersion {json.dumps(version)[:20]} for {kind} (expected 2)")


def _kind(doc: dict[str, Any], content_type: str | None) -> str:
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
        return mt.DOCKER_SCHEMA1_SIGNED if "signatures" in doc else mt.DOCKER_SCHEMA1
    ct = (content_type or "").split(";")[0].strip()
    if ct in mt.INDEXES or ct in mt.IMAGE_MANIFESTS:
        return ct
    # OCI allows mediaType to be omitted: tell index from manifest by shape.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    raise ManifestError(f"manifest has no recognisable media type (Content-Type {ct or 'absent'!r})")


def _parse_schema1(doc: dict[str, Any], kind: str, raw: bytes, digest: Digest) -> Schema1Manifest:
    fs_layers = doc.get("fsLayers")
    history = doc.get("history") or []
    if not isinstance(fs_layers, list) or not fs_layers:
        raise ManifestError("schema 1 manifest has no fsLayers")
    if not isinstance(history, list):
        raise ManifestError("schema 1 manifest history is not a list")
    layers = []
    for entry in reversed(fs_layers):
        if not isinstance(entry, dict):
            raise ManifestError("schema 1 fsLayers entry is not an object")
        # Schema 1 does not record sizes: -1 means unknown, checked by digest only.
        layers.append(Descriptor(mt.DOCKER_LAYER_GZIP, Digest.parse(entry.get("blobSum", "")), -1))
    compat: list[dict[str, Any]] = []
    for h in reversed(history):
        try:
            v1 = json.loads(h["v1Compatibility"])
        except (KeyError, TypeError, ValueError, RecursionError):
            v1 = None
        if not isinstance(v1, dict):
            raise ManifestError("schema 1 history entry has no valid v1Compatibility")
        compat.append(v1)
    arch = doc["architecture"] if isinstance(doc.get("architecture"), str) else "amd64"
    return Schema1Manifest(kind, raw, digest, tuple(layers), tuple(compat), arch)


def build_manifest(
    media_type: str, config: Descriptor, layers: list[Descriptor], annotations: dict[str, str] | None = None
) -> bytes:
    """Serialise a new image manifest deterministically (the bytes that will be pushed)."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(
        doc,
        indent=3 if media_type == mt.DOCKER_MANIFEST else None,
        separators=(",", ": ") if media_type == mt.DOCKER_MANIFEST else (",", ":"),
    ).encode()
