"""The pull flow: manifest (resolving an index to one platform), config, then every layer,
each verified against its digest and size while it streams, handed to a sink."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from . import endpoints
from .blobstore import BlobStore
from .client import RegistryClient
from .concurrency import Runner
from .digest import Digest, Tally
from .errors import ManifestError, RegistryError, RegloadError
from .manifest import DEFAULT_PLATFORM, Descriptor, ImageManifest, Index, Platform, Schema1Manifest, parse_manifest
from .reference import Reference
from .schema1 import schema1_config, schema1_layers
from .sinks.base import PulledImage, Sink

MAX_CONFIG_BYTES = 64 * 1024 * 1024
READ_CHUNK = 1 << 20

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class PullOptions:
    platform: Platform = DEFAULT_PLATFORM
    jobs: int = 3  # docker's default max-concurrent-downloads
    verify: bool = True
    head_first: bool = False  # HEAD the manifest, then GET it by digest (docker with a warm cache)


@dataclass
class PullResult:
    """What a pull fetched. The strings of its report are made only when asked for
    (``to_json``): a load test's users, pulling thousands of times a second, count bytes only."""

    ref: Reference
    manifest: ImageManifest | Schema1Manifest
    index: Index | None
    chosen: Descriptor | None  # the index entry pulled, when the reference is an index
    config_desc: Descriptor | None
    layers: list[Descriptor]
    bytes: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def manifest_digest(self) -> str:
        return str(self.manifest.digest)

    def to_json(self) -> dict[str, object]:
        chosen = self.chosen
        return {
            "reference": str(self.ref),
            "manifest_digest": self.manifest_digest,
            "media_type": self.manifest.media_type,
            "index_digest": str(self.index.digest) if self.index else None,
            "platform": str(chosen.platform) if chosen and chosen.platform else None,
            "config_digest": str(self.config_desc.digest) if self.config_desc else None,
            "layers": [{"digest": str(d.digest), "size": d.size, "mediaType": d.media_type} for d in self.layers],
            "bytes": self.bytes,
            "timings": self.timings,
        }


