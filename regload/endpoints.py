"""One request builder and one response check per registry endpoint (OCI distribution-spec).

Every function takes a ``RegistryClient`` and a ``Reference`` and returns plain values; the
stats name of each request is the spec's path template, never a URL with digests or sessions.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from . import mediatypes as mt
from .auth import repository_scope
from .client import PING as PING  # the ping is the client's; its stats name is listed here with the others
from .client import ObservedResponse, RegistryClient, expect_header
from .digest import Digest
from .errors import DigestMismatch, InvalidDigest, ManifestError, ProtocolError, RegloadError
from .http import Body, Request, add_query, read_bounded, resolve_url
from .manifest import MAX_MANIFEST_BYTES, digested_bytes
from .reference import Reference

HEAD_MANIFEST = "HEAD /v2/<name>/manifests/<reference>"
GET_MANIFEST = "GET /v2/<name>/manifests/<reference>"
PUT_MANIFEST = "PUT /v2/<name>/manifests/<reference>"
HEAD_BLOB = "HEAD /v2/<name>/blobs/<digest>"
GET_BLOB = "GET /v2/<name>/blobs/<digest>"
POST_UPLOAD = "POST /v2/<name>/blobs/uploads/"
POST_MOUNT = "POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>"
POST_SINGLE = "POST /v2/<name>/blobs/uploads/?digest=<digest>"
PATCH_UPLOAD = "PATCH /v2/<name>/blobs/uploads/<session>"
PUT_UPLOAD = "PUT /v2/<name>/blobs/uploads/<session>?digest=<digest>"
GET_UPLOAD = "GET /v2/<name>/blobs/uploads/<session>"
GET_TAGS = "GET /v2/<name>/tags/list"

OCTET_STREAM = "application/octet-stream"


def pull_scope(ref: Reference) -> tuple[str, ...]:
    scope = _PULL_SCOPES.get(ref.repository)
    if scope is None:
        if len(_PULL_SCOPES) >= 4096:
            _PULL_SCOPES.clear()
        scope = _PULL_SCOPES[ref.repository] = (repository_scope(ref.repository, "pull"),)
    return scope


_PULL_SCOPES: dict[str, tuple[str, ...]] = {}  # every request of a pull names its scope


def push_scope(ref: Reference, *mount_from: str) -> tuple[str, ...]:
    return (repository_scope(ref.repository, "pull", "push"), *(repository_scope(r, "pull") for r in mount_from))


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    raw: bytes
    media_type: str | None
    digest: Digest


# The manifest Accept header as regload sends it: one field listing every type.
MANIFEST_ACCEPT: tuple[str, ...] = (mt.MANIFEST_ACCEPT,)


def _accept(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """One ``Accept`` field per value, in order (containers/image sends a field per type)."""
    return tuple(("Accept", value) for value in values)


def get_manifest(
    client: RegistryClient, ref: Reference, reference: str | None = None, accept: tuple[str, ...] = MANIFEST_ACCEPT
) -> FetchedManifest:
    """GET a manifest, verifying its digest when asked by digest, and recording the registry's
    ``Docker-Content-Digest`` (absent on some registries) only to check it when present.
    ``accept``: the values of its ``Accept`` fields, one field each."""
    reference = reference or ref.reference
    request = Request("GET", ref.manifest_url(reference), GET_MANIFEST, _accept(accept))
    with client.send(request, pull_scope(ref)) as response:
        data = read_bounded(response, MAX_MANIFEST_BYTES)
        try:
            if len(data) > MAX_MANIFEST_BYTES:
                raise ManifestError(f"manifest {ref.repository}:{reference} is larger than {MAX_MANIFEST_BYTES} bytes")
            digested = digested_bytes(data)  # a signed schema 1 manifest: its payload
            digest = Digest.of(digested)
            _check_manifest_digest(digested, digest, reference, response.headers.get("Docker-Content-Digest"))
        except RegloadError as e:
            response.fail(e)
            raise
        return FetchedManifest(data, response.headers.get("Content-Type"), digest)


def _check_manifest_digest(data: bytes, digest: Digest, reference: str, header: str | None) -> None:
    """``digest`` is the sha256 of ``data``; other algorithms are computed when asked for."""
    if reference.startswith(("sha256:", "sha512:")):
        wanted = Digest.parse(reference)
        got = _digest_as(data, digest, wanted.algorithm)
        if got != wanted:
            raise DigestMismatch(f"manifest {wanted.short}: content has digest {got.short}")
    if header:
        try:
            said = Digest.parse(header)
        except InvalidDigest:
            raise ProtocolError(f"{GET_MANIFEST}: invalid Docker-Content-Digest header") from None
        if _digest_as(data, digest, said.algorithm) != said:
            raise DigestMismatch(f"manifest: Docker-Content-Digest {said.short} does not match its content")


def _digest_as(data: bytes, digest: Digest, algorithm: str) -> Digest:
    return digest if algorithm == digest.algorithm else Digest.of(data, algorithm)


@dataclass(frozen=True, slots=True)
class ManifestHead:
    digest: Digest | None
    media_type: str | None
    size: int | None


def head_manifest(
    client: RegistryClient,
    ref: Reference,
    reference: str | None = None,
    accept: tuple[str, ...] = MANIFEST_ACCEPT,
    *,
    refused: Collection[int] = (),
) -> ManifestHead | None:
    """HEAD a manifest: its digest, type and size, or None when the registry does not have it.
    An answer with one of the ``refused`` statuses (a registry that does not serve HEAD) tells
    nothing: a ``ManifestHead`` without digest, type or size."""
    request = Request("HEAD", ref.manifest_url(reference), HEAD_MANIFEST, _accept(accept))
    with client.send(request, pull_scope(ref), expect=(200, 404, *refused)) as response:
        if response.status == 404:
            return None
        if response.status != 200:
            return ManifestHead(None, None, None)
        header = response.headers.get("Docker-Content-Digest")
        length = response.headers.get("Content-Length")
        digest = Digest.parse(header) if header else None
        return ManifestHead(
            digest, response.headers.get("Content-Type"), int(length) if length and length.isdigit() else None
        )


def put_manifest(client: RegistryClient, ref: Reference, reference: str, raw: bytes, media_type: str) -> Digest:
    """PUT manifest bytes exactly as given; returns their digest (checked against the
    registry's ``Docker-Content-Digest`` when it sends one)."""
    digest = Digest.of(raw)
    request = Request("PUT", ref.manifest_url(reference), PUT_MANIFEST, (("Content-Type", media_type),), raw, len(raw))
    with client.send(request, push_scope(ref), expect=(201, 200, 202, 204)) as response:
        said = response.headers.get("Docker-Content-Digest")
        if said and said != str(digest):
            error = DigestMismatch(f"manifest PUT: registry says {said[:19]}, content has digest {digest.short}")
            response.fail(error)
            raise error
    return digest


def head_blob(
    client: RegistryClient,
    ref: Reference,
    digest: Digest,
    scopes: tuple[str, ...] | None = None,
    accept: str | None = None,
) -> int | None:
    """HEAD a blob: its size when the registry has it, None on 404. ``accept``: an ``Accept``
    field to send."""
    request = Request("HEAD", ref.blob_url(digest), HEAD_BLOB, (("Accept", accept),) if accept else ())
    with client.send(request, scopes or pull_scope(ref), expect=(200, 404), follow_redirects=True) as response:
        if response.status == 404:
            return None
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else -1


def get_blob(client: RegistryClient, ref: Reference, digest: Digest, accept: str | None = None) -> ObservedResponse:
    """GET a blob, following redirects (to object storage) ourselves. The caller streams and
    verifies the body and closes the response. ``accept``: an ``Accept`` field to send."""
    request = Request("GET", ref.blob_url(digest), GET_BLOB, (("Accept", accept),) if accept else ())
    return client.send(request, pull_scope(ref), follow_redirects=True)


@dataclass(frozen=True, slots=True)
class UploadSession:
    """An open upload: always use the ``Location`` of the latest response (it may carry state)."""

    location: str
    offset: int = 0
    min_chunk: int = 0  # OCI-Chunk-Min-Length from the POST answer


def _session(response: ObservedResponse, request_url: str, offset: int = 0, min_chunk: int = 0) -> UploadSession:
    location = resolve_url(request_url, expect_header(response, "Location"))
    return UploadSession(location, offset, min_chunk)


def start_upload(client: RegistryClient, ref: Reference) -> UploadSession:
    """POST an empty upload: 202 with a Location for the session."""
    url = ref.uploads_url()
    request = Request("POST", url, POST_UPLOAD, body=b"", content_length=0)
    with client.send(request, push_scope(ref), expect=(202,)) as response:
        min_chunk = response.headers.get("OCI-Chunk-Min-Length", "")
        return _session(response, url, 0, int(min_chunk) if min_chunk.isdigit() else 0)


def mount_blob(client: RegistryClient, ref: Reference, digest: Digest, from_repo: str) -> UploadSession | None:
    """Cross-repository mount (spec: both ``mount`` and ``from``). None when mounted (201);
    a 202 means the registry did not mount and started an ordinary upload session instead."""
    url = add_query(ref.uploads_url(), (("mount", str(digest)), ("from", from_repo)))
    request = Request("POST", url, POST_MOUNT, body=b"", content_length=0)
    with client.send(request, push_scope(ref, from_repo), expect=(201, 202)) as response:
        if response.status == 201:
            return None
        return _session(response, url)


def post_single(client: RegistryClient, ref: Reference, digest: Digest, body: Body, size: int) -> UploadSession | None:
    """Single-POST upload (``?digest=``, spec "single POST"). None when stored (201); a registry
    that does not support it answers 202 with a session, and the caller falls back."""
    url = add_query(ref.uploads_url(), (("digest", str(digest)),))
    request = Request("POST", url, POST_SINGLE, ((("Content-Type", OCTET_STREAM)),), body, size)
    with client.send(request, push_scope(ref), expect=(201, 202)) as response:
        if response.status == 201:
            return None
        return _session(response, url)


def patch_upload(
    client: RegistryClient,
    ref: Reference,
    session: UploadSession,
    body: Body,
    length: int | None,
    *,
    content_range: bool,
) -> UploadSession:
    """PATCH data into a session. With ``content_range`` (spec chunked mode) the chunk carries
    ``Content-Range: start-end`` (inclusive, no unit, no total: distribution-spec "Pushing a blob
    in chunks"); without, it is docker's streamed PATCH of one body of any length. The reply's
    ``Range: 0-end`` gives the new offset."""
    headers = [("Content-Type", OCTET_STREAM)]
    if content_range:
        assert length is not None and length > 0
        headers.append(("Content-Range", f"{session.offset}-{session.offset + length - 1}"))
    request = Request("PATCH", session.location, PATCH_UPLOAD, tuple(headers), body, length)
    with client.send(request, push_scope(ref), expect=(202,)) as response:
        offset = _range_end(response.headers.get("Range"))
        if offset is None:
            offset = session.offset + (length or 0)
        return _session(response, session.location, offset, session.min_chunk)


def upload_status(client: RegistryClient, ref: Reference, session: UploadSession) -> UploadSession:
    """GET the session's status to resync after a 416: the registry's ``Range`` is the truth."""
    request = Request("GET", session.location, GET_UPLOAD)
    with client.send(request, push_scope(ref), expect=(204, 200)) as response:
        offset = _range_end(response.headers.get("Range")) or 0
        return _session(response, session.location, offset, session.min_chunk)


def put_upload(
    client: RegistryClient, ref: Reference, session: UploadSession, digest: Digest, body: Body = b"", length: int = 0
) -> None:
    """Commit a session with ``PUT <location>&digest=`` (the location's own query is kept),
    optionally with the last data (monolithic upload). 201 per spec; 204 accepted too."""
    url = add_query(session.location, (("digest", str(digest)),))
    request = Request("PUT", url, PUT_UPLOAD, (("Content-Type", OCTET_STREAM),), body, length)
    with client.send(request, push_scope(ref), expect=(201, 204)) as response:
        said = response.headers.get("Docker-Content-Digest")
        if said and said != str(digest):
            error = DigestMismatch(f"blob commit: registry stored {said[:19]}, expected {digest.short}")
            response.fail(error)
            raise error


_RANGE_RE = re.compile(r"^(?:bytes[= ])?0-(\d+)$")


def _range_end(value: str | None) -> int | None:
    """``Range: 0-<last>`` → the next offset (last + 1). Some registries answer ``bytes=0-N``."""
    if not value:
        return None
    m = _RANGE_RE.match(value.strip())
    return int(m.group(1)) + 1 if m else None


# A page of tags held in memory at once: distribution answers every tag in one page unless asked
# for fewer (``n``), ~30 bytes a tag; this is room for half a million.
MAX_TAGS_PAGE = 16 << 20
_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


def list_tags(client: RegistryClient, ref: Reference, page_size: int | None = None) -> Iterator[str]:
    """All tags, page by page (``n``/``last``), following ``Link: <…>; rel="next"``."""
    import json

    url = ref.tags_url()
    if page_size:
        url = add_query(url, (("n", str(page_size)),))
    seen_pages = 0
    while url:
        seen_pages += 1
        if seen_pages > 100_000:
            raise ProtocolError(f"{GET_TAGS}: pagination does not end")
        with client.send(Request("GET", url, GET_TAGS), pull_scope(ref)) as response:
            body = read_bounded(response, MAX_TAGS_PAGE)
            link = response.headers.get("Link")
            if len(body) > MAX_TAGS_PAGE:
                too_large = f"a page of the tag list is larger than {MAX_TAGS_PAGE >> 20} MiB (ask for smaller pages)"
                error = ProtocolError(f"{GET_TAGS}: {too_large}")
                response.fail(error)
                raise error
            try:
                tags = json.loads(body).get("tags") or []
            except (ValueError, AttributeError, RecursionError):  # RecursionError: nested too deeply
                error = ProtocolError(f"{GET_TAGS}: the answer is not a tag list")
                response.fail(error)
                raise error from None
        yield from (t for t in tags if isinstance(t, str))
        m = _LINK_RE.search(link or "")
        url = resolve_url(url, m.group(1)) if m else ""
