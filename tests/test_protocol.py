"""Protocol details against an in-memory fake registry (``tests.support.fake_registry``).

These are the quirks and failure paths the real registry of the end-to-end tests (CNCF
distribution 2.8) never shows: upload Locations on other hosts or carrying state, 416 resyncs,
``OCI-Chunk-Min-Length``, 204 commits, redirects to object storage, broken digests, pagination
links, auth loops. Each test asserts on the exact requests the client sent.
"""

from __future__ import annotations

import random
import string
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from regload import endpoints
from regload import mediatypes as mt
from regload.auth import Credentials, parse_challenges
from regload.client import MAX_REDIRECTS, RegistryClient
from regload.concurrency import SequentialRunner
from regload.digest import Digest
from regload.errors import AuthError, DigestMismatch, InvalidReference, ProtocolError, RegistryError, UsageError
from regload.flows.pull import READ_CHUNK, pull
from regload.flows.push import PushOptions, push, push_blob
from regload.reference import _DOMAIN_RE, _PATH_RE, _TAG_RE, Reference, Registry, parse_reference
from regload.sinks.discard import DiscardSink
from regload.sources.base import BytesBlob, SourceImage
from regload.transports.memory import MemoryTransport
from tests.support.fake_registry import BASE, REALM, FakeRegistry, RecordingObserver

DATA = random.Random(7).randbytes(250)
DIGEST = Digest.of(DATA)


def blob(data: bytes = DATA) -> BytesBlob:
    return BytesBlob(mt.OCI_LAYER_GZIP, data)


def push_one(fake: FakeRegistry, mode: str, *, chunk_size: int = 100, data: bytes = DATA, **options) -> str:
    """Push one blob to ``app`` and check the fake stored exactly it; returns the action."""
    opts = PushOptions(upload_mode=mode, chunk_size=chunk_size, check_existing=False, **options)
    result = push_blob(fake.client(), fake.ref("app:1"), blob(data), opts)
    assert fake.blobs[("app", str(Digest.of(data)))] == data
    return result.action


def wire(fake: FakeRegistry) -> list[str]:
    """``METHOD path?query`` of every request, for readable sequence checks."""
    out = []
    for r in fake.requests:
        u = urlsplit(r.url)
        out.append(f"{r.method} {u.path}" + (f"?{u.query}" if u.query else ""))
    return out


def q(digest: Digest) -> str:
    return quote(str(digest), safe="")


# -- 1. upload Location handling (distribution-spec "Pushing blobs": Location may be anything) --


@pytest.mark.flows
@pytest.mark.parametrize("form", ["path", "relative"])
def test_relative_location_is_resolved_against_the_request_url(form):
    """A relative ``Location`` (distribution sends a path; ``s1`` is legal too, RFC 3986
    §5.2) is resolved against the URL of the request that received it."""
    fake = FakeRegistry(location_form=form, upload_state=True)
    push_one(fake, "streamed")
    assert fake.issued[0] == ("s1?_state=s1.1" if form == "relative" else "/v2/app/blobs/uploads/s1?_state=s1.1")
    assert [r.url for r in fake.requests] == [
        f"{BASE}/v2/app/blobs/uploads/",
        f"{BASE}/v2/app/blobs/uploads/s1?_state=s1.1",
        f"{BASE}/v2/app/blobs/uploads/s1?_state=s1.2&digest={q(DIGEST)}",
    ]


@pytest.mark.flows
def test_absolute_location_on_another_host_and_port_is_followed():
    """An absolute ``Location`` on another origin: PATCH and PUT go there, not to the registry."""
    fake = FakeRegistry(upload_host="http://uploads.test:9000")
    push_one(fake, "chunked")
    post, *rest = fake.requests
    assert post.url.startswith(BASE)
    assert rest and all(r.url.startswith("http://uploads.test:9000/v2/app/blobs/uploads/s1") for r in rest)


