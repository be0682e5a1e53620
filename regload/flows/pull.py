"""The pull flow: manifest (resolving an index to one platform), config, then every layer,
each verified against its digest and size while it streams, handed to a sink."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .. import endpoints
from ..blobstore import BlobStore
from ..client import RegistryClient
from ..concurrency import Runner
from ..digest import Digest, Tally
from ..errors import ManifestError, RegistryError, RegloadError, UsageError
from ..manifest import DEFAULT_PLATFORM, Descriptor, ImageManifest, Index, Platform, Schema1Manifest, parse_manifest
from ..reference import Reference
from ..schema1 import schema1_config, schema1_layers
from ..sinks.base import PulledImage, Sink

MAX_CONFIG_BYTES = 64 * 1024 * 1024
CONFIG_ORDERS = ("first", "alongside", "last")
READ_CHUNK = 1 << 20

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class PullOptions:
    platform: Platform = DEFAULT_PLATFORM
    jobs: int = 3  # docker's default max-concurrent-downloads
    verify: bool = True
    # HEAD the manifest, then GET it by digest (docker, containerd); by tag when the HEAD is
    # answered with one of ``head_fallback`` or names no digest.
    head_first: bool = False
    head_fallback: frozenset[int] = frozenset({405})
    ping: bool = True  # GET /v2/ first (containerd does not: its first request is the manifest's)
    manifest_accept: tuple[str, ...] = endpoints.MANIFEST_ACCEPT  # one Accept field per value
    # A GET of something whose type is known (a blob, a manifest by the digest a HEAD or an index
    # gave) sends ``Accept: <its media type>, */*`` instead (containerd).
    typed_accept: bool = False
    # The config "first", before the layers; "alongside" them, outside the jobs (docker); or
    # "last", after them (skopeo copy, crane pull --format oci).
    config_order: str = "first"

    def __post_init__(self) -> None:
        if self.config_order not in CONFIG_ORDERS:
            raise UsageError(f"unknown config order {self.config_order!r}: choose one of {', '.join(CONFIG_ORDERS)}")


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
    client: RegistryClient, ref: Reference, options: PullOptions = PullOptions()
) -> ImageManifest | Schema1Manifest | Index:
    """The reference's manifest or index, parsed. With ``head_first``, a HEAD learns the digest
    and the GET asks for that digest (docker and containerd); a HEAD answered with one of
    ``head_fallback``, or without a ``Docker-Content-Digest``, is followed by a GET of the
    reference itself."""
    reference, accept = None, options.manifest_accept
    if options.head_first:
        head = endpoints.head_manifest(client, ref, accept=accept, refused=tuple(sorted(options.head_fallback)))
        if head is None and 404 not in options.head_fallback:
            raise RegistryError(endpoints.HEAD_MANIFEST, 404, "MANIFEST_UNKNOWN", "manifest unknown")
        if head is not None and head.digest is not None:
            reference = str(head.digest)
            if options.typed_accept and head.media_type:
                accept = (_typed(head.media_type),)
    fetched = endpoints.get_manifest(client, ref, reference, accept)
    return parse_manifest(fetched.raw, fetched.media_type, fetched.digest)


def _typed(media_type: str) -> str:
    """containerd's Accept for a descriptor it fetches (remotes/docker/fetcher.go:249)."""
    return f"{media_type}, */*"


def platform_manifest(
    client: RegistryClient,
    ref: Reference,
    index: Index,
    platform: Platform,
    options: PullOptions = PullOptions(),
) -> tuple[ImageManifest | Schema1Manifest, Descriptor]:
    """GET the manifest an index names for ``platform``: its size must be the index entry's
    (image-spec descriptor.md), and it must not be an index itself."""
    chosen = index.select(platform)
    accept = (_typed(chosen.media_type),) if options.typed_accept else options.manifest_accept
    inner = endpoints.get_manifest(client, ref, str(chosen.digest), accept)
    if len(inner.raw) != chosen.size:
        raise ManifestError(f"manifest {chosen.digest.short} is {len(inner.raw)} bytes, the index says {chosen.size}")
    resolved = parse_manifest(inner.raw, inner.media_type, inner.digest)
    if isinstance(resolved, Index):
        raise ManifestError(f"index entry {chosen.digest.short} for {platform} is itself an index")
    return resolved, chosen


