"""Where credentials may go, decided request by request, against the in-memory fake registry.

``Authorization`` belongs to the registry's own origin (scheme, host, port): an upload
``Location`` or a redirect elsewhere gets none, whoever set it, and a 401 from elsewhere is not
answered. The end-to-end proofs against the real registry are in ``test_security.py``.
"""

from __future__ import annotations

import random

import pytest

from regload import endpoints
from regload import mediatypes as mt
from regload.auth import Authenticator, Credentials
from regload.client import RegistryClient
from regload.errors import AuthError, CertificateError, PlainHTTPAnswer, PlainHTTPRefused, TLSError
from regload.flows.push import PushOptions, push_blob
from regload.http import Request
from regload.reference import Registry
from regload.sources.base import BytesBlob
from regload.transports.memory import MemoryTransport
from tests.support.fake_registry import BASE, FakeRegistry

DATA = random.Random(11).randbytes(300)
UPLOADS = "http://uploads.test:9000"
USER = ("u", "pw-Secret-77")


def push(fake: FakeRegistry, credentials: Credentials | None = None, headers: tuple[tuple[str, str], ...] = ()):
    client = fake.client(credentials=credentials, headers=headers)
    options = PushOptions(upload_mode="chunked", chunk_size=100, check_existing=False)
    return push_blob(client, fake.ref("app:1"), BytesBlob(mt.OCI_LAYER_GZIP, DATA), options)


@pytest.mark.flows
@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_an_upload_location_on_another_host_gets_no_authorization(auth):
    """POST to the registry (authorized), then PATCH and PUT on another host: none authorized."""
    fake = FakeRegistry(auth=auth, credentials=USER if auth == "basic" else None, upload_host=UPLOADS)
    push(fake, Credentials(*USER) if auth == "basic" else None)
    to_registry = [r for r in fake.requests if r.url.startswith(BASE + "/v2/")]
    to_uploads = [r for r in fake.requests if r.url.startswith(UPLOADS)]
    assert len(to_uploads) == 4  # three 100-byte chunks and the commit
    assert "Authorization" in to_registry[-1].headers  # the POST that succeeded
    assert all("Authorization" not in r.headers for r in to_uploads), [r.headers for r in to_uploads]


@pytest.mark.flows
def test_an_authorization_header_of_the_user_stays_on_the_registry_too():
    """``-H 'Authorization: …'`` goes to the registry's requests only."""
    fake = FakeRegistry(upload_host=UPLOADS)
    push(fake, headers=(("Authorization", "Bearer user-given-Secret"), ("X-Trace", "1")))
    post, *uploads = fake.requests
    assert post.headers["Authorization"] == "Bearer user-given-Secret"
    assert uploads and all("Authorization" not in r.headers and r.headers["X-Trace"] == "1" for r in uploads)


@pytest.mark.flows
def test_a_401_from_another_host_is_not_answered():
    """The upload host's challenge is not the registry's: no token request, no retry, and the
    registry's own scheme (basic here) is not replaced by what the other host asked for."""

    def uploads_want_a_token(request: Request, body: bytes):
        if request.url.startswith(UPLOADS) and request.method == "PUT":  # the commit: no body, resendable
            return 401, [("WWW-Authenticate", f'Bearer realm="{UPLOADS}/token",service="x"')], b""
        return None

    fake = FakeRegistry(auth="basic", credentials=USER, upload_host=UPLOADS, intercept=uploads_want_a_token)
    client = fake.client(credentials=Credentials(*USER))
    options = PushOptions(upload_mode="streamed", check_existing=False)
    with pytest.raises(AuthError) as e:
        push_blob(client, fake.ref("app:1"), BytesBlob(mt.OCI_LAYER_GZIP, DATA), options)
    assert e.value.status == 401 and e.value.endpoint.startswith("PUT")
    assert [r.url for r in fake.requests if "/token" in r.url] == []
    assert [r.method for r in fake.requests if r.url.startswith(UPLOADS)] == ["PATCH", "PUT"]  # no retry
    assert client.auth_scheme == "basic"
    assert "pw-Secret-77" not in str(e.value)


@pytest.mark.flows
def test_the_registry_origin_spelled_another_way_is_still_the_registry():
    """``http://REG.test:80`` is ``http://reg.test``: the same origin, so still authorized."""
    fake = FakeRegistry(auth="basic", credentials=USER, upload_host="http://REG.test:80")
    push(fake, Credentials(*USER))
    uploads = [r for r in fake.requests if r.url.startswith("http://REG.test:80")]
    assert uploads and all(r.headers["Authorization"].startswith("Basic ") for r in uploads)