@pytest.mark.flows
def test_location_query_state_is_kept_and_digest_appended():
    """distribution's ``?_state=…``: the commit PUT is the latest Location plus ``&digest=``."""
    fake = FakeRegistry(upload_state=True)
    push_one(fake, "streamed")
    post, patch, put = fake.requests
    assert patch.url == f"{BASE}/v2/app/blobs/uploads/s1?_state=s1.1"
    assert put.url == f"{BASE}/v2/app/blobs/uploads/s1?_state=s1.2&digest={q(DIGEST)}"
    assert parse_qs(urlsplit(put.url).query) == {"_state": ["s1.2"], "digest": [str(DIGEST)]}


@pytest.mark.flows
def test_a_location_that_changes_on_every_patch_is_always_taken_from_the_latest_answer():
    """Each request of a session uses the Location of the response just before it."""
    fake = FakeRegistry(upload_state=True, moving_location=True)
    push_one(fake, "chunked", chunk_size=50)  # 5 PATCHes
    session = [r.url for r in fake.requests[1:]]
    assert len(fake.issued) == 6 and len(set(fake.issued)) == 6
    for url, issued in zip(session[:-1], fake.issued[:-1], strict=True):
        assert url == BASE + issued
    assert session[-1] == f"{BASE}{fake.issued[-1]}&digest={q(DIGEST)}"


# -- 2. chunked mode (distribution-spec "Pushing a blob in chunks") ---------------------------


@pytest.mark.flows
def test_content_range_is_inclusive_without_unit_or_total_and_last_chunk_is_short():
    """``Content-Range: start-end``, inclusive, no ``bytes `` prefix, no ``/total``."""
    fake = FakeRegistry()
    push_one(fake, "chunked", chunk_size=100)
    patches = fake.named(endpoints.PATCH_UPLOAD)
    assert [p.headers["Content-Range"] for p in patches] == ["0-99", "100-199", "200-249"]
    assert [(len(p.body), p.content_length) for p in patches] == [(100, 100), (100, 100), (50, 50)]


@pytest.mark.flows
def test_oci_chunk_min_length_raises_the_chunk_size():
    """``OCI-Chunk-Min-Length`` on the POST answer is a floor for every chunk but the last."""
    fake = FakeRegistry(chunk_min_length=120)
    push_one(fake, "chunked", chunk_size=100)
    patches = fake.named(endpoints.PATCH_UPLOAD)
    assert [len(p.body) for p in patches] == [120, 120, 10]
    assert [p.headers["Content-Range"] for p in patches] == ["0-119", "120-239", "240-249"]


@pytest.mark.flows
def test_416_when_the_registry_already_has_the_whole_chunk_skips_it():
    """On 416, GET the upload URL; its ``Range`` says the chunk arrived: go on with the next."""
    fake = FakeRegistry(patch_faults={2: 100})
    push_one(fake, "chunked", chunk_size=100)
    assert wire(fake)[1:] == [
        "PATCH /v2/app/blobs/uploads/s1",
        "PATCH /v2/app/blobs/uploads/s1",  # 416, but the registry kept all 100 bytes
        "GET /v2/app/blobs/uploads/s1",
        "PATCH /v2/app/blobs/uploads/s1",
        f"PUT /v2/app/blobs/uploads/s1?digest={q(DIGEST)}",
    ]
    assert [p.headers["Content-Range"] for p in fake.named(endpoints.PATCH_UPLOAD)] == ["0-99", "100-199", "200-249"]


@pytest.mark.flows
def test_416_when_the_registry_has_part_of_the_chunk_sends_the_rest():
    """On 416 with 40 of 100 bytes held, resend bytes 140-199 and continue."""
    fake = FakeRegistry(patch_faults={2: 40})
    push_one(fake, "chunked", chunk_size=100)
    patches = fake.named(endpoints.PATCH_UPLOAD)
    assert [p.headers["Content-Range"] for p in patches] == ["0-99", "100-199", "140-199", "200-249"]
    assert patches[2].body == DATA[140:200]
    assert len(fake.named(endpoints.GET_UPLOAD)) == 1


@pytest.mark.flows
def test_range_reply_with_bytes_unit_is_understood():
    """Some registries answer ``Range: bytes=0-N``; the resync must read it like ``0-N``."""
    fake = FakeRegistry(patch_faults={2: 40}, range_prefix="bytes=")
    push_one(fake, "chunked", chunk_size=100)
    assert [p.headers["Content-Range"] for p in fake.named(endpoints.PATCH_UPLOAD)][2] == "140-199"


