"""What the observer hears when a response is left early: a cancelled request is not reported,
a request abandoned by an error is a failure with that cause, never a success with a partial
length."""

from __future__ import annotations

import pytest

from regload import endpoints
from regload.auth import Authenticator, Credentials
from regload.client import RegistryClient
from regload.errors import AuthError
from regload.http import Request
from regload.reference import Registry
from regload.transports.memory import MemoryTransport
from tests.support.fake_registry import FakeRegistry, RecordingObserver

pytestmark = pytest.mark.flows

URL = "http://registry.test/v2/app/blobs/sha256:" + "0" * 64


def _send(body: bytes = b"x" * 100) -> tuple[RecordingObserver, object]:
    transport = MemoryTransport()
    transport.queue(200, [("Content-Length", str(len(body)))], body)
    observer = RecordingObserver()
    client = RegistryClient(Registry.from_url("http://registry.test"), transport, observer=observer)
    return observer, client.send(Request("GET", URL, "GET /v2/<name>/blobs/<digest>"))


class Cancelled(BaseException):
    """Stands for GreenletExit: a greenlet killed while it reads."""


def test_a_cancelled_read_is_not_reported() -> None:
    observer, response = _send()
    with pytest.raises(Cancelled), response as r:  # type: ignore[attr-defined]
        next(iter(r.iter_bytes(10)))
        raise Cancelled
    assert observer.events == []


def test_an_error_while_reading_fails_the_request_with_its_cause() -> None:
    observer, response = _send()
    with pytest.raises(OSError), response as r:  # type: ignore[attr-defined]
        next(iter(r.iter_bytes(10)))
        raise OSError(28, "No space left on device")
    [event] = observer.events
    assert isinstance(event.error, OSError) and event.length == 10


def test_a_complete_read_is_a_success() -> None:
    observer, response = _send()
    with response as r:  # type: ignore[attr-defined]
        assert len(r.read()) == 100
    [event] = observer.events
    assert event.error is None and event.length == 100 and event.status == 200


def test_refused_basic_credentials_make_the_401_a_failure_with_its_code() -> None:

    fake = FakeRegistry(auth="basic", credentials=("user", "right"))
    observer = RecordingObserver()
    client = fake.client(observer=observer, credentials=Credentials("user", "wrong"))
    with pytest.raises(AuthError):
        endpoints.get_manifest(client, fake.ref("app:1"))
    # The first 401 was answered (credentials sent on the retry); the second one is the failure.
    assert [(e.status, type(e.error).__name__ if e.error else None) for e in observer.events] == [
        (401, None),
        (401, "AuthError"),
    ]
    assert "UNAUTHORIZED" in str(observer.events[1].error)


def test_a_401_met_before_a_concurrent_request_learnt_basic_auth_is_retried() -> None:
    """Requests that left without credentials while another one met the first challenge have
    not tried the credentials: their 401 is answered too, not taken for a refusal."""

    fake = FakeRegistry(auth="basic", credentials=("user", "right"))
    fake.add_image("app", "1", [b"layer"])
    auth = Authenticator(Credentials("user", "right"))
    request = Request("GET", fake.ref("app:1").manifest_url(), endpoints.GET_MANIFEST)
    first, concurrent = fake.transport.send(request), fake.transport.send(request)  # both without credentials
    assert first.status == concurrent.status == 401
    assert auth.handle_challenge(first, (), fake.transport.send, "x", sent_credentials=False)  # learns "basic"
    assert auth.scheme == "basic"
    # The request that left before that (no Authorization) gets its 401 answered ...
    assert auth.handle_challenge(concurrent, (), fake.transport.send, "x", sent_credentials=False)
    # ... while a 401 to the credentials themselves is a refusal.
    assert not auth.handle_challenge(concurrent, (), fake.transport.send, "x", sent_credentials=True)
