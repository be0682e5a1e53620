"""A small in-memory fake of a registry's HTTP behaviour, for unit tests of protocol pieces.

``FakeRegistry`` is a ``MemoryTransport`` handler: blobs and manifests live in dicts, upload
sessions keep their bytes and offsets, and registry quirks that the real ``docker-registry``
(CNCF distribution 2.8) never shows are plain attributes set by the test::

    fake = FakeRegistry(upload_host="http://uploads.test:9000", upload_state=True)
    client = fake.client()
    push_blob(client, fake.ref("app:1"), BytesBlob(...), PushOptions("chunked", chunk_size=100))
    fake.requests        # every request the client sent, bodies included (MemoryTransport's record)
    fake.issued          # every upload Location the fake handed out, in order

The fake is strict where the spec is: an upload request must use the exact URL of the latest
``Location`` (a stale one is answered 404 ``BLOB_UPLOAD_UNKNOWN``), a commit must be that URL
plus ``digest=`` appended to its query, and ``Content-Range`` must be ``start-end`` at the
session's offset. Errors use the spec's body ``{"errors": [{"code", "message"}]}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from regload import mediatypes as mt
from regload.auth import Authenticator, Credentials
from regload.client import NULL_OBSERVER, Observer, RegistryClient
from regload.digest import Digest
from regload.http import Request, resolve_url
from regload.manifest import Descriptor, build_manifest
from regload.reference import Reference, Registry, parse_reference
from regload.transports.memory import MemoryTransport, RecordedRequest, Reply

BASE = "http://reg.test"
REALM = "http://auth.test/token"
SERVICE = "reg.test"

_UPLOAD = re.compile(r"^(?P<repo>.+?)/blobs/uploads/(?P<sid>[^/]*)(?:/(?P<step>\d+))?$")
_BLOB = re.compile(r"^(?P<repo>.+?)/blobs/(?P<digest>[^/]+)$")
_MANIFEST = re.compile(r"^(?P<repo>.+?)/manifests/(?P<ref>[^/]+)$")
_TAGS = re.compile(r"^(?P<repo>.+?)/tags/list$")
_CONTENT_RANGE = re.compile(r"^(\d+)-(\d+)$")


def error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A spec error reply (distribution-spec "Error Codes")."""
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return status, (("Content-Type", "application/json"), *headers), body


@dataclass
class Upload:
    repo: str
    sid: str
    data: bytearray = field(default_factory=bytearray)
    step: int = 0
    url: str = ""  # the absolute URL the next request of this session must use


@dataclass
class Event:
    name: str
    method: str
    status: int | None
    length: int
    error: BaseException | None