# -- 3. streamed, monolithic and single-POST modes --------------------------------------------


@pytest.mark.flows
def test_streamed_is_one_patch_without_content_range_then_an_empty_put():
    """docker's streamed upload: one PATCH with the whole body, then ``PUT ?digest=`` empty."""
    fake = FakeRegistry()
    push_one(fake, "streamed")
    post, patch, put = fake.requests
    assert "Content-Range" not in patch.headers
    assert patch.body == DATA
    assert put.body == b"" and put.content_length == 0
    assert parse_qs(urlsplit(put.url).query) == {"digest": [str(DIGEST)]}


@pytest.mark.flows
def test_monolithic_is_post_then_put_with_the_body():
    """Monolithic upload (spec "POST then PUT"): the PUT carries all bytes and Content-Length."""
    fake = FakeRegistry()
    push_one(fake, "monolithic")
    assert wire(fake) == ["POST /v2/app/blobs/uploads/", f"PUT /v2/app/blobs/uploads/s1?digest={q(DIGEST)}"]
    post, put = fake.requests
    assert post.body == b""
    assert put.body == DATA and put.content_length == len(DATA)


@pytest.mark.flows
def test_single_post_answered_201_needs_no_put():
    """Spec "single POST": ``POST ?digest=`` with the body, 201 and done."""
    fake = FakeRegistry(single_post=True)
    push_one(fake, "single-post")
    [post] = fake.requests
    assert post.url == f"{BASE}/v2/app/blobs/uploads/?digest={q(DIGEST)}"
    assert post.body == DATA and post.content_length == len(DATA)


@pytest.mark.flows
def test_single_post_answered_202_falls_back_to_a_put_on_the_session():
    """A registry without single POST (distribution) answers 202: PUT the body to the session."""
    fake = FakeRegistry(single_post=False)
    push_one(fake, "single-post")
    assert wire(fake) == [
        f"POST /v2/app/blobs/uploads/?digest={q(DIGEST)}",
        f"PUT /v2/app/blobs/uploads/s1?digest={q(DIGEST)}",
    ]
    assert fake.requests[1].body == DATA


# -- 4. status codes and cross-repository mount -------------------------------------------------


@pytest.mark.flows
def test_blob_commit_answered_204_is_accepted():
    """Spec says 201 for the commit PUT; some registries answer 204."""
    fake = FakeRegistry(blob_put_status=204)
    assert push_one(fake, "monolithic") == "uploaded"


OTHER_DIGEST = "sha256:" + "1" * 64


@pytest.mark.flows
@pytest.mark.parametrize("mode", ["monolithic", "streamed", "chunked"])
def test_a_commit_answered_with_another_docker_content_digest_is_a_mismatch(mode):
    """A commit whose ``Docker-Content-Digest`` names another blob than the one pushed fails the
    push (a manifest would otherwise name a blob the registry may not hold)."""
    fake = FakeRegistry()

    def wrong_commit(request, body):
        if request.name != endpoints.PUT_UPLOAD:
            return None
        return 201, (("Location", f"/v2/app/blobs/{OTHER_DIGEST}"), ("Docker-Content-Digest", OTHER_DIGEST)), b""

    fake.intercept = wrong_commit
    opts = PushOptions(upload_mode=mode, chunk_size=100, check_existing=False)
    with pytest.raises(DigestMismatch, match="blob commit: registry stored sha256:111"):
        push_blob(fake.client(), fake.ref("app:1"), blob(), opts)


@pytest.mark.flows
def test_a_manifest_put_answered_with_another_docker_content_digest_is_a_mismatch():
    fake = FakeRegistry()

    def wrong_manifest_put(request, body):
        if request.name != endpoints.PUT_MANIFEST:
            return None
        return 201, (("Docker-Content-Digest", OTHER_DIGEST),), b""

    fake.intercept = wrong_manifest_put
    image = SourceImage(mt.OCI_MANIFEST, BytesBlob(mt.OCI_CONFIG, b"{}"), [blob()])
    with pytest.raises(DigestMismatch, match="manifest PUT: registry says sha256:111"):
        push(fake.client(), fake.ref("app:1"), image, SequentialRunner())


