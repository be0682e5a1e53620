"""Docker image manifest schema 1, signed as libtrust signs it, pushed with plain HTTP.

distribution 2.8 stores a schema 1 manifest only when its JWS signature verifies (and only
with ``compatibility.schema1.enabled``). The "pretty" JWS of libtrust (docker/libtrust
``jsonsign.go``) keeps the manifest readable as JSON:

* the payload is the manifest indented with 3 spaces; the manifest digest is its sha256;
* the ``signatures`` array goes in before the payload's final ``}``; each signature's
  ``protected`` header (base64url JSON) records ``formatLength``, the length of the payload
  up to its last character before the closing brace, and ``formatTail``, the rest, so a
  reader can cut the signatures out and rebuild the exact payload;
* the signature is ES256 over ``protected + "." + base64url(payload)``, as raw ``r || s``
  (32 bytes each, not DER); the header carries the public key as a JWK whose ``kid`` is the
  libtrust key ID (sha256 of the DER public key, first 240 bits, base32 in groups of four).

Served manifests are signed again by the registry with a key of its own: the bytes differ
from what was pushed, the payload (and so the digest) does not.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.images import Layer, layer_tar
from tests.support.registries import RegistryFixture, http_request

MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SIGNATURES_KEY = "signatures"
INDENT = "   "
#: The gzip of an empty tar (1024 zero bytes) every schema 1 image uses for its throwaway
#: layers; known by its digest, so these exact 32 bytes (Go's compress/gzip output).
EMPTY_LAYER = bytes.fromhex("1f8b080000096e8800ff621805a360148c5800080000ffff2eafb5ef00040000")
EMPTY_LAYER_DIGEST = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
assert "sha256:" + hashlib.sha256(EMPTY_LAYER).hexdigest() == EMPTY_LAYER_DIGEST


def b64url(data: bytes) -> str:
    """JOSE base64url: URL alphabet, no padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class V1Layer:
    """One step of a schema 1 image: its layer blob and the command that made it."""

    blob: bytes
    created_by: str
    throwaway: bool = False

    @classmethod
    def files(cls, layer: Layer, created_by: str) -> V1Layer:
        """A real layer: the tar of ``layer`` (see ``tests.support.images``), gzipped."""
        return cls(gzip.compress(layer_tar(layer), mtime=0), created_by)

    @classmethod
    def empty(cls, created_by: str) -> V1Layer:
        """A throwaway layer (ENV, CMD…): the canonical empty tar, left out of the rootfs."""
        return cls(EMPTY_LAYER, created_by, throwaway=True)

    @property
    def digest(self) -> str:
        return sha256_digest(self.blob)

    @property
    def diff_id(self) -> str:
        return sha256_digest(gzip.decompress(self.blob))


@dataclass(frozen=True)
class Schema1Image:
    """A signed schema 1 manifest and its layers (oldest first)."""

    manifest: bytes  # the signed manifest, as pushed
    payload: bytes  # what the signature covers
    layers: tuple[V1Layer, ...]

    @property
    def digest(self) -> str:
        """The manifest digest: over the payload, signatures cut out."""
        return sha256_digest(self.payload)

    @property
    def real_layers(self) -> list[V1Layer]:
        return [layer for layer in self.layers if not layer.throwaway]


def manifest_payload(
    name: str, tag: str, layers: Sequence[V1Layer], config: dict[str, Any], architecture: str = "amd64"
) -> bytes:
    """The unsigned manifest: ``fsLayers`` and ``history`` newest first, one ``v1Compatibility``
    per layer chained by ``id``/``parent``; the newest also carries the image ``config``."""
    history: list[dict[str, Any]] = []
    parent = ""
    for i, layer in enumerate(layers):
        v1_id = hashlib.sha256(f"{layer.digest} {parent}".encode()).hexdigest()
        entry: dict[str, Any] = {"id": v1_id}
        if parent:
            entry["parent"] = parent
        entry["created"] = f"2020-09-13T12:{i:02d}:00Z"
        entry["container_config"] = {"Cmd": ["/bin/sh", "-c", layer.created_by]}
        if layer.throwaway:
            entry["throwaway"] = True
        history.append(entry)
        parent = v1_id
    history[-1].update({"architecture": architecture, "os": "linux", "config": config})
    doc = {
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": architecture,
        "fsLayers": [{"blobSum": layer.digest} for layer in reversed(layers)],
        "history": [{"v1Compatibility": json.dumps(h, separators=(",", ":"))} for h in reversed(history)],
    }
    return json.dumps(doc, indent=len(INDENT)).encode()


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key ID, e.g. ``ABCD:EFGH:…`` (12 groups)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))


def jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {
        "crv": "P-256",
        "kid": key_id(public_key),
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }


def sign(payload: bytes, key: ec.EllipticCurvePrivateKey, time: str = "2020-09-13T12:26:40Z") -> bytes:
    """The pretty JWS of ``payload`` (indented JSON): the payload with a ``signatures`` member."""
    body = payload.rstrip()
    if not body.endswith(b"}"):
        raise ValueError("the payload is not a JSON object")
    format_length = len(body[:-1].rstrip())
    if payload[format_length - 1 : format_length] == b",":
        raise ValueError("the payload ends with a comma")
    header = {"formatLength": format_length, "formatTail": b64url(payload[format_length:]), "time": time}
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    der = key.sign(f"{protected}.{b64url(payload)}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = {
        "header": {"jwk": jwk(key.public_key()), "alg": "ES256"},
        "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    # json.MarshalIndent(signatures, INDENT, INDENT): every line after the first is prefixed.
    array = json.dumps([signature], indent=len(INDENT)).replace("\n", "\n" + INDENT)
    return payload[:format_length] + f',\n{INDENT}"{SIGNATURES_KEY}": {array}\n}}'.encode()


def unsign(manifest: bytes) -> bytes:
    """The payload of a pretty JWS: cut at ``formatLength``, add back ``formatTail``."""
    signatures = json.loads(manifest)[SIGNATURES_KEY]
    protected = json.loads(b64url_decode(signatures[0]["protected"]))
    tail = b64url_decode(protected["formatTail"])
    return manifest[: protected["formatLength"]] + tail


def make_image(
    name: str,
    tag: str,
    layers: Sequence[V1Layer],
    config: dict[str, Any],
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Schema1Image:
    """Build and sign (with ``key``, or a new P-256 key) a schema 1 image of ``layers``."""
    payload = manifest_payload(name, tag, layers, config)
    manifest = sign(payload, key or ec.generate_private_key(ec.SECP256R1()))
    return Schema1Image(manifest, payload, tuple(layers))


def push_blob(registry: RegistryFixture, repository: str, data: bytes) -> None:
    """A monolithic upload: POST a session, PUT the bytes with their digest."""
    started = http_request(f"{registry.api_url}{repository}/blobs/uploads/", method="POST", data=b"")
    assert started.status == 202, (started.status, started.body)
    location = urljoin(registry.url + "/", started.headers["Location"])
    done = http_request(
        f"{location}{'&' if '?' in location else '?'}digest={sha256_digest(data)}",
        method="PUT",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status == 201, (done.status, done.body)


def put_manifest(
    registry: RegistryFixture, repository: str, tag: str, manifest: bytes
) -> tuple[int, str | None, bytes]:
    """PUT a manifest as schema 1; returns the status, Docker-Content-Digest and body."""
    url = f"{registry.api_url}{repository}/manifests/{tag}"
    resp = http_request(url, method="PUT", data=manifest, headers={"Content-Type": MEDIA_TYPE})
    return resp.status, resp.headers.get("Docker-Content-Digest"), resp.body


def push_image(registry: RegistryFixture, repository: str, tag: str, image: Schema1Image) -> None:
    """Push every distinct layer blob, then the signed manifest (the registry verifies it)."""
    for data in {layer.blob: None for layer in image.layers}:
        push_blob(registry, repository, data)
    status, digest, body = put_manifest(registry, repository, tag, image.manifest)
    assert status == 201, (status, body)
    assert digest == image.digest, "the registry's digest is not the payload's: the payload was cut wrong"
