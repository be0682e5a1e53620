"""The retry policy: none by default; with one, which failures are retried, how long the waits
are, and that every attempt is observed. End-to-end runs through the fault proxy are in
tests/test_faults_load.py."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from regload.client import RegistryClient
from regload.errors import RegistryError, StaleConnection, TransportError, UsageError
from regload.http import Request
from regload.reference import Registry
from regload.retry import NO_RETRIES, RetryPolicy, parse_retry_after
from regload.transports.memory import MemoryTransport
from tests.support.fake_registry import RecordingObserver, error

URL = "http://registry.test/v2/app/manifests/latest"


def _error(status: int, retry_after: float | None = None) -> RegistryError:
    e = RegistryError("GET /v2/<name>/manifests/<reference>", status)
    e.retry_after = retry_after
    return e


def _request(method: str = "GET", body: object = None) -> Request:
    return Request(method, URL, f"{method} /v2/<name>/manifests/<reference>", (), body)  # type: ignore[arg-type]


@pytest.mark.unit
def test_default_policy_never_retries() -> None:
    assert NO_RETRIES.retries == 0
    assert NO_RETRIES.delay(_request(), _error(503), 1) is None
    assert NO_RETRIES.delay(_request(), TransportError("reset"), 1) is None


@pytest.mark.unit
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_overload_statuses_are_retried_with_doubling_backoff(status: int) -> None:
    policy = RetryPolicy(retries=3, backoff=0.5, max_wait=1.5)
    waits = [policy.delay(_request(), _error(status), attempt) for attempt in (1, 2, 3, 4)]
    assert waits == [0.5, 1.0, 1.5, None]  # doubled, capped, then the count is spent


@pytest.mark.unit
@pytest.mark.parametrize("status", [400, 401, 403, 404, 500, 501])
def test_other_statuses_are_not_retried(status: int) -> None:
    assert RetryPolicy(retries=3).delay(_request(), _error(status), 1) is None


@pytest.mark.unit
def test_retry_after_is_honoured_capped_or_ignored() -> None:
    assert RetryPolicy(retries=1, backoff=5).delay(_request(), _error(429, 2.0), 1) == 2.0
    assert RetryPolicy(retries=1, max_wait=3).delay(_request(), _error(503, 120.0), 1) == 3.0
    ignoring = RetryPolicy(retries=1, backoff=0.25, honour_retry_after=False)
    assert ignoring.delay(_request(), _error(429, 2.0), 1) == 0.25


@pytest.mark.unit
def test_connection_failures_are_retried_only_for_idempotent_methods() -> None:
    policy = RetryPolicy(retries=1, backoff=0.1)
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        assert policy.delay(_request(method), TransportError("reset"), 1) == 0.1
    for method in ("POST", "PATCH"):
        assert policy.delay(_request(method), TransportError("reset"), 1) is None


@pytest.mark.unit
def test_patch_and_streamed_bodies_are_never_retried() -> None:
    policy = RetryPolicy(retries=5)
    assert policy.delay(_request("PATCH", b"chunk"), _error(503), 1) is None
    assert policy.delay(_request("PUT", iter([b"a blob"])), _error(503), 1) is None
    assert policy.delay(_request("PUT", b"a manifest"), _error(503), 1) == 1.0


@pytest.mark.unit
@pytest.mark.parametrize(
    "settings",
    [{"retries": -1}, {"retries": 101}, {"backoff": -1.0}, {"backoff": float("nan")}, {"max_wait": float("inf")}],
)
def test_out_of_range_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        RetryPolicy(**settings)  # type: ignore[arg-type]


@pytest.mark.unit
def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    for garbage in (None, "", "soon", "-3", "1.5e3", "\u00b2", "\u0663"):  # ², Arabic-Indic 3
        assert parse_retry_after(garbage) is None


def _client(transport: MemoryTransport, policy: RetryPolicy, observer: RecordingObserver, waits: list[float]):
    return RegistryClient(
        Registry.from_url("http://registry.test"), transport, observer=observer, retry=policy, sleep=waits.append
    )


@pytest.mark.flows
def test_client_retries_after_retry_after_and_observes_every_attempt() -> None:
    transport = MemoryTransport()
    transport.queue(*error(503, "UNAVAILABLE", "busy", (("Retry-After", "2"),)))
    transport.queue(*error(429, "TOOMANYREQUESTS", "slow down", (("Retry-After", "1"),)))
    transport.queue(200, [("Content-Type", "application/json")], b"{}")
    observer, waits = RecordingObserver(), []
    client = _client(transport, RetryPolicy(retries=2), observer, waits)
    with client.send(_request()) as response:
        assert response.read() == b"{}"
    assert waits == [2.0, 1.0]
    assert [e.status for e in observer.events] == [503, 429, 200]
    assert [type(e.error).__name__ if e.error else None for e in observer.events] == [
        "RegistryError",
        "RegistryError",
        None,
    ]
    assert len(transport.requests) == 3


@pytest.mark.flows
def test_client_without_policy_reports_the_first_failure() -> None:
    transport = MemoryTransport()
    transport.queue(*error(503, "UNAVAILABLE", "busy", (("Retry-After", "2"),)))
    transport.queue(200, [], b"{}")
    observer, waits = RecordingObserver(), []
    with pytest.raises(RegistryError) as caught:
        _client(transport, NO_RETRIES, observer, waits).send(_request())
    assert caught.value.status == 503 and caught.value.retry_after == 2.0
    assert waits == [] and len(transport.requests) == 1 and transport.unanswered == 1


@pytest.mark.flows
def test_client_gives_up_when_the_count_is_spent() -> None:
    transport = MemoryTransport()
    transport.queue_error(TransportError("GET x to registry.test:80: connection reset by peer"))
    transport.queue_error(TransportError("GET x to registry.test:80: connection reset by peer"))
    observer, waits = RecordingObserver(), []
    with pytest.raises(TransportError):
        _client(transport, RetryPolicy(retries=1, backoff=0.5), observer, waits).send(_request())
    assert waits == [0.5]
    assert len(observer.events) == 2 and all(e.error for e in observer.events)


STALE = "GET /v2/<name>/manifests/<reference> to registry.test:80: server closed a reused connection before answering"


@pytest.mark.flows
def test_a_stale_connection_is_sent_again_once_and_the_dead_attempt_is_reported() -> None:
    # The keep-alive race (RFC 9112 §9.3.1), with no retry policy: an idempotent request is sent
    # again on a new connection, and the attempt on the dead one is a failure with its cause.
    transport = MemoryTransport()
    transport.queue_error(StaleConnection(STALE))
    transport.queue(200, [("Content-Type", "application/json")], b"{}")
    observer, waits = RecordingObserver(), []
    with _client(transport, NO_RETRIES, observer, waits).send(_request()) as response:
        assert response.read() == b"{}"
    assert waits == [] and len(transport.requests) == 2
    dead, done = observer.events
    assert isinstance(dead.error, StaleConnection) and dead.status is None
    assert str(dead.error) == STALE + "; sent again on a new connection"
    assert done.status == 200 and done.error is None


@pytest.mark.flows
def test_a_stale_connection_is_sent_again_only_once() -> None:
    transport = MemoryTransport()
    transport.queue_error(StaleConnection(STALE))
    transport.queue_error(StaleConnection(STALE))
    observer = RecordingObserver()
    with pytest.raises(StaleConnection):
        _client(transport, NO_RETRIES, observer, []).send(_request())
    assert len(transport.requests) == 2 and [str(e.error) for e in observer.events][1] == STALE


@pytest.mark.flows
@pytest.mark.parametrize("method, body", [("POST", None), ("PUT", iter([b"blob"]))])
def test_a_stale_connection_is_not_sent_again_when_not_idempotent_or_not_replayable(method: str, body: object) -> None:
    transport = MemoryTransport()
    transport.queue_error(StaleConnection(STALE))
    transport.queue(202, [], b"")
    observer = RecordingObserver()
    with pytest.raises(StaleConnection):
        _client(transport, NO_RETRIES, observer, []).send(_request(method, body), expect=(202,))
    assert len(transport.requests) == 1 and transport.unanswered == 1
    assert [str(e.error) for e in observer.events] == [STALE]