@pytest.mark.flows
def test_mount_201_means_mounted_and_nothing_is_uploaded():
    """Spec "Mounting a blob from another repository": ``mount`` and ``from``; 201 = done."""
    fake = FakeRegistry()
    fake.add_blob("base", DATA)
    result = push_blob(fake.client(), fake.ref("app:1"), blob(), PushOptions(check_existing=False, mount_from="base"))
    assert result.action == "mounted" and result.sent == 0
    [post] = fake.requests
    assert parse_qs(urlsplit(post.url).query) == {"mount": [str(DIGEST)], "from": ["base"]}
    assert fake.blobs[("app", str(DIGEST))] == DATA


@pytest.mark.flows
@pytest.mark.parametrize(
    "mode, methods",
    [
        ("streamed", ["POST", "PATCH", "PUT"]),
        ("chunked", ["POST", "PATCH", "PATCH", "PATCH", "PUT"]),
        ("monolithic", ["POST", "PUT"]),
        ("single-post", ["POST", "PUT"]),  # the session is open: the body goes in one PUT
    ],
)
def test_mount_202_continues_on_the_session_it_started(mode, methods):
    """A mount answered 202 opened an ordinary session: upload on it, no second POST."""
    fake = FakeRegistry(mount_enabled=False)
    assert push_one(fake, mode, mount_from="base") == "uploaded"
    assert [r.method for r in fake.requests] == methods
    assert parse_qs(urlsplit(fake.requests[0].url).query) == {"mount": [str(DIGEST)], "from": ["base"]}
    assert all(r.url.startswith(f"{BASE}/v2/app/blobs/uploads/s1") for r in fake.requests[1:])


# -- 5. existing blobs ------------------------------------------------------------------------


@pytest.mark.flows
def test_existing_blob_of_the_right_size_is_skipped():
    """docker HEADs each blob first: 200 with the right Content-Length means nothing to send."""
    fake = FakeRegistry()
    fake.add_blob("app", DATA)
    result = push_blob(fake.client(), fake.ref("app:1"), blob(), PushOptions())
    assert result.action == "exists" and result.sent == 0
    assert wire(fake) == [f"HEAD /v2/app/blobs/{DIGEST}"]


@pytest.mark.flows
def test_existing_blob_of_another_size_is_uploaded_again():
    """A HEAD whose Content-Length differs from the descriptor is not trusted."""
    fake = FakeRegistry()
    fake.blobs[("app", str(DIGEST))] = DATA[:10]
    assert push_blob(fake.client(), fake.ref("app:1"), blob(), PushOptions()).action == "uploaded"
    assert [r.method for r in fake.requests] == ["HEAD", "POST", "PATCH", "PUT"]


# -- 6. pull --------------------------------------------------------------------------------------


def pull_app(fake: FakeRegistry, observer: RecordingObserver | None = None, credentials: Credentials | None = None):
    client = fake.client(observer=observer or RecordingObserver(), credentials=credentials)
    return pull(client, fake.ref("app:1"), DiscardSink(), SequentialRunner())


@pytest.mark.flows
def test_redirect_to_another_host_drops_authorization():
    """Blob GETs redirected to object storage must not carry the registry's credentials."""
    fake = FakeRegistry(auth="basic", credentials=("u", "pw"), redirect_blobs="http://storage.test:9000")
    fake.add_image("app", "1", [DATA])
    pull_app(fake, credentials=Credentials("u", "pw"))
    to_registry = [r for r in fake.requests if r.name == endpoints.GET_BLOB]
    to_storage = [r for r in fake.requests if r.name == endpoints.GET_BLOB + " (redirected)"]
    assert len(to_registry) == len(to_storage) == 2  # config and layer
    assert all(r.headers["Authorization"].startswith("Basic ") for r in to_registry)
    assert all(r.url.startswith("http://storage.test:9000/") and "Authorization" not in r.headers for r in to_storage)


