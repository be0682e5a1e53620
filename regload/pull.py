"""The pull flow: manifest (resolving an index to one platform), config, then every layer,
each verified against its digest and size while it streams, handed to a sink."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import endpoints
from .client import RegistryClient
from .concurrency import Runner
from .digest import Digest, Verifier
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
    reference: str
    manifest_digest: str
    media_type: str
    index_digest: str | None
    platform: str | None
    config_digest: str | None
    layers: list[dict[str, object]]
    bytes: int
    timings: dict[str, float] = field(default_factory=dict)


def resolve_manifest(
    client: RegistryClient, ref: Reference, platform: Platform, head_first: bool = False
) -> tuple[ImageManifest | Schema1Manifest, Index | None, Descriptor | None]:
    """GET the reference's manifest; if it is an index, GET the platform's manifest from it.
    With ``head_first``, a HEAD learns the digest and the GET asks for that digest."""
    reference = None
    if head_first:
        head = endpoints.head_manifest(client, ref)
        if head is None:
            raise RegistryError(endpoints.HEAD_MANIFEST, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        reference = str(head.digest) if head.digest else None
    fetched = endpoints.get_manifest(client, ref, reference)
    manifest = parse_manifest(fetched.raw, fetched.media_type, fetched.digest)
    if not isinstance(manifest, Index):
        return manifest, None, None
    chosen = manifest.select(platform)
    inner = endpoints.get_manifest(client, ref, str(chosen.digest))
    if len(inner.raw) != chosen.size:
        raise ManifestError(f"manifest {chosen.digest.short} is {len(inner.raw)} bytes, the index says {chosen.size}")
    resolved = parse_manifest(inner.raw, inner.media_type, inner.digest)
    if isinstance(resolved, Index):
        raise ManifestError(f"index entry {chosen.digest.short} for {platform} is itself an index")
    return resolved, manifest, chosen


def fetch_small_blob(client: RegistryClient, ref: Reference, desc: Descriptor, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """GET a small blob (a config) into memory, verified."""
    if desc.size > limit:
        raise ManifestError(f"config {desc.digest.short} is {desc.size} bytes, more than {limit}")
    verifier = Verifier(desc.digest, desc.size if desc.size >= 0 else None, "config")
    data = bytearray()
    with endpoints.get_blob(client, ref, desc.digest) as response:
        try:
            for chunk in response.iter_bytes(READ_CHUNK):
                verifier.update(chunk)
                data += chunk
            verifier.check()
        except RegloadError as e:
            response.fail(e)
            raise
    return bytes(data)


def fetch_blob(
    client: RegistryClient,
    ref: Reference,
    desc: Descriptor,
    target: Path | None,
    verify: bool = True,
    progress: ProgressFn | None = None,
) -> int:
    """Stream one blob, verifying digest and size as it arrives, into ``target`` (written as
    ``target.partial`` and renamed once verified) or nowhere. Returns the bytes read."""
    expected = desc.size if desc.size >= 0 else None
    verifier = Verifier(desc.digest, expected, "blob") if verify else None
    partial = target.with_name(target.name + ".partial") if target else None
    out = open(partial, "wb") if partial else None
    size = 0
    try:
        with endpoints.get_blob(client, ref, desc.digest) as response:
            try:
                for chunk in response.iter_bytes(READ_CHUNK):
                    size += len(chunk)
                    if verifier:
                        verifier.update(chunk)
                    if out:
                        out.write(chunk)
                    if progress:
                        progress(len(chunk))
                if verifier:
                    verifier.check()
            except RegloadError as e:
                response.fail(e)
                raise
        if out and partial and target:
            out.close()
            os.replace(partial, target)
        return size
    finally:
        if out and not out.closed:
            out.close()
        if partial and partial.exists():
            partial.unlink()


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
        endpoints.ping(client)
        manifest, index, chosen = resolve_manifest(client, ref, options.platform, options.head_first)
        timings["manifest"] = clock() - started

        t = clock()
        if isinstance(manifest, ImageManifest):
            layers = list(manifest.layers)
            config_desc: Descriptor | None = manifest.config
            config: bytes | None = fetch_small_blob(client, ref, manifest.config)
        else:
            layers = schema1_layers(manifest)
            config_desc, config = None, None
        timings["config"] = clock() - t

        t = clock()
        blob_dir = sink.blob_dir() if sink.stores_blobs else None
        unique = list({d.digest: d for d in layers}.values())

        def fetch(desc: Descriptor) -> int:
            target = None
            if blob_dir is not None:
                (blob_dir / desc.digest.algorithm).mkdir(parents=True, exist_ok=True)
                target = blob_dir / desc.digest.algorithm / desc.digest.hex
            return fetch_blob(client, ref, desc, target, options.verify, progress)

        sizes = runner.map(fetch, unique, max(1, options.jobs))
        timings["layers"] = clock() - t

        if blob_dir is not None:
            t = clock()
            if config is None or config_desc is None:
                assert isinstance(manifest, Schema1Manifest)
                config = schema1_config(manifest, layers, blob_dir)
                config_desc = Descriptor(
                    "application/vnd.docker.container.image.v1+json", Digest.of(config), len(config)
                )
            sink.finish(
                PulledImage(ref.repository, ref.tag, manifest, index, config, config_desc, tuple(layers), blob_dir)
            )
            timings["write"] = clock() - t
    except BaseException:
        sink.abort()
        raise
    timings["total"] = clock() - started
    return PullResult(
        reference=str(ref),
        manifest_digest=str(manifest.digest),
        media_type=manifest.media_type,
        index_digest=str(index.digest) if index else None,
        platform=str(chosen.platform) if chosen and chosen.platform else None,
        config_digest=str(config_desc.digest) if config_desc else None,
        layers=[{"digest": str(d.digest), "size": d.size, "mediaType": d.media_type} for d in layers],
        bytes=sum(sizes) + (len(config) if config and isinstance(manifest, ImageManifest) else 0),
        timings=timings,
    )
