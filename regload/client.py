"""Sending registry requests: authorization, redirects, status checks, and observation.

``RegistryClient`` is the one object flows and front ends talk to, and ``send`` the one path
every registry request takes. The client owns the whole auth handshake: ``ping`` learns how the
registry authenticates, a 401 is answered (a token fetched, or credentials added) and the
request sent again, and ``prepare`` fetches the token for a set of scopes before concurrent
requests start. Each wire request, the token request, a 401 challenge and every redirect hop
included, is reported to the ``Observer`` once its body has been consumed or dropped, with the
endpoint template as its name — so a load test sees every attempt and a blob GET's time
includes its whole body.

One retry is built in, whatever the retry policy: an idempotent request that met a kept-alive
connection the server had just closed (``StaleConnection``, the keep-alive race of RFC 9112
§9.3.1) is sent again at once, on a new connection, as Go's and urllib3's clients do. The dead
attempt is still reported, as a failure of its row with that cause.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator
from typing import Protocol
from urllib.parse import urlsplit

from .auth import Authenticator
from .errors import AuthError, ProtocolError, RegistryError, RegloadError, StaleConnection
from .http import Headers, Request, Response, Transport, read_bounded, resolve_url, same_origin
from .reference import Registry
from .retry import IDEMPOTENT, NO_RETRIES, RETRY_STATUSES, RetryPolicy, parse_retry_after

PING = "GET /v2/"
MAX_REDIRECTS = 5
MAX_ERROR_BODY = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class Observer(Protocol):
    def on_request(
        self,
        name: str,
        method: str,
        elapsed: float,
        status: int | None,
        length: int,
        error: BaseException | None,
    ) -> None:
        """One request finished: ``elapsed`` seconds from sending to the end of its body,
        ``length`` body bytes moved (response bytes read, or request bytes sent for uploads)."""
        ...


class _NullObserver:
    def on_request(self, *args: object) -> None:
        pass


NULL_OBSERVER: Observer = _NullObserver()


class ObservedResponse:
    """A response that reports itself to the observer when closed (once)."""

    __slots__ = (
        "_inner",
        "_observer",
        "name",
        "_method",
        "_started",
        "_clock",
        "length",
        "_done",
        "error",
        "request_length",
        "_held",
        "_ended",
    )

    def __init__(
        self, inner: Response, observer: Observer, request: Request, started: float, clock: Callable[[], float]
    ) -> None:
        self._inner = inner
        self._observer = observer
        self.name = request.name
        self._method = request.method
        self._started = started
        self._clock = clock
        self.length = 0
        self.request_length = request.content_length or (len(request.body) if isinstance(request.body, bytes) else 0)
        self._done = False
        self.error: BaseException | None = None
        self._held: bytes | None = None  # the body, read by hold()
        self._ended: float | None = None  # when hold() stopped the clock

    @property
    def status(self) -> int:
        return self._inner.status

    @property
    def headers(self) -> Headers:
        return self._inner.headers

    @property
    def url(self) -> str:
        return self._inner.url

    @property
    def http_version(self) -> str:
        return self._inner.http_version

    def hold(self) -> None:
        """Read the (small) body, release the connection and stop the clock, but report only at
        ``close()``/``fail()``: what the request amounts to is decided afterwards."""
        if self._held is not None or self._done:
            return
        held = read_bounded(self._inner, MAX_ERROR_BODY, until_error=True)
        self._inner.close()
        self._ended = self._clock()
        self.length += len(held)
        self._held = held

    def read(self) -> bytes:
        if self._held is not None:
            data, self._held = self._held, b""
            return data
        try:
            data = self._inner.read()
        except RegloadError as e:
            self.fail(e)
            raise
        self.length += len(data)
        return data

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        if self._held is not None:
            yield self.read()
            return
        try:
            for chunk in self._inner.iter_bytes(chunk_size):
                self.length += len(chunk)
                yield chunk
        except RegloadError as e:
            self.fail(e)
            raise

    def fail(self, error: BaseException) -> None:
        """Mark the request failed (a digest mismatch found in its body, a bad status) and close."""
        if self.error is None:
            self.error = error
        self.close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._inner.close()
        moved = self.length or self.request_length
        ended = self._ended if self._ended is not None else self._clock()
        self._observer.on_request(self.name, self._method, ended - self._started, self._inner.status, moved, self.error)

    def abandon(self) -> None:
        """Close without a report: the request was cancelled (its greenlet killed because a
        sibling transfer failed, or the load test stopping), so it neither succeeded nor failed."""
        if not self._done:
            self._done = True
            self._inner.close()

    def __enter__(self) -> ObservedResponse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        # Left by an exception before the end of the body: never reported as a success with a
        # partial length. A cancellation (GreenletExit, KeyboardInterrupt: not an Exception) is
        # not reported at all; any other error fails the request with that cause.
        if exc is not None and self.error is None:
            if not isinstance(exc, Exception):
                self.abandon()
                return
            self.error = exc
        self.close()


class RegistryClient:
    """Talks to one registry through a transport, adding headers and authorization.

    ``auth`` holds what the registry said about authentication and the credentials and tokens
    to answer it; only the client uses it."""

    def __init__(
        self,
        registry: Registry,
        transport: Transport,
        *,
        auth: Authenticator | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        observer: Observer = NULL_OBSERVER,
        clock: Callable[[], float] = time.perf_counter,
        retry: RetryPolicy = NO_RETRIES,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.retry = retry
        self.sleep = sleep or _sleep
        self.transport = transport
        self._auth = auth if auth is not None else Authenticator()
        self.headers = headers
        self.observer = observer
        self.clock = clock
        self.http_versions: set[str] = set()  # protocols the transport really used
        # "scheme://host:port/" of the registry: a request URL starting with it is for the
        # registry itself (a cheap test per request; same_origin settles the other spellings).
        parts = urlsplit(registry.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}/"

    @property
    def auth_scheme(self) -> str | None:
        """``"basic"`` or ``"bearer"`` once the registry said how it authenticates."""
        return self._auth.scheme

    def ping(self) -> int:
        """``GET /v2/``: learn whether and how the registry wants authentication, as docker does
        first (distribution-spec "API version check"). Returns 200, or 401 with its challenge
        recorded: nothing is fetched yet, the first request that needs it gets it."""
        request = Request("GET", self.registry.url(), PING)
        with self.send(request, expect=(200, 401), answer_challenge=False) as response:
            if response.status == 401:
                self._auth.learn(response)
            # Read to the end (``{}`` from distribution): a body left unread, even one still on its
            # way, would cost the connection, and the next request a new one.
            read_bounded(response, MAX_ERROR_BODY, until_error=True)
            return response.status

    def prepare(self, scopes: tuple[str, ...]) -> None:
        """Fetch the token for ``scopes`` now when the registry wants one (after ``ping``): before
        concurrent requests start, so they share one token instead of each fetching its own."""
        self._auth.prepare(scopes, self._send_token_request)

    def close(self) -> None:
        """Close the transport's connections."""
        self.transport.close()

    def send(
        self,
        request: Request,
        scopes: tuple[str, ...] = (),
        *,
        expect: Collection[int] = (200,),
        follow_redirects: bool = False,
        answer_challenge: bool = True,
    ) -> ObservedResponse:
        """Send ``request`` and return its response when its status is in ``expect``; raise
        ``RegistryError`` (with the spec error code) otherwise. The caller closes the response.

        With a retry policy, a failure worth another try is followed by a wait and another
        attempt (``regload.retry``); each attempt is observed on its own."""
        attempt = 1
        while True:
            try:
                return self._send_once(request, scopes, expect, follow_redirects, answer_challenge)
            except RegloadError as error:
                delay = self.retry.delay(request, error, attempt)
                if delay is None:
                    raise
            attempt += 1
            self.sleep(delay)

    def _send_once(
        self,
        request: Request,
        scopes: tuple[str, ...],
        expect: Collection[int],
        follow_redirects: bool,
        answer_challenge: bool,
    ) -> ObservedResponse:
        if self.headers:
            request = request.with_headers(self.headers)
        own = request.url.startswith(self._origin) or same_origin(request.url, self._origin)
        if own:
            sent = self._auth.authorize(request, scopes, self._send_token_request)
        else:
            # Authorization is for the registry's own origin only: an upload Location on another
            # host (or scheme, or port) gets none, and its 401 is not answered — as docker does,
            # which keys what a registry asked for by scheme and host.
            sent = request.with_headers((), drop=("Authorization",)) if request.header("Authorization") else request
        response = self._attempt(sent)
        if response.status == 401 and answer_challenge and own and request.replayable:
            # Stop the 401's clock and free its connection first: its time must not include the
            # token request. It is reported once it is known whether the challenge was answered
            # (a success, as for docker on every first request) or not (a failure, with its cause).
            response.hold()
            had_credentials = sent.header("Authorization") is not None
            try:
                retry = self._auth.handle_challenge(
                    response, scopes, self._send_token_request, request.name, sent_credentials=had_credentials
                )
            except RegloadError as e:
                response.fail(e)
                raise
            if retry:
                response.close()
                sent = self._auth.authorize(request, scopes, self._send_token_request)
                response = self._attempt(sent)
        hops = 0
        while follow_redirects and response.status in REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if not location or hops >= MAX_REDIRECTS:
                break
            response.close()
            hops += 1
            # Redirect from the request as sent (with its Authorization): _redirected keeps it on
            # the same origin and drops it for another host.
            sent = _redirected(sent, resolve_url(sent.url, location))
            response = self._attempt(sent)
        if response.status not in expect:
            raise self._fail(response, sent.header("Authorization"))
        return response

    def _send_token_request(self, request: Request) -> ObservedResponse:
        """The token request: the extra headers only, no auth and no checks (``auth`` reads it)."""
        if self.headers:
            request = request.with_headers(self.headers)
        return self._attempt(request)

    def _attempt(self, request: Request, retry_stale: bool = True) -> ObservedResponse:
        started = self.clock()
        try:
            inner = self.transport.send(request)
        except RegloadError as e:
            # A kept-alive connection found closed: the request never reached a live server.
            again = retry_stale and isinstance(e, StaleConnection) and request.method in IDEMPOTENT
            again = again and request.replayable
            seen = StaleConnection(f"{e}; sent again on a new connection") if again else e
            self.observer.on_request(request.name, request.method, self.clock() - started, None, 0, seen)
            if again:
                return self._attempt(request, retry_stale=False)
            raise
        self.http_versions.add(inner.http_version)
        return ObservedResponse(inner, self.observer, request, started, self.clock)

    def _unauthorized(self, endpoint: str, code: str | None, detail: str, authorization: str | None) -> AuthError:
        """What a final 401 means, by what the request carried."""
        if authorization is None:
            missing = self._auth.credentials is None
            reason = "no credentials given" if missing else "authentication required"
            return AuthError(endpoint, 401, code, detail or reason, reason=reason, credentials_missing=missing)
        reason = "credentials refused" if authorization.lower().startswith("basic ") else "token refused"
        return AuthError(endpoint, 401, code, reason + (f" ({detail})" if detail else ""), reason=reason)

    def _fail(self, response: ObservedResponse, authorization: str | None = None) -> RegistryError:
        """Turn an unexpected response into a ``RegistryError`` and close it as failed.
        ``authorization``: the ``Authorization`` the request carried, which tells a 401 apart."""
        status = response.status
        code, detail = None, ""
        if response.headers.get("Content-Type", "").startswith("application/json") or status >= 400:
            code, detail = _error_code(read_bounded(response, MAX_ERROR_BODY, until_error=True))
        error: RegistryError
        if status == 401:
            error = self._unauthorized(response.name, code, detail, authorization)
        elif status == 403:
            error = AuthError(response.name, status, code, detail, reason="access denied")
        else:
            error = RegistryError(response.name, status, code, detail)
        if status in RETRY_STATUSES:
            error.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        response.fail(error)
        return error


def _sleep(seconds: float) -> None:
    # time.sleep looked up now, not at import: under gevent it is the patched, cooperative one.
    time.sleep(seconds)


def _redirected(request: Request, url: str) -> Request:
    """The next hop of a redirect. Authorization never leaves the origin it was meant for:
    blob GETs are often redirected to object storage with a signed URL of its own."""
    drop = () if same_origin(request.url, url) else ("Authorization",)
    method = "GET" if request.method == "GET" else request.method
    hop = Request(method, url, request.name + " (redirected)", request.headers)
    return hop.with_headers((), drop=drop) if drop else hop


def _error_code(body: bytes) -> tuple[str | None, str]:
    """The first spec error (``{"errors": [{"code", "message"}]}``) of an error body."""
    try:
        doc = json.loads(body)
        first = doc["errors"][0]
        code = str(first.get("code") or "") or None
        message = str(first.get("message") or "")
        return code, message[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        # One line: whitespace (newlines of an HTML error page) collapsed before the check.
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        return None, text if text.isprintable() else ""


def expect_header(response: ObservedResponse, name: str) -> str:
    value = response.headers.get(name)
    if not value:
        error = ProtocolError(f"{response.name}: the registry's answer has no {name} header")
        response.fail(error)
        raise error
    return value