@pytest.mark.flows
def test_redirect_to_the_same_host_keeps_authorization():
    """A redirect within the registry's own origin keeps its ``Authorization``."""
    fake = FakeRegistry(auth="basic", credentials=("u", "pw"), redirect_blobs=BASE + "/storage")
    fake.add_image("app", "1", [DATA])
    pull_app(fake, credentials=Credentials("u", "pw"))
    hops = [r for r in fake.requests if r.url.startswith(BASE + "/storage/")]
    assert len(hops) == 2 and all(r.headers["Authorization"].startswith("Basic ") for r in hops)


@pytest.mark.flows
def test_redirect_loops_are_bounded():
    """Redirects are followed by hand, at most ``MAX_REDIRECTS`` hops; then the 307 is an error."""
    fake = FakeRegistry(redirect_loop=True)
    fake.add_blob("app", DATA)
    with pytest.raises(RegistryError) as e:
        endpoints.get_blob(fake.client(), fake.ref("app:1"), DIGEST)
    assert e.value.status == 307
    assert len(fake.requests) == 1 + MAX_REDIRECTS
    assert not fake.transport.open_responses


@pytest.mark.flows
def test_manifest_accept_lists_the_four_manifest_types():
    """distribution answers 404 for an OCI manifest unless Accept names it (DESIGN §2)."""
    fake = FakeRegistry()
    raw = fake.add_image("app", "1", [DATA])
    assert endpoints.get_manifest(fake.client(), fake.ref("app:1")).raw == raw
    accepted = {part.split(";")[0].strip() for part in fake.requests[0].headers["Accept"].split(",")}
    assert {mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.OCI_INDEX} <= accepted


@pytest.mark.flows
def test_a_blob_whose_bytes_differ_from_its_digest_fails_and_is_reported_failed():
    """Every blob is verified against the digest asked for; the observer sees the failure."""
    fake = FakeRegistry()
    fake.add_image("app", "1", [DATA])
    fake.serve_instead[str(DIGEST)] = bytes(reversed(DATA))  # same size, other digest
    observer = RecordingObserver()
    with pytest.raises(DigestMismatch) as e:
        pull_app(fake, observer)
    [failed] = [ev for ev in observer.events if ev.error is not None]
    assert failed.name == endpoints.GET_BLOB and failed.status == 200
    assert failed.error is e.value
    assert DIGEST.short in str(e.value)


@pytest.mark.flows
def test_a_blob_body_longer_than_its_descriptor_is_stopped_early():
    """The size check runs while streaming: a registry sending garbage forever is cut off."""
    fake = FakeRegistry()
    fake.add_image("app", "1", [DATA])
    endless = DATA + bytes(4 * READ_CHUNK)
    fake.serve_instead[str(DIGEST)] = endless
    observer = RecordingObserver()
    with pytest.raises(DigestMismatch, match="more than the expected 250 bytes"):
        pull_app(fake, observer)
    [failed] = [ev for ev in observer.events if ev.error is not None]
    assert failed.length <= READ_CHUNK < len(endless)
    assert not fake.transport.open_responses


@pytest.mark.flows
def test_a_missing_docker_content_digest_is_fine():
    """Old registries send no ``Docker-Content-Digest``: record, don't require."""
    fake = FakeRegistry(manifest_digest_header=None)
    raw = fake.add_image("app", "1", [DATA])
    result = pull_app(fake)
    assert result.manifest_digest == str(Digest.of(raw))


@pytest.mark.flows
def test_a_wrong_docker_content_digest_on_a_manifest_is_a_mismatch():
    """A ``Docker-Content-Digest`` that is present must match the manifest bytes."""
    fake = FakeRegistry(manifest_digest_header="sha256:" + "0" * 64)
    fake.add_image("app", "1", [DATA])
    with pytest.raises(DigestMismatch, match="Docker-Content-Digest"):
        endpoints.get_manifest(fake.client(), fake.ref("app:1"))


# -- 7. registry errors (distribution-spec "Error Codes") -----------------------------------------


@pytest.mark.flows
def test_spec_error_body_gives_code_status_and_a_one_line_message_naming_the_template():
    """The spec error code and status are kept; the message names the template, not the URL."""
    fake = FakeRegistry()
    with pytest.raises(RegistryError) as e:
        endpoints.get_blob(fake.client(), fake.ref("app:1"), DIGEST)
    assert (e.value.code, e.value.status) == ("BLOB_UNKNOWN", 404)
    assert str(e.value) == "GET /v2/<name>/blobs/<digest>: HTTP 404 BLOB_UNKNOWN: blob unknown"
    assert not isinstance(e.value, AuthError)


