"""The push flow: every layer and the config as blobs (skipped when present, mounted when
asked, otherwise uploaded in the chosen mode), then the manifest by its exact bytes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import endpoints
from .client import RegistryClient
from .concurrency import Runner
from .digest import Digest, Tally
from .errors import DigestMismatch, ProtocolError, RegistryError, UsageError
from .manifest import Descriptor, build_manifest
from .reference import Reference
from .sources.base import BlobSource, CompressedWhileSent, SourceImage, StreamDigestedBlob
from .streams import Count, checked, regrouped

UPLOAD_MODES = ("monolithic", "streamed", "chunked", "single-post")
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class PushOptions:
    upload_mode: str = "streamed"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    jobs: int = 5  # docker's default max-concurrent-uploads
    mount_from: str | None = None
    check_existing: bool = True  # HEAD each blob first and skip the ones the registry has
    ping: bool = True  # GET /v2/ first (containerd does not)
    config_with_layers: bool = False  # the config as one of the jobs, not after the layers

    def __post_init__(self) -> None:
        if self.upload_mode not in UPLOAD_MODES:
            raise UsageError(f"unknown upload mode {self.upload_mode!r}: choose one of {', '.join(UPLOAD_MODES)}")
        if self.chunk_size < 1:
            raise UsageError("the chunk size must be at least 1 byte")


@dataclass(frozen=True)
class BlobPushed:
    descriptor: Descriptor
    action: str  # "exists", "mounted" or "uploaded"
    sent: int  # bytes of blob data sent (0 when skipped or mounted)


@dataclass
class PushResult:
    reference: str
    manifest_digest: str
    media_type: str
    blobs: list[BlobPushed]
    bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    manifest_size: int = 0  # bytes of the pushed manifest


def push_blob(
    client: RegistryClient, ref: Reference, blob: BlobSource, options: PushOptions, progress: ProgressFn | None = None
) -> BlobPushed:
    """Push one blob unless the registry has it already or can mount it."""
    desc = blob.known_descriptor()
    needs_digest = bool(options.mount_from) or options.upload_mode in ("monolithic", "single-post")
    if desc is None and options.check_existing and not needs_digest and isinstance(blob, CompressedWhileSent):
        # As docker does (moby distribution/push_v2.go, pushDescriptor.Upload): a layer whose compressed
        # digest is not known yet is compressed while it uploads, not compressed first to ask
        # for it; a digest an earlier run found for the same content is asked for first.
        likely = blob.likely_descriptor()
        if likely is not None:
            size = endpoints.head_blob(client, ref, likely.digest, endpoints.push_scope(ref))
            if size is not None and size in (likely.size, -1):
                return BlobPushed(likely, "exists", 0)
    elif desc is None and (options.check_existing or needs_digest):
        desc = blob.descriptor()  # these paths need the digest before sending any data
    if desc is not None and options.check_existing:
        size = endpoints.head_blob(client, ref, desc.digest, endpoints.push_scope(ref))
        if size is not None and size in (desc.size, -1):
            return BlobPushed(desc, "exists", 0)
    session = None
    if desc is not None and options.mount_from:
        session = endpoints.mount_blob(client, ref, desc.digest, options.mount_from)
        if session is None:
            return BlobPushed(desc, "mounted", 0)
    mode = options.upload_mode
    if mode == "single-post":
        assert desc is not None
        if session is None:
            session = endpoints.post_single(client, ref, desc.digest, checked(blob.open(), Count(progress)), desc.size)
            if session is None:
                return BlobPushed(desc, "uploaded", desc.size)
        # A session is open: the registry answered the single POST with 202 (distribution ignores
        # its body), or a mount with 202. Send the body in one PUT on it.
        mode = "monolithic"
    if session is None:
        session = endpoints.start_upload(client, ref)
    if mode == "monolithic":
        assert desc is not None
        endpoints.put_upload(client, ref, session, desc.digest, checked(blob.open(), Count(progress)), desc.size)
        return BlobPushed(desc, "uploaded", desc.size)
    # Hash here only when the digest is unknown and the source does not compute it itself
    # while it streams (a ``StreamDigestedBlob``: a synthetic layer, a file blob). A known
    # descriptor is not hashed again: a source checks its content against its descriptor on its
    # first pass (or derived the descriptor from the very bytes it serves), and the registry
    # verifies the digest of the final PUT anyway. Each extra sha256 pass cost ~1 s per GiB.
    hasher = Tally() if desc is None and not isinstance(blob, StreamDigestedBlob) else None
    sent = Count(progress)
    stream = checked(blob.open(), sent, *([hasher] if hasher else []))
    if mode == "streamed":
        length = desc.size if desc is not None else None
        session = endpoints.patch_upload(client, ref, session, stream, length, content_range=False)
    else:
        session = _upload_chunks(client, ref, session, stream, options.chunk_size)
    if desc is None:
        desc = Descriptor(blob.media_type, hasher.digest(), sent.size) if hasher else blob.known_descriptor()
        if desc is None:
            raise ProtocolError(f"{blob.media_type} source streamed without learning its digest")
    if sent.size != desc.size:
        raise DigestMismatch(f"blob {desc.digest.short}: the source produced {sent.size} bytes, not {desc.size}")
    # distribution answers "Range: 0-0" for an empty session too, so an empty blob is not checked.
    if sent.size and session.offset != sent.size:
        raise ProtocolError(f"upload session holds {session.offset} bytes, {sent.size} were sent")
    endpoints.put_upload(client, ref, session, desc.digest)
    return BlobPushed(desc, "uploaded", sent.size)


def _upload_chunks(
    client: RegistryClient,
    ref: Reference,
    session: endpoints.UploadSession,
    stream: Iterable[bytes | memoryview],
    chunk_size: int,
) -> endpoints.UploadSession:
    """Spec chunked upload: PATCH chunks with ``Content-Range``, each at least the registry's
    ``OCI-Chunk-Min-Length`` (but the last). On 416 the registry and we disagree on the offset:
    GET the session status and resend from the registry's offset when the data is still held."""
    size = max(chunk_size, session.min_chunk)
    for chunk in regrouped(stream, size):
        start = session.offset
        try:
            session = endpoints.patch_upload(client, ref, session, chunk, len(chunk), content_range=True)
        except RegistryError as e:
            if e.status != 416:
                raise
            session = endpoints.upload_status(client, ref, session)
            skip = session.offset - start
            if not 0 <= skip <= len(chunk):
                raise ProtocolError(
                    f"upload out of step: the registry holds {session.offset} bytes, this chunk starts at {start}"
                ) from None
            if skip < len(chunk):
                rest = chunk[skip:]
                session = endpoints.patch_upload(client, ref, session, rest, len(rest), content_range=True)
    return session