class RecordingObserver:
    """An ``Observer`` that keeps every report, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_request(
        self, name: str, method: str, elapsed: float, status: int | None, length: int, error: BaseException | None
    ) -> None:
        self.events.append(Event(name, method, status, length, error))

    def names(self) -> list[str]:
        return [e.name for e in self.events]


@dataclass
class FakeRegistry:
    # -- quirks --------------------------------------------------------------------------------
    upload_host: str | None = None  # absolute upload Locations on this origin; None: relative ones
    location_form: str = "path"  # relative Locations: "path" (/v2/…/uploads/s1) or "relative" (s1)
    upload_state: bool = False  # Location carries ``?_state=…``, new on every response (distribution)
    moving_location: bool = False  # the Location's path changes on every response too
    chunk_min_length: int | None = None  # ``OCI-Chunk-Min-Length`` on the POST answer
    range_prefix: str = ""  # "bytes=" for registries that answer ``Range: bytes=0-N``
    single_post: bool = True  # 201 to ``POST ?digest=`` with the body; False: 202 + a session
    mount_enabled: bool = True  # False: every mount is answered 202 with a new session
    blob_put_status: int = 201  # some registries answer the commit PUT with 204
    patch_faults: dict[int, int] = field(default_factory=dict)  # nth PATCH (from 1) → keep N bytes, answer 416
    redirect_blobs: str | None = None  # blob GETs answer 307 to ``<this>/blobs/<digest>``
    redirect_loop: bool = False  # blob GETs answer 307 to themselves (the fake gives up after 50)
    serve_instead: dict[str, bytes] = field(default_factory=dict)  # digest → bytes a blob GET sends
    manifest_digest_header: str | None = "auto"  # "auto": the true digest; None: omit; else this
    tags_page_size: int | None = None  # page size when the client sends no ``n``
    link_absolute: bool = False  # tags ``Link`` as an absolute URL instead of a path
    auth: str | None = None  # None, "basic" or "bearer"
    credentials: tuple[str, str] | None = None  # what basic auth (or the token server) accepts
    token_ok: bool = True  # False: the registry refuses every token it is shown
    intercept: Callable[[Request, bytes], Reply | None] | None = None  # a test's one-off answers
    # -- state ---------------------------------------------------------------------------------
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, digest) → bytes
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)  # (repo, ref) → (type, bytes)
    uploads: dict[str, Upload] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # upload Locations handed out, as sent
    tokens: list[str] = field(default_factory=list)
    patches: int = 0
    loop_hops: int = 0

    def __post_init__(self) -> None:
        self.transport = MemoryTransport(self)

    # -- helpers for tests -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.transport.requests

    def named(self, name: str) -> list[RecordedRequest]:
        """The recorded requests whose stats name is ``name``."""
        return [r for r in self.requests if r.name == name]

    def client(
        self,
        *,
        observer: Observer = NULL_OBSERVER,
        credentials: Credentials | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> RegistryClient:
        return RegistryClient(
            Registry(BASE), self.transport, auth=Authenticator(credentials), headers=headers, observer=observer
        )

    def ref(self, text: str) -> Reference:
        return parse_reference(text, registry=Registry(BASE))

    def add_blob(self, repo: str, data: bytes) -> Digest:
        digest = Digest.of(data)
        self.blobs[(repo, str(digest))] = data
        return digest

    def add_image(
        self, repo: str, tag: str, layers: list[bytes], config: bytes = b'{"architecture":"amd64","os":"linux"}'
    ) -> bytes:
        """Store an OCI image under ``repo:tag``; returns the manifest bytes."""
        config_desc = Descriptor(mt.OCI_CONFIG, self.add_blob(repo, config), len(config))
        layer_descs = [Descriptor(mt.OCI_LAYER_GZIP, self.add_blob(repo, data), len(data)) for data in layers]
        raw = build_manifest(mt.OCI_MANIFEST, config_desc, layer_descs)
        self.manifests[(repo, tag)] = self.manifests[(repo, str(Digest.of(raw)))] = (mt.OCI_MANIFEST, raw)
        return raw

    # -- the handler -------------------------------------------------------------------------------

    def __call__(self, request: Request, body: bytes) -> Reply:
        if self.intercept is not None:
            reply = self.intercept(request, body)
            if reply is not None:
                return reply
        url = urlsplit(request.url)
        origin = f"{url.scheme}://{url.netloc}"
        if request.url.startswith(REALM):
            return self._token(request)
        if self.redirect_blobs and request.url.startswith(self.redirect_blobs + "/blobs/"):
            return self._storage(request, url.path.rsplit("/", 1)[1])
        if origin not in (BASE, self.upload_host):
            raise AssertionError(f"FakeRegistry: request to an unknown host {request.url}")
        if origin == BASE and (denied := self._check_auth(request)) is not None:
            return denied
        if not url.path.startswith("/v2/"):
            return error(404, "NOT_FOUND", "not an API path")
        path = url.path[len("/v2/") :]
        query = parse_qs(url.query)
        if path == "":
            return 200, (), b"{}"
        if m := _UPLOAD.match(path):
            return self._upload(request, body, m["repo"], m["sid"], query)
        if m := _BLOB.match(path):
            return self._blob(request, m["repo"], unquote(m["digest"]))
        if m := _MANIFEST.match(path):
            return self._manifest(request, body, m["repo"], unquote(m["ref"]))
        if m := _TAGS.match(path):
            return self._tags(m["repo"], query)
        return error(404, "NOT_FOUND", "no such endpoint")

    # -- authentication (distribution docs/spec/auth/token.md) ------------------------------------

    def _check_auth(self, request: Request) -> Reply | None:
        given = request.header("Authorization") or ""
        if self.auth == "basic":
            if self.credentials and given == Credentials(*self.credentials).basic_header():
                return None
            return error(401, "UNAUTHORIZED", "authentication required", (("WWW-Authenticate", 'Basic realm="fake"'),))
        if self.auth == "bearer":
            if self.token_ok and given.removeprefix("Bearer ") in self.tokens:
                return None
            m = re.match(r"^/v2/(.+?)/(?:blobs|manifests|tags)/", urlsplit(request.url).path)
            actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
            scope = f',scope="repository:{m[1]}:{actions}"' if m else ""
            challenge = f'Bearer realm="{REALM}",service="{SERVICE}"{scope}'
            return error(401, "UNAUTHORIZED", "authentication required", (("WWW-Authenticate", challenge),))
        return None

    def _token(self, request: Request) -> Reply:
        if self.credentials:
            given = request.header("Authorization") or ""
            if given != Credentials(*self.credentials).basic_header():
                return 401, (), b""
        token = f"tok{len(self.tokens) + 1}"
        self.tokens.append(token)
        return 200, (("Content-Type", "application/json"),), json.dumps({"token": token, "expires_in": 300}).encode()

    # -- blobs -------------------------------------------------------------------------------------------

    def _blob(self, request: Request, repo: str, digest: str) -> Reply:
        data = self.blobs.get((repo, digest))
        if data is None:
            return error(404, "BLOB_UNKNOWN", "blob unknown")
        if request.method == "GET" and self.redirect_loop:
            self.loop_hops += 1
            if self.loop_hops > 50:
                raise AssertionError("FakeRegistry: the client follows a redirect loop without end")
            return 307, (("Location", request.url),), b""
        if request.method == "GET" and self.redirect_blobs:
            return 307, (("Location", f"{self.redirect_blobs}/blobs/{digest}"),), b""
        return self._blob_content(request, digest, data)

    def _storage(self, request: Request, digest: str) -> Reply:
        """Object storage a blob GET is redirected to: no registry auth, any host."""
        data = next((d for (_, dg), d in self.blobs.items() if dg == digest), None)
        if data is None:
            return 404, (), b"NoSuchKey"
        return self._blob_content(request, digest, data)

    def _blob_content(self, request: Request, digest: str, data: bytes) -> Reply:
        sent = self.serve_instead.get(digest, data) if request.method == "GET" else data
        headers = (
            ("Content-Length", str(len(sent))),
            ("Docker-Content-Digest", digest),
            ("Content-Type", "application/octet-stream"),
        )
        return 200, headers, sent

    # -- uploads (distribution-spec "Pushing blobs") --------------------------------------------------

    def _upload(self, request: Request, body: bytes, repo: str, sid: str, query: dict[str, list[str]]) -> Reply:
        if request.method == "POST" and sid == "":
            return self._post(request, body, repo, query)
        upload = self.uploads.get(sid)
        if upload is None:
            return error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
        if request.method == "PUT":
            prefix = upload.url + ("&" if "?" in upload.url else "?") + "digest="
            if not request.url.startswith(prefix):
                return error(404, "BLOB_UPLOAD_UNKNOWN", "commit is not the latest Location plus digest=")
            return self._commit(upload, body, unquote(request.url[len(prefix) :]))
        if request.url != upload.url:
            return error(404, "BLOB_UPLOAD_UNKNOWN", "not the latest Location of this upload")
        if request.method == "PATCH":
            return self._patch(request, body, upload)
        if request.method == "GET":
            return self._session_reply(upload, 204)
        return error(405, "UNSUPPORTED", "method not allowed")

    def _post(self, request: Request, body: bytes, repo: str, query: dict[str, list[str]]) -> Reply:
        if "mount" in query and "from" in query and self.mount_enabled:
            digest, source = query["mount"][0], query["from"][0]
            if (source, digest) in self.blobs:
                self.blobs[(repo, digest)] = self.blobs[(source, digest)]
                return 201, (("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)), b""
        if "digest" in query and self.single_post:
            digest = query["digest"][0]
            if str(Digest.of(body)) != digest:
                return error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
            self.blobs[(repo, digest)] = body
            return 201, (("Location", f"/v2/{repo}/blobs/{digest}"), ("Docker-Content-Digest", digest)), b""
        sid = f"s{len(self.uploads) + 1}"
        upload = self.uploads[sid] = Upload(repo, sid)
        extra = (("OCI-Chunk-Min-Length", str(self.chunk_min_length)),) if self.chunk_min_length else ()
        return self._session_reply(upload, 202, extra, request.url)

    def _patch(self, request: Request, body: bytes, upload: Upload) -> Reply:
        self.patches += 1
        if self.patches in self.patch_faults:
            # The registry kept part (or all) of the chunk, but the client never got the answer:
            # it must GET the session's status and go on from the registry's offset.
            upload.data += body[: self.patch_faults[self.patches]]
            return error(416, "BLOB_UPLOAD_INVALID", "requested range not satisfiable")
        content_range = request.header("Content-Range")
        if content_range is not None:
            m = _CONTENT_RANGE.match(content_range)
            if m is None:
                return error(400, "BLOB_UPLOAD_INVALID", f"bad Content-Range {content_range!r}")
            start, end = int(m[1]), int(m[2])
            if start != len(upload.data):
                return error(416, "BLOB_UPLOAD_INVALID", "requested range not satisfiable")
            if end - start + 1 != len(body):
                return error(400, "BLOB_UPLOAD_INVALID", "Content-Range does not match the body")
        upload.data += body
        return self._session_reply(upload, 202)

    def _commit(self, upload: Upload, body: bytes, digest: str) -> Reply:
        upload.data += body
        if str(Digest.of(bytes(upload.data))) != digest:
            return error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        self.blobs[(upload.repo, digest)] = bytes(upload.data)
        del self.uploads[upload.sid]
        headers = (("Location", f"/v2/{upload.repo}/blobs/{digest}"), ("Docker-Content-Digest", digest))
        return self.blob_put_status, headers, b""

    def _session_reply(
        self, upload: Upload, status: int, extra: tuple[tuple[str, str], ...] = (), base: str | None = None
    ) -> Reply:
        """An answer about an open session: a new Location (per the quirks) and ``Range``."""
        upload.step += 1
        location = f"/v2/{upload.repo}/blobs/uploads/{upload.sid}"
        if self.location_form == "relative":  # relative to the collection URL and to itself
            assert not self.moving_location and not self.upload_host, "a relative Location cannot move"
            location = upload.sid
        if self.moving_location:
            location += f"/{upload.step}"
        if self.upload_state:
            location += f"?_state={upload.sid}.{upload.step}"
        if self.upload_host:
            location = self.upload_host + location
        upload.url = resolve_url(base or upload.url, location)
        self.issued.append(location)
        # distribution answers "0-0" for an empty session too (blobupload.go): keep that quirk.
        last = max(len(upload.data) - 1, 0)
        headers = (
            ("Location", location),
            ("Range", f"{self.range_prefix}0-{last}"),
            ("Docker-Upload-UUID", upload.sid),
            *extra,
        )
        return status, headers, b""

    # -- manifests and tags -------------------------------------------------------------------------

    def _manifest(self, request: Request, body: bytes, repo: str, reference: str) -> Reply:
        if request.method == "PUT":
            media_type = request.header("Content-Type") or ""
            digest = str(Digest.of(body))
            self.manifests[(repo, reference)] = self.manifests[(repo, digest)] = (media_type, body)
            return 201, (("Location", f"/v2/{repo}/manifests/{digest}"), ("Docker-Content-Digest", digest)), b""
        found = self.manifests.get((repo, reference))
        # distribution answers 404 for an OCI manifest the Accept fields do not name (it reads every field).
        accepted = ", ".join(v for n, v in request.headers if n.lower() == "accept")
        if found is None or found[0] not in accepted:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        media_type, raw = found
        headers = [("Content-Type", media_type), ("Content-Length", str(len(raw)))]
        said = str(Digest.of(raw)) if self.manifest_digest_header == "auto" else self.manifest_digest_header
        if said is not None:
            headers.append(("Docker-Content-Digest", said))
        return 200, headers, raw

    def _tags(self, repo: str, query: dict[str, list[str]]) -> Reply:
        tags = sorted({ref for (r, ref) in self.manifests if r == repo and not ref.startswith("sha256:")})
        if "last" in query:
            tags = [t for t in tags if t > query["last"][0]]
        n = int(query["n"][0]) if "n" in query else self.tags_page_size
        headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
        if n is not None and len(tags) > n:
            tags = tags[:n]
            link = f"/v2/{repo}/tags/list?n={n}&last={tags[-1]}"
            headers.append(("Link", f'<{BASE + link if self.link_absolute else link}>; rel="next"'))
        return 200, headers, json.dumps({"name": repo, "tags": tags}).encode()