@pytest.mark.flows
@pytest.mark.parametrize(
    "body, detail",
    [
        (b"upstream exploded\n", "upstream exploded"),
        (b"<html>\n<body>Bad gateway</body>\n</html>\n", "<html> <body>Bad gateway</body> </html>"),
    ],
)
def test_a_non_json_500_gives_a_clear_one_line_message(body, detail):
    """A proxy's text or HTML error page becomes one line of detail."""
    fake = FakeRegistry(intercept=lambda request, _: (500, [("Content-Type", "text/html")], body))
    with pytest.raises(RegistryError) as e:
        endpoints.get_manifest(fake.client(), fake.ref("app:1"))
    assert e.value.status == 500 and e.value.code is None
    assert str(e.value) == f"GET /v2/<name>/manifests/<reference>: HTTP 500: {detail}"


# -- 8. tags pagination (distribution-spec "Listing Tags", RFC 8288 Link) ------------------------


@pytest.mark.flows
@pytest.mark.parametrize("absolute", [False, True])
def test_tags_follow_link_until_there_is_none(absolute):
    """``n``/``last`` pages via ``Link: <…>; rel="next"``, relative or absolute, to the last page."""
    fake = FakeRegistry(link_absolute=absolute)
    for tag in "abcde":
        fake.add_image("app", tag, [DATA])
    assert list(endpoints.list_tags(fake.client(), fake.ref("app:1"), page_size=2)) == list("abcde")
    assert [r.url for r in fake.requests] == [
        f"{BASE}/v2/app/tags/list?n=2",
        f"{BASE}/v2/app/tags/list?n=2&last=b",
        f"{BASE}/v2/app/tags/list?n=2&last=d",
    ]


@pytest.mark.flows
def test_tags_link_chosen_by_the_registry_is_followed_without_n():
    """The registry may paginate on its own; the client still follows every ``Link``."""
    fake = FakeRegistry(tags_page_size=1)
    for tag in "xyz":
        fake.add_image("app", tag, [DATA])
    assert list(endpoints.list_tags(fake.client(), fake.ref("app:1"))) == ["x", "y", "z"]
    assert len(fake.requests) == 3


@pytest.mark.flows
def test_a_tags_page_past_its_bound_is_a_clear_error_and_is_not_read_whole():
    page = b'{"name": "app", "tags": ["' + b"t" * (64 << 20) + b'"]}'
    transport = MemoryTransport(lambda request, body: (200, [("Content-Type", "application/json")], page))
    observer = RecordingObserver()
    client = RegistryClient(Registry.from_url(BASE), transport, observer=observer)
    with pytest.raises(ProtocolError, match=r"^GET /v2/<name>/tags/list: a page of the tag list is larger than 16 MiB"):
        list(endpoints.list_tags(client, Reference(client.registry, "app", "1")))
    assert transport.open_responses == []
    [response] = transport._responses  # how much of the page was read: the bound and one chunk
    assert response._offset <= endpoints.MAX_TAGS_PAGE + (1 << 20)
    [event] = observer.events
    assert isinstance(event.error, ProtocolError)


# -- 9. auth through the client (distribution docs/spec/auth/token.md) --------------------------


@pytest.mark.flows
def test_bearer_challenge_token_and_retry_are_each_reported_once():
    """401 + ``Bearer realm,service,scope`` → ``GET token`` → retry with ``Bearer``; each seen once."""
    fake = FakeRegistry(auth="bearer")
    fake.add_image("app", "1", [DATA])
    observer = RecordingObserver()
    endpoints.get_manifest(fake.client(observer=observer), fake.ref("app:1"))
    first, token, retry = fake.requests
    assert "Authorization" not in first.headers
    assert token.url == f"{REALM}?service=reg.test&scope=repository%3Aapp%3Apull"
    assert retry.headers["Authorization"] == "Bearer tok1"
    # The 401 is reported once the token came (its outcome is known then), timed to its own end.
    assert [(e.name, e.status, e.error) for e in observer.events] == [
        ("GET token", 200, None),
        (endpoints.GET_MANIFEST, 401, None),
        (endpoints.GET_MANIFEST, 200, None),
    ]