@pytest.mark.flows
def test_a_lookalike_origin_is_another_host():
    """A prefix of the registry's URL is not its origin: ``reg.test:80`` vs ``reg.test:8080``,
    ``reg.test`` vs ``reg.test.evil``, userinfo tricks."""
    for other in ("http://reg.test:8080", "http://reg.test.evil", "http://reg.test@evil.test", "https://reg.test"):
        fake = FakeRegistry(auth="basic", credentials=USER, upload_host=other)
        push(fake, Credentials(*USER))
        uploads = [r for r in fake.requests if r.url.startswith(other)]
        assert uploads and all("Authorization" not in r.headers for r in uploads), other


@pytest.mark.flows
def test_a_redirect_from_https_to_plain_http_drops_authorization():
    """Same host, but plain HTTP: another origin, so the credentials are not sent in clear."""
    seen: list[Request] = []
    basic = Credentials(*USER).basic_header()

    def handler(request: Request, body: bytes):
        seen.append(request)
        if request.url.startswith("https://reg.example/"):
            if request.header("Authorization") != basic:
                return 401, [("WWW-Authenticate", 'Basic realm="r"')], b""
            return 307, [("Location", "http://reg.example/storage/blob")], b""
        return 200, [("Content-Length", "4")], b"data"

    transport = MemoryTransport(handler)
    client = RegistryClient(Registry("https://reg.example"), transport, auth=Authenticator(Credentials(*USER)))
    request = Request("GET", "https://reg.example/v2/app/blobs/sha256:00", endpoints.GET_BLOB)
    with client.send(request, follow_redirects=True) as response:
        assert response.read() == b"data"
    challenge, authorized, hop = seen
    assert authorized.header("Authorization") == basic
    assert hop.url == "http://reg.example/storage/blob" and hop.header("Authorization") is None


@pytest.mark.unit
def test_locust_failure_causes_for_tls_and_refusals_are_short_and_each_hint_comes_once(monkeypatch, caplog):
    from regload.locust import observer

    hints = observer.Hints()
    unknown_ca = CertificateError(
        "GET /v2/ to 127.0.0.1:5000: TLS certificate verification failed: unable to get local issuer certificate"
    )
    self_signed = CertificateError("GET /v2/ to 127.0.0.1:5001: TLS certificate verification failed: self-signed")
    assert observer.failure_cause(unknown_ca) == observer.failure_cause(self_signed)
    assert observer.failure_cause(unknown_ca) == "TLS error: certificate verify failed"
    assert observer.failure_cause(TLSError("GET /v2/ to h:1: TLS error: WRONG_VERSION_NUMBER")) == (
        "TLS error: WRONG_VERSION_NUMBER"
    )
    plain = PlainHTTPAnswer("GET /v2/ to h:1: TLS error: the registry answered in plain HTTP, not TLS")
    assert observer.failure_cause(plain) == "TLS error: the registry answered in plain HTTP, not TLS"
    refused = PlainHTTPRefused("GET token", "the token server http://a is plain HTTP")
    assert observer.failure_cause(refused) == "credentials refused over plain HTTP"
    wrong = AuthError("GET token", 401, "UNAUTHORIZED", "x", reason="authentication refused by https://auth/token")
    assert observer.failure_cause(wrong) == "HTTP 401 UNAUTHORIZED: authentication refused by https://auth/token"
    missing = AuthError("GET /v2/", 401, None, "x", reason="no credentials given", credentials_missing=True)
    assert observer.failure_cause(missing) == "HTTP 401: no credentials given"
    with caplog.at_level("WARNING", logger="regload"):
        for error in (unknown_ca, self_signed, unknown_ca, refused, plain, plain, wrong, wrong, missing, missing):
            hints.log(error)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 4 and not any("\n" in line for line in lines), lines
    tls, plain_http, refusal, credentials = lines
    assert "unable to get local issuer certificate" in tls
    assert "--registry-ca-cert" in tls and "--registry-insecure" in tls
    assert "give --host http://HOST:PORT" in plain_http
    assert "--registry-password" in refusal and "--connection-backoff" in refusal
    assert "--registry-username and --registry-password (or REGLOAD_USERNAME" in credentials