def fetch_manifest(
    client: RegistryClient, ref: Reference, head_first: bool = False
) -> ImageManifest | Schema1Manifest | Index:
    """The reference's manifest or index, parsed. With ``head_first``, a HEAD learns the digest
    and the GET asks for that digest (docker with a warm cache)."""
    reference = None
    if head_first:
        head = endpoints.head_manifest(client, ref)
        if head is None:
            raise RegistryError(endpoints.HEAD_MANIFEST, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        reference = str(head.digest) if head.digest else None
    fetched = endpoints.get_manifest(client, ref, reference)
    return parse_manifest(fetched.raw, fetched.media_type, fetched.digest)


def platform_manifest(
    client: RegistryClient, ref: Reference, index: Index, platform: Platform
) -> tuple[ImageManifest | Schema1Manifest, Descriptor]:
    """GET the manifest an index names for ``platform``: its size must be the index entry's
    (image-spec descriptor.md), and it must not be an index itself."""
    chosen = index.select(platform)
    inner = endpoints.get_manifest(client, ref, str(chosen.digest))
    if len(inner.raw) != chosen.size:
        raise ManifestError(f"manifest {chosen.digest.short} is {len(inner.raw)} bytes, the index says {chosen.size}")
    resolved = parse_manifest(inner.raw, inner.media_type, inner.digest)
    if isinstance(resolved, Index):
        raise ManifestError(f"index entry {chosen.digest.short} for {platform} is itself an index")
    return resolved, chosen


def resolve_manifest(
    client: RegistryClient, ref: Reference, platform: Platform, head_first: bool = False
) -> tuple[ImageManifest | Schema1Manifest, Index | None, Descriptor | None]:
    """The image manifest to pull: the reference's own, or, when it is an index, the platform's."""
    manifest = fetch_manifest(client, ref, head_first)
    if not isinstance(manifest, Index):
        return manifest, None, None
    resolved, chosen = platform_manifest(client, ref, manifest, platform)
    return resolved, manifest, chosen


class _Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> object: ...


def fetch_blob(
    client: RegistryClient,
    ref: Reference,
    desc: Descriptor,
    out: _Writable | None,
    verify: bool = True,
    progress: ProgressFn | None = None,
) -> int:
    """Stream one blob into ``out`` (or nowhere), verifying digest and size as it arrives.
    Returns the bytes read. A mismatch fails the blob's request with its cause and raises."""
    verifier = Tally(desc.digest, desc.size if desc.size >= 0 else None, "blob") if verify else None
    size = 0
    with endpoints.get_blob(client, ref, desc.digest) as response:
        try:
            for chunk in response.iter_bytes(READ_CHUNK):
                size += len(chunk)
                if verifier:
                    verifier.update(chunk)
                if out is not None:
                    out.write(chunk)
                if progress:
                    progress(len(chunk))
            if verifier:
                verifier.check()
        except RegloadError as e:
            response.fail(e)
            raise
    return size


def fetch_config(client: RegistryClient, ref: Reference, desc: Descriptor) -> bytes:
    """The config blob, in memory and always verified (``--no-verify`` skips layers only)."""
    if desc.size > MAX_CONFIG_BYTES:
        raise ManifestError(f"config {desc.digest.short} is {desc.size} bytes, more than {MAX_CONFIG_BYTES}")
    data = io.BytesIO()
    fetch_blob(client, ref, desc, data)
    return data.getvalue()


def fetch_layer(
    client: RegistryClient,
    ref: Reference,
    desc: Descriptor,
    blobs: BlobStore | None,
    verify: bool = True,
    progress: ProgressFn | None = None,
) -> int:
    """One layer blob, kept in ``blobs`` under its digest once whole (or dropped)."""
    if blobs is None:
        return fetch_blob(client, ref, desc, None, verify, progress)
    with blobs.receive(desc.digest) as out:
        return fetch_blob(client, ref, desc, out, verify, progress)


def pull(
    client: RegistryClient,
    ref: Reference,
    sink: Sink,
    runner: Runner,
    options: PullOptions = PullOptions(),
    progress: ProgressFn | None = None,
) -> PullResult:
    """Pull ``ref`` into ``sink``. On any failure the sink is aborted (nothing left behind)."""
    clock = time.perf_counter
    timings: dict[str, float] = {}
    started = clock()
    try:
        client.ping()
        manifest, index, chosen = resolve_manifest(client, ref, options.platform, options.head_first)
        timings["manifest"] = clock() - started

        t = clock()
        if isinstance(manifest, ImageManifest):
            layers = list(manifest.layers)
            config_desc: Descriptor | None = manifest.config
            config: bytes | None = fetch_config(client, ref, manifest.config)
        else:
            layers = schema1_layers(manifest)
            config_desc, config = None, None
        timings["config"] = clock() - t

        t = clock()
        blobs = sink.blob_store()
        unique = layers if len(layers) < 2 else list({d.digest: d for d in layers}.values())
        sizes = runner.map(
            lambda desc: fetch_layer(client, ref, desc, blobs, options.verify, progress), unique, max(1, options.jobs)
        )
        timings["layers"] = clock() - t

        if blobs is not None:
            t = clock()
            if config is None or config_desc is None:
                assert isinstance(manifest, Schema1Manifest)
                config = schema1_config(manifest, layers, blobs)
                config_desc = Descriptor(
                    "application/vnd.docker.container.image.v1+json", Digest.of(config), len(config)
                )
            sink.finish(
                PulledImage(ref.repository, ref.tag, manifest, index, config, config_desc, tuple(layers), blobs)
            )
            timings["write"] = clock() - t
    except BaseException:
        sink.abort()
        raise
    timings["total"] = clock() - started
    config_bytes = len(config) if config and isinstance(manifest, ImageManifest) else 0
    return PullResult(ref, manifest, index, chosen, config_desc, layers, sum(sizes) + config_bytes, timings)