@pytest.mark.flows
def test_a_second_401_after_a_fresh_token_is_an_auth_error_not_a_loop():
    """A token the registry refuses is an ``AuthError`` after one retry, not a loop."""
    fake = FakeRegistry(auth="bearer", token_ok=False)
    observer = RecordingObserver()
    with pytest.raises(AuthError) as e:
        endpoints.get_manifest(fake.client(observer=observer), fake.ref("app:1"))
    assert e.value.status == 401
    assert [r.name for r in fake.requests] == [endpoints.GET_MANIFEST, "GET token", endpoints.GET_MANIFEST]
    assert observer.names().count("GET token") == 1
    # The token request, the answered 401 (reported once the token came), the refused retry.
    assert [(e.status, e.error is not None) for e in observer.events] == [(200, False), (401, False), (401, True)]


@pytest.mark.flows
@pytest.mark.parametrize("accepted", [True, False])
def test_basic_password_never_appears_in_names_or_messages(accepted):
    """Basic credentials (RFC 7617) never leak into stats names or error messages."""
    password = "pässword-'\"-s3cr3t"
    fake = FakeRegistry(auth="basic", credentials=("u", password if accepted else "other"))
    fake.add_image("app", "1", [DATA])
    observer = RecordingObserver()
    client = fake.client(observer=observer, credentials=Credentials("u", password))
    try:
        pull(client, fake.ref("app:1"), DiscardSink(), SequentialRunner())
    except AuthError as e:
        assert not accepted
        assert "credentials refused" in str(e)
    else:
        assert accepted
    encoded = Credentials("u", password).basic_header().removeprefix("Basic ")
    texts = [ev.name for ev in observer.events] + [str(ev.error) for ev in observer.events if ev.error]
    assert len(observer.events) == (4 if accepted else 2)  # ping, manifest, config, layer; or ping, 401
    assert not [t for t in texts if password in t or encoded in t]


# -- 10. extra headers (the CLI's -H) -------------------------------------------------------------


@pytest.mark.flows
def test_extra_headers_reach_every_request_including_the_token_request():
    """The CLI's ``-H`` headers go on every request of a push, the token request included."""
    fake = FakeRegistry(auth="bearer")
    client = fake.client(headers=(("X-Load-Run", "run-7"),))
    image = SourceImage(mt.OCI_MANIFEST, BytesBlob(mt.OCI_CONFIG, b"{}"), [blob()])
    push(client, fake.ref("app:1"), image, SequentialRunner())
    assert list(endpoints.list_tags(client, fake.ref("app:1"))) == ["1"]
    assert "GET token" in [r.name for r in fake.requests]
    assert {r.method for r in fake.requests} >= {"GET", "HEAD", "POST", "PATCH", "PUT"}
    assert [r.url for r in fake.requests if r.headers.get("X-Load-Run") != "run-7"] == []


# -- 11. push by digest -------------------------------------------------------------------------


@pytest.mark.flows
def test_push_by_a_digest_other_than_the_manifests_is_refused_before_the_manifest_put():
    """Pushing to ``repo@digest`` needs that digest to be the manifest's: checked before the PUT."""
    fake = FakeRegistry()
    image = SourceImage(mt.OCI_MANIFEST, BytesBlob(mt.OCI_CONFIG, b"{}"), [blob()])
    with pytest.raises(UsageError, match="manifest digest is"):
        push(fake.client(), fake.ref("app@sha256:" + "0" * 64), image, SequentialRunner())
    assert fake.named(endpoints.PUT_MANIFEST) == []
    assert not fake.manifests


# -- properties: reference grammar and challenge parsing --------------------------------------------

PROPERTY = settings(
    max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

_alnum = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
_separator = st.sampled_from([".", "_", "__", "-", "--"])
_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    _alnum,
    st.lists(st.tuples(_separator, _alnum), max_size=2),
)
_label = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True)
_host = st.one_of(
    st.just("localhost"),
    st.builds(".".join, st.lists(_label, min_size=2, max_size=3)),
    st.just("[::1]"),
    st.just("127.0.0.1"),
).flatmap(lambda host: st.one_of(st.just(host), st.integers(1, 65535).map(lambda p: f"{host}:{p}")))
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.binary(min_size=1, max_size=8).map(lambda b: str(Digest.of(b)))


