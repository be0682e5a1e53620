"""The push flow: every layer and the config as blobs (skipped when present, mounted when
asked, otherwise uploaded in the chosen mode), then the manifest by its exact bytes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .. import endpoints
from ..client import RegistryClient
from ..concurrency import Runner
from ..digest import Digest, Tally
from ..errors import DigestMismatch, ProtocolError, RegistryError, UsageError
from ..manifest import Descriptor, build_manifest
from ..reference import Reference
from ..sources.base import BlobSource, CompressedWhileSent, SourceImage, StreamDigestedBlob
from ..streams import Count, checked, regrouped

UPLOAD_MODES = ("monolithic", "streamed", "chunked", "single-post")
EXISTENCE_CHECKS = ("always", "known")  # HEAD every blob first, or only one whose digest is remembered
MANIFEST_CHECKS = (None, "first", "before-put")
DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class PushOptions:
    upload_mode: str = "streamed"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    jobs: int = 5  # docker's default max-concurrent-uploads
    mount_from: str | None = None
    check_existing: bool = True  # HEAD each blob first and skip the ones the registry has
    # "always": HEAD each blob first; "known" (docker): only a layer whose digest is remembered
    # from an earlier push of its content (the digest cache; docker's v2 metadata), and the config.
    existence: str = "always"
    ping: bool = True  # GET /v2/ first (containerd does not)
    config_with_layers: bool = False  # the config as one of the jobs (queued last), not after the layers
    head_after_commit: bool = False  # HEAD each blob once committed or mounted (docker's blob writer)
    patch_length: bool = True  # a streamed PATCH announces its length; False: chunked (docker)
    # HEAD the manifest by tag: "first", before any blob, and the push ends there when the registry
    # has this very manifest (crane); "before-put", and no PUT when it has it (containerd).
    manifest_check: str | None = None
    typed_accept: bool = False  # HEADs send ``Accept: <media type>, */*`` (containerd)

    def __post_init__(self) -> None:
        if self.upload_mode not in UPLOAD_MODES:
            raise UsageError(f"unknown upload mode {self.upload_mode!r}: choose one of {', '.join(UPLOAD_MODES)}")
        if self.chunk_size < 1:
            raise UsageError("the chunk size must be at least 1 byte")
        if self.existence not in EXISTENCE_CHECKS or self.manifest_check not in MANIFEST_CHECKS:
            raise UsageError(f"unknown existence check {self.existence!r} or manifest check {self.manifest_check!r}")


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
    pushed = _push_blob(client, ref, blob, options, progress)
    if options.head_after_commit and pushed.action != "exists":
        # distribution's client Stats a blob once its upload is committed or it is mounted
        # (registry/client/blob_writer.go:139, repository.go:750, as moby vendors them).
        _head(client, ref, pushed.descriptor, options)
    return pushed


def _head(client: RegistryClient, ref: Reference, desc: Descriptor, options: PushOptions) -> bool:
    """HEAD ``desc`` in the repository: whether the registry has it, of its size."""
    accept = f"{desc.media_type}, */*" if options.typed_accept else None
    size = endpoints.head_blob(client, ref, desc.digest, endpoints.push_scope(ref), accept)
    return size is not None and size in (desc.size, -1)


def _push_blob(
    client: RegistryClient, ref: Reference, blob: BlobSource, options: PushOptions, progress: ProgressFn | None
) -> BlobPushed:
    desc = blob.known_descriptor()
    needs_digest = bool(options.mount_from) or options.upload_mode in ("monolithic", "single-post")
    check_known = options.check_existing and options.existence == "always"
    if desc is None and options.check_existing and not needs_digest and isinstance(blob, CompressedWhileSent):
        # As docker does (moby distribution/push_v2.go, pushDescriptor.Upload): a layer whose compressed
        # digest is not known yet is compressed while it uploads, not compressed first to ask
        # for it; a digest an earlier run found for the same content is asked for first.
        likely = blob.likely_descriptor()
        if likely is not None and _head(client, ref, likely, options):
            return BlobPushed(likely, "exists", 0)
    elif desc is None and (check_known or needs_digest):
        desc = blob.descriptor()  # these paths need the digest before sending any data
    if desc is not None and check_known and _head(client, ref, desc, options):
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
        length = desc.size if desc is not None and options.patch_length else None
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


def _manifest_there(
    client: RegistryClient, ref: Reference, digest: Digest | None, image: SourceImage, options: PushOptions
) -> bool:
    """HEAD the manifest by the reference: whether the registry holds this very one (answered
    with ``digest``; a 403 or 404 is "not there", as go-containerregistry reads it)."""
    accept = (f"{image.manifest_media_type}, */*",) if options.typed_accept else endpoints.MANIFEST_ACCEPT
    head = endpoints.head_manifest(client, ref, ref.reference, accept, refused=(403,))
    return head is not None and digest is not None and head.digest == digest


def _already_there(
    client: RegistryClient, ref: Reference, image: SourceImage, options: PushOptions
) -> PushResult | None:
    """crane's first step: HEAD the manifest, and push nothing when the registry has it. Its
    digest is known up front only when every blob's is (an OCI layout, a docker-save tarball
    hashed before); otherwise the HEAD is sent and the push goes on."""
    descriptors = [b.known_descriptor() for b in (*image.layers, image.config)]
    known = [d for d in descriptors if d is not None]
    raw = manifest_bytes(image, known[-1], known[:-1]) if len(known) == len(descriptors) else None
    digest = Digest.of(raw) if raw is not None else None
    if not _manifest_there(client, ref, digest, image, options) or raw is None:
        return None
    blobs = [BlobPushed(d, "exists", 0) for d in known]
    return PushResult(str(ref), str(digest), image.manifest_media_type, blobs, 0, manifest_size=len(raw))


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
    if options.manifest_check == "first" and (whole := _already_there(client, ref, image, options)) is not None:
        whole.timings["total"] = clock() - started
        return whole
    blobs_first = list(image.layers) + ([image.config] if options.config_with_layers else [])
    layers = runner.map(lambda blob: push_blob(client, ref, blob, options, progress), blobs_first, max(1, options.jobs))
    timings["layers"] = clock() - started
    if options.config_with_layers:
        config = layers.pop()
    else:
        t = clock()
        # docker's manifest builder Stats the config before it puts it (distribution
        # manifest/schema2/builder.go:51), whatever it knows of the layers.
        as_config = options if options.existence == "always" else replace(options, existence="always")
        config = push_blob(client, ref, image.config, as_config, progress)
        timings["config"] = clock() - t
    raw = manifest_bytes(image, config.descriptor, [b.descriptor for b in layers])
    digest = Digest.of(raw)
    if ref.digest is not None and ref.digest != digest:
        raise UsageError(f"the image's manifest digest is {digest}, not the {ref.digest} of the reference")
    t = clock()
    if options.manifest_check != "before-put" or not _manifest_there(client, ref, digest, image, options):
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