def manifest_bytes(image: SourceImage, config: Descriptor, layers: list[Descriptor]) -> bytes:
    if image.manifest is not None:
        return image.manifest
    return build_manifest(image.manifest_media_type, config, layers)


def push(
    client: RegistryClient,
    ref: Reference,
    image: SourceImage,
    runner: Runner,
    options: PushOptions = PushOptions(),
    progress: ProgressFn | None = None,
) -> PushResult:
    """Push ``image`` to ``ref`` (a tag, or a digest that must equal the manifest's)."""
    clock = time.perf_counter
    started = clock()
    timings: dict[str, float] = {}
    if options.ping:
        client.ping()
    client.prepare(endpoints.push_scope(ref, *filter(None, [options.mount_from])))
    blobs_first = list(image.layers) + ([image.config] if options.config_with_layers else [])
    layers = runner.map(lambda blob: push_blob(client, ref, blob, options, progress), blobs_first, max(1, options.jobs))
    timings["layers"] = clock() - started
    if options.config_with_layers:
        config = layers.pop()
    else:
        t = clock()
        config = push_blob(client, ref, image.config, options, progress)
        timings["config"] = clock() - t
    raw = manifest_bytes(image, config.descriptor, [b.descriptor for b in layers])
    digest = Digest.of(raw)
    if ref.digest is not None and ref.digest != digest:
        raise UsageError(f"the image's manifest digest is {digest}, not the {ref.digest} of the reference")
    t = clock()
    endpoints.put_manifest(client, ref, ref.reference, raw, image.manifest_media_type)
    timings["manifest"] = clock() - t
    timings["total"] = clock() - started
    blobs = [*layers, config]
    return PushResult(
        str(ref),
        str(digest),
        image.manifest_media_type,
        blobs,
        sum(b.sent for b in blobs) + len(raw),
        timings,
        len(raw),
    )