@st.composite
def references(draw: st.DrawFn) -> tuple[str | None, str, str | None, str | None]:
    """(host, path, tag, digest) of a valid reference, built from distribution/reference's grammar."""
    host = draw(st.one_of(st.none(), _host))
    components = draw(st.lists(_component, min_size=1, max_size=3))
    # Without a host, a first component with a '.' would be read as one (docker's rule).
    assume(host is not None or len(components) == 1 or "." not in components[0])
    return host, "/".join(components), draw(st.one_of(st.none(), _tag)), draw(st.one_of(st.none(), _digest))


def _text(host: str | None, path: str, tag: str | None, digest: str | None) -> str:
    return (f"{host}/" if host else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A valid reference with one odd character put into one of its parts (``a\\n:tag``, ``app:tagé``)."""
    host, path, tag, digest = draw(references())
    parts = [host or "", path, tag or "", digest or ""]
    i = draw(st.sampled_from([k for k, part in enumerate(parts) if part]))
    at = draw(st.one_of(st.just(len(parts[i])), st.just(0), st.integers(0, len(parts[i]))))
    odd = draw(st.sampled_from(["\n", "\r", "\t", " ", "é", "٣", "A", "/", ":", "@", "..", "\x00"]))
    parts[i] = parts[i][:at] + odd + parts[i][at:]
    return _text(parts[0] or None, parts[1], parts[2] or None, parts[3] or None)


@pytest.mark.unit
@PROPERTY
@given(st.one_of(st.text(max_size=60), near_misses()))
@example("a\n:tag")  # regressions: '$' matched before a final newline,
@example("app:tagé")  # '\w' matched non-ASCII letters,
@example("[:]/app")  # and urllib raised ValueError on this host
def test_parse_reference_raises_only_invalid_reference_and_accepts_only_grammar(text):
    """Any text: ``InvalidReference`` or a reference whose parts match the docker grammar in
    full (so no URL built from it carries a newline, and no tag is non-ASCII)."""
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert _PATH_RE.fullmatch(ref.repository)
    assert ref.tag is None or (_TAG_RE.fullmatch(ref.tag) and ref.tag.isascii())
    assert _DOMAIN_RE.fullmatch(ref.registry.host)
    assert ref.manifest_url().isascii() and not any(c.isspace() for c in ref.manifest_url())


@pytest.mark.unit
@PROPERTY
@given(references())
def test_reference_round_trip(parts):
    """``str(ref)`` re-parses to an equal reference, with the parts it was built from."""
    host, path, tag, digest = parts
    ref = parse_reference(_text(*parts))
    assert parse_reference(str(ref)) == ref
    assert ref.repository == (path if host is not None or "/" in path else f"library/{path}")
    assert ref.tag == (tag or (None if digest else "latest"))
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.unit
@PROPERTY
@given(st.text(max_size=80))
def test_parse_challenges_never_raises(text):
    """A registry's broken ``WWW-Authenticate`` must not crash a load test."""
    for challenge in parse_challenges([text]):
        assert challenge.scheme


_token = st.text(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=8)
_value = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from(',="\\ '), max_size=20)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_params = st.lists(st.tuples(_token, _value), max_size=4, unique_by=lambda kv: kv[0].lower())


@pytest.mark.unit
@PROPERTY
@given(st.lists(st.tuples(_token, _params), min_size=1, max_size=3))
def test_parse_challenges_round_trip(challenges):
    """RFC 9110 §11.6.1: quoted values may hold commas, ``=`` and escaped quotes."""
    header = ", ".join(
        scheme + (" " + ", ".join(f"{k}={_quote(v)}" for k, v in params) if params else "")
        for scheme, params in challenges
    )
    parsed = parse_challenges([header])
    assert [(c.scheme, c.params) for c in parsed] == [
        (s.lower(), tuple((k.lower(), v) for k, v in p)) for s, p in challenges
    ]