def resolve_manifest(
    client: RegistryClient, ref: Reference, options: PullOptions
) -> tuple[ImageManifest | Schema1Manifest, Index | None, Descriptor | None]:
    """The image manifest to pull: the reference's own, or, when it is an index, the platform's."""
    manifest = fetch_manifest(client, ref, options)
    if not isinstance(manifest, Index):
        return manifest, None, None
    resolved, chosen = platform_manifest(client, ref, manifest, options.platform, options)
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
    accept: bool = False,
) -> int:
    """Stream one blob into ``out`` (or nowhere), verifying digest and size as it arrives.
    Returns the bytes read. A mismatch fails the blob's request with its cause and raises.
    ``accept``: ask for the descriptor's media type, or anything (containerd fetcher.go, Fetch)."""
    verifier = Tally(desc.digest, desc.size if desc.size >= 0 else None, "blob") if verify else None
    size = 0
    wanted = _typed(desc.media_type) if accept else None
    with endpoints.get_blob(client, ref, desc.digest, wanted) as response:
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


def fetch_config(client: RegistryClient, ref: Reference, desc: Descriptor, accept: bool = False) -> bytes:
    """The config blob, in memory and always verified (``--no-verify`` skips layers only)."""
    if desc.size > MAX_CONFIG_BYTES:
        raise ManifestError(f"config {desc.digest.short} is {desc.size} bytes, more than {MAX_CONFIG_BYTES}")
    data = io.BytesIO()
    fetch_blob(client, ref, desc, data, accept=accept)
    return data.getvalue()


def fetch_layer(
    client: RegistryClient,
    ref: Reference,
    desc: Descriptor,
    blobs: BlobStore | None,
    verify: bool = True,
    progress: ProgressFn | None = None,
    accept: bool = False,
) -> int:
    """One layer blob, kept in ``blobs`` under its digest once whole (or dropped)."""
    if blobs is None:
        return fetch_blob(client, ref, desc, None, verify, progress, accept)
    with blobs.receive(desc.digest) as out:
        return fetch_blob(client, ref, desc, out, verify, progress, accept)


def _fetch_blobs(
    client: RegistryClient,
    ref: Reference,
    config_desc: Descriptor | None,
    layers: list[Descriptor],
    blobs: BlobStore | None,
    runner: Runner,
    options: PullOptions,
    progress: ProgressFn | None,
    timings: dict[str, float],
) -> tuple[bytes | None, list[int]]:
    """The config (in memory) and each distinct layer (into ``blobs``), ``jobs`` layers at a
    time; the config before them, after them, or alongside them (a job of its own)."""
    clock = time.perf_counter
    accept = options.typed_accept
    unique = layers if len(layers) < 2 else list({d.digest: d for d in layers}.values())
    config: list[bytes] = []

    def fetch_the_config() -> None:
        if config_desc is not None:
            t = clock()
            config.append(fetch_config(client, ref, config_desc, accept))
            timings["config"] = clock() - t

    def fetch_the_layers() -> None:
        t = clock()
        fetch = lambda desc: fetch_layer(client, ref, desc, blobs, options.verify, progress, accept)  # noqa: E731
        sizes.extend(runner.map(fetch, unique, max(1, options.jobs)))
        timings["layers"] = clock() - t

    sizes: list[int] = []
    if options.config_order == "alongside" and config_desc is not None:
        runner.map(lambda step: step(), [fetch_the_config, fetch_the_layers], 2)
    elif options.config_order == "last":
        fetch_the_layers()
        fetch_the_config()
    else:
        fetch_the_config()
        fetch_the_layers()
    return (config[0] if config else None), sizes


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
        if options.ping:
            client.ping()
        manifest, index, chosen = resolve_manifest(client, ref, options)
        timings["manifest"] = clock() - started

        blobs = sink.blob_store()
        if isinstance(manifest, ImageManifest):
            layers = list(manifest.layers)
            config_desc: Descriptor | None = manifest.config
        else:
            layers = schema1_layers(manifest)
            config_desc = None
        config, sizes = _fetch_blobs(client, ref, config_desc, layers, blobs, runner, options, progress, timings)

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
