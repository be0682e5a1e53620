"""The transports against real servers on loopback.

A small threaded stdlib server (``_Server``) gives exact control of the wire (framing, multiple
header fields, stalls, connection counts); the real ``docker-registry`` (session fixtures from
``conftest.py``) checks uploads and downloads, TLS and HTTP/2. Both network transports run the
same tests; the in-memory transport and the gevent runner have their own at the end.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gevent
import pytest

from regload.errors import RequestTimeout, StaleConnection, TLSError, TransportError
from regload.http import Request, Response, Transport, TransportOptions, add_query, resolve_url
from regload.transports import make_transport
from regload.transports.httpx_transport import HttpxTransport
from regload.transports.memory import MemoryTransport
from regload.transports.socket_transport import SocketTransport
from regload.wiring.gevent_runner import GeventRunner
from tests.support.registries import RegistryFixture

MiB = 1 << 20


@cache
def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- a loopback server with exact control of the wire -------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_GET(self) -> None:
        self._route()

    do_HEAD = do_PUT = do_PATCH = do_POST = do_GET

    def _route(self) -> None:
        path, _, _ = self.path.partition("?")
        parts = path.strip("/").split("/")
        route = getattr(self, "_" + parts[0], None)
        if route is None:
            self._send(404, b"not found")
        else:
            route(*parts[1:])

    def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _bytes(self, size: str) -> None:
        self._send(200, _payload(int(size)))

    def _chunked(self, size: str) -> None:
        data = _payload(int(size))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(data), 3000):
            piece = data[start : start + 3000]
            self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _eof(self, size: str) -> None:  # no length: the body ends when the connection closes
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(_payload(int(size)))
        self.close_connection = True

    def _multi(self) -> None:
        self._send(
            401,
            b"",
            (
                ("WWW-Authenticate", 'Bearer realm="https://auth.example/token",service="a,b"'),
                ("Link", "</v2/_catalog?n=1&last=a>; rel=next"),
                ("WWW-Authenticate", 'Basic realm="r"'),
            ),
        )

    def _drop(self) -> None:  # read the request, close without an answer
        with self.server.lock:
            self.server.drops += 1
        self.close_connection = True

    def _closing(self, size: str) -> None:  # an answer kept alive by its framing, then a close
        self._send(200, _payload(int(size)))
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)  # the FIN leaves now
        self.close_connection = True
        self.server.stirred.set()

    def _chatty(self, size: str) -> None:  # an answer, then bytes nobody asked for, left open
        self._send(200, _payload(int(size)))
        self.wfile.flush()
        # Once the client has read the answer: bytes in the same segment as the answer are
        # another case (the socket transport's parser sees them; httpcore keeps them buffered).
        self.server.answer_read.wait(5)
        self.wfile.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        self.wfile.flush()
        self.server.stirred.set()

    def _pause(self, ms: str) -> None:  # an answer after a short pause, on a kept-alive connection
        time.sleep(int(ms) / 1000)
        self._send(200, b"ok")

    def _redirect(self) -> None:
        self._send(302, b"", (("Location", "/bytes/10"),))

    def _slow(self) -> None:  # no answer until the test releases it (or the hold's limit)
        hold = self.server.hold
        hold.arrived.set()
        hold.release.wait(hold.limit)
        self._send(200, b"late")
        hold.answered.set()

    def _stall(self) -> None:  # the head and part of the body, then nothing until released
        hold = self.server.hold
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 10)
        hold.arrived.set()
        hold.release.wait(hold.limit)
        hold.answered.set()
        self.close_connection = True

    def _echo(self) -> None:
        """Reads the body by its framing and tells what arrived."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            framing, body = "chunked", self._read_chunked()
        elif "Content-Length" in self.headers:
            framing, body = "content-length", self.rfile.read(int(self.headers["Content-Length"]))
        else:
            framing, body = "none", b""
        report = {
            "framing": framing,
            "length": len(body),
            "sha256": _sha256(body),
            "content_length": self.headers.get("Content-Length"),
            "headers": [[n.lower(), v] for n, v in self.headers.items()],
        }
        self._send(201, json.dumps(report).encode())

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if not size:
                self.rfile.readline()
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()


class _Hold:
    """Where ``/slow`` and ``/stall`` wait, instead of sleeping: ``arrived`` is set once the
    request is in (``/stall``: and the head and 10 body bytes sent), the rest of the answer goes
    out once the test sets ``release`` or after ``limit`` seconds, then ``answered`` is set.

    A timeout test releases the hold only after the call returned, so the call can only have
    ended by the client's own timeout. ``limit`` is the one bound in time: a client that waited
    that long (far beyond its configured timeout) gets the answer and fails the test."""

    def __init__(self, limit: float = 10.0) -> None:
        self.limit = limit
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.drops = 0
        self.hold = _Hold()  # tests that use /slow or /stall set a fresh one
        self.stirred = threading.Event()  # /closing and /chatty touched an idle connection
        self.answer_read = threading.Event()  # /chatty's answer has reached the client

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or close early break pipes here: expected

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


TRANSPORTS: dict[str, Callable[[TransportOptions], Transport]] = {
    "socket": SocketTransport,
    "httpx": lambda options: HttpxTransport(options, http2=True),
}


@pytest.fixture(params=sorted(TRANSPORTS))
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Transport]]:
    """A factory of transports of one kind, closed after the test."""
    made: list[Transport] = []

    def factory(**options: Any) -> Transport:
        transport = TRANSPORTS[request.param](TransportOptions(**options))
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        transport.close()


def _get(transport: Transport, url: str, method: str = "GET", **kw: Any) -> Response:
    return transport.send(Request(method, url, f"{method} test", **kw))


def _body(response: Response, chunk_size: int = MiB) -> bytes:
    try:
        return b"".join(bytes(c) for c in response.iter_bytes(chunk_size))
    finally:
        response.close()


def _connections_during(server: _Server, action: Callable[[], None]) -> int:
    before = server.connections
    action()
    return server.connections - before


# -- both network transports, against the stdlib server -----------------------------------


@pytest.mark.unit
def test_get_streams_a_large_body_in_bounded_chunks(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()
    response = _get(transport, f"{server.url}/bytes/{9 * MiB + 123}")
    assert response.status == 200
    assert response.http_version == "HTTP/1.1"
    assert response.url == f"{server.url}/bytes/{9 * MiB + 123}"
    digest, total = hashlib.sha256(), 0
    for chunk in response.iter_bytes(256 * 1024):
        assert 0 < len(chunk) <= 256 * 1024
        digest.update(chunk)
        total += len(chunk)
    response.close()
    response.close()  # twice is fine
    assert total == 9 * MiB + 123
    assert "sha256:" + digest.hexdigest() == _sha256(_payload(9 * MiB + 123))


@pytest.mark.unit
@pytest.mark.parametrize("route", ["bytes", "chunked", "eof"])
def test_read_returns_the_whole_body_for_every_framing(
    make: Callable[..., Transport], server: _Server, route: str
) -> None:
    transport = make()
    for size in (0, 1, 70_000, 3 * MiB + 1):
        response = _get(transport, f"{server.url}/{route}/{size}")
        assert response.read() == _payload(size)
        assert response.read() == b""  # consumed
        response.close()


@pytest.mark.unit
def test_head_has_headers_and_no_body(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()

    def run() -> None:
        for _ in range(3):
            response = _get(transport, f"{server.url}/bytes/12345", "HEAD")
            assert response.status == 200
            assert response.headers["content-length"] == "12345"
            assert response.read() == b""
            response.close()
        assert _body(_get(transport, f"{server.url}/bytes/10")) == _payload(10)

    assert _connections_during(server, run) == 1


@pytest.mark.unit
@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("method", ["PUT", "PATCH", "POST"])
def test_streamed_upload(make: Callable[..., Transport], server: _Server, method: str, announce: bool) -> None:
    data = _payload(5 * MiB + 3)
    view = memoryview(data)
    # Uneven chunks, memoryviews and bytes mixed, larger than 1 MiB included.
    cuts = [0, 10, 70_000, 70_001, 2 * MiB + 5, len(data)]
    chunks: list[bytes | memoryview] = [
        view[a:b] if i % 2 else bytes(view[a:b]) for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False))
    ]
    consumed: list[int] = []

    def body() -> Iterator[bytes | memoryview]:
        for chunk in chunks:
            consumed.append(len(chunk))
            yield chunk

    transport = make()
    response = _get(
        transport, f"{server.url}/echo?_state=abc", method, body=body(), content_length=len(data) if announce else None
    )
    report = json.loads(_body(response))
    assert response.status == 201
    assert report["framing"] == ("content-length" if announce else "chunked")
    assert report["length"] == len(data)
    assert report["sha256"] == _sha256(data)
    assert sum(consumed) == len(data)
    if announce:
        assert report["content_length"] == str(len(data))


@pytest.mark.unit
@pytest.mark.parametrize("size", [0, 5, 3 * MiB])
def test_bytes_body_and_empty_post(make: Callable[..., Transport], server: _Server, size: int) -> None:
    transport = make()
    data = _payload(size)
    report = json.loads(_body(_get(transport, f"{server.url}/echo", "PUT", body=data)))
    assert (report["framing"], report["length"], report["sha256"]) == ("content-length", size, _sha256(data))
    # A POST without a body says Content-Length: 0 (proxies answer 411 otherwise).
    report = json.loads(_body(_get(transport, f"{server.url}/echo", "POST")))
    assert (report["framing"], report["content_length"]) == ("content-length", "0")


@pytest.mark.unit
def test_body_length_must_match_content_length(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()
    with pytest.raises(TransportError, match="content_length"):
        _get(transport, f"{server.url}/echo", "PUT", body=iter([b"abc"]), content_length=5).close()
    with pytest.raises(TransportError, match="content_length"):
        _get(transport, f"{server.url}/echo", "PUT", body=iter([b"abc", b"def"]), content_length=4).close()
    assert _body(_get(transport, f"{server.url}/bytes/3")) == _payload(3)


@pytest.mark.unit
def test_sends_user_agent_extra_headers_and_request_headers(make: Callable[..., Transport], server: _Server) -> None:
    transport = make(user_agent="regload-test/1", extra_headers=(("X-Run", "r1"), ("X-Over", "default")))
    request = Request(
        "POST", f"{server.url}/echo", "POST echo", headers=(("X-Over", "mine"), ("Accept", "a/b"), ("Accept", "c/d"))
    )
    report = json.loads(_body(transport.send(request)))
    headers = report["headers"]
    assert ["user-agent", "regload-test/1"] in headers
    assert ["x-run", "r1"] in headers
    assert ["x-over", "mine"] in headers and ["x-over", "default"] not in headers
    assert [v for n, v in headers if n == "accept"] == ["a/b", "c/d"]
    assert not [n for n, _ in headers if n == "accept-encoding"]  # bodies are digested as sent


@pytest.mark.unit
def test_multi_valued_header_fields_are_kept_in_order(make: Callable[..., Transport], server: _Server) -> None:
    response = _get(make(), f"{server.url}/multi")
    assert response.status == 401
    assert response.headers.get_all("www-authenticate") == [
        'Bearer realm="https://auth.example/token",service="a,b"',
        'Basic realm="r"',
    ]
    assert response.headers["link"] == "</v2/_catalog?n=1&last=a>; rel=next"
    response.close()


@pytest.mark.unit
def test_redirects_are_returned_not_followed(make: Callable[..., Transport], server: _Server) -> None:
    response = _get(make(), f"{server.url}/redirect")
    assert response.status == 302
    assert response.headers["location"] == "/bytes/10"
    response.close()


@pytest.mark.unit
def test_keep_alive_reuses_one_connection(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()

    def run() -> None:
        for i in range(40):
            route = ("bytes", "chunked")[i % 2]
            assert _body(_get(transport, f"{server.url}/{route}/{1000 + i}")) == _payload(1000 + i)
        json.loads(_body(_get(transport, f"{server.url}/echo", "PUT", body=iter([b"x" * 100]), content_length=100)))

    assert _connections_during(server, run) == 1


@pytest.mark.unit
@pytest.mark.parametrize("route", ["closing", "chatty"])
@pytest.mark.parametrize("pause", ["yielding", "blocking"])
def test_an_idle_connection_the_server_closed_or_wrote_to_is_not_reused(
    make: Callable[..., Transport], server: _Server, route: str, pause: str
) -> None:
    # "yielding": the event loop runs while the connection is idle, so its watch sees the FIN or
    # the bytes; "blocking": the loop has not polled since, so the check must look at the socket.
    transport = make()

    def run() -> None:
        server.stirred.clear()
        server.answer_read.clear()
        assert _body(_get(transport, f"{server.url}/{route}/100")) == _payload(100)
        server.answer_read.set()
        assert server.stirred.wait(5)
        (gevent.sleep if pause == "yielding" else time.sleep)(0.05)
        response = _get(transport, f"{server.url}/bytes/7")
        assert response.status == 200 and _body(response) == _payload(7)

    assert _connections_during(server, run) == 2


@pytest.mark.unit
def test_a_transport_dropped_with_idle_connections_leaves_the_event_loop_sound(server: _Server) -> None:
    # An idle connection is watched by the event loop. Dropped without close(), it must stop
    # that watch before its descriptor is closed: a watch left on the number the kernel gives
    # the next socket would hide that socket from the loop, and its reads would wait forever.
    for _ in range(5):
        transport = SocketTransport(TransportOptions(read_timeout=5))
        assert _body(_get(transport, f"{server.url}/bytes/10")) == _payload(10)
        del transport
        gc.collect()
    fresh = SocketTransport(TransportOptions(read_timeout=5))
    started = time.monotonic()
    for _ in range(5):
        assert _body(_get(fresh, f"{server.url}/bytes/10")) == _payload(10)
    assert time.monotonic() - started < 2
    fresh.close()


@pytest.mark.unit
def test_eof_delimited_body_does_not_reuse_the_connection(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()

    def run() -> None:
        for _ in range(3):
            assert _body(_get(transport, f"{server.url}/eof/5000")) == _payload(5000)

    assert _connections_during(server, run) == 3


@pytest.mark.unit
def test_the_read_timeout_is_per_wait_not_per_connection(make: Callable[..., Transport], server: _Server) -> None:
    # Fifty waits of 30 ms on one connection add up to 1.5 s, past the 1 s limit that each of
    # them is far within. A timer that kept counting down across waits failed the later ones.
    transport = make(read_timeout=1.0)
    for _ in range(50):
        assert _body(_get(transport, f"{server.url}/pause/30")) == b"ok"


@pytest.mark.unit
def test_half_read_response_never_reaches_the_next_request(make: Callable[..., Transport], server: _Server) -> None:
    transport = make()
    for route in ("bytes", "chunked"):
        response = _get(transport, f"{server.url}/{route}/{4 * MiB}")
        next(iter(response.iter_bytes(64 * 1024)))
        response.close()
        with pytest.raises(TransportError, match="after close"):
            response.read()
        for size in (17, 100_000):
            assert _body(_get(transport, f"{server.url}/bytes/{size}")) == _payload(size)


@pytest.mark.unit
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_no_hidden_retry_when_the_server_drops_the_request(
    make: Callable[..., Transport], server: _Server, method: str
) -> None:
    # geventhttpclient's HTTPClient.request (2.6.1) would send GET and PUT again on a new connection.
    transport = make()
    assert _body(_get(transport, f"{server.url}/bytes/5")) == _payload(5)  # a pooled connection
    before = server.drops
    body = iter([b"abc"]) if method == "PUT" else None
    with pytest.raises(TransportError, match=r"to 127\.0\.0\.1:\d+: "):
        _get(transport, f"{server.url}/drop", method, body=body, content_length=3 if body else None)
    assert server.drops - before == 1
    assert _body(_get(transport, f"{server.url}/bytes/5")) == _payload(5)


@pytest.mark.unit
@pytest.mark.parametrize("asked", ["keep_alive off", "a header"])
def test_a_request_that_says_close_never_reuses_its_connection(
    make: Callable[..., Transport], server: _Server, asked: str
) -> None:
    # RFC 9112 §9.6: whatever the answer says. The stdlib server closes the connection after such
    # a request without saying so in its answer, as many proxies and load balancers do.
    transport = make(keep_alive=asked != "keep_alive off")
    headers = (("Connection", "close"),) if asked == "a header" else ()

    def run() -> None:
        for size in range(100, 120):
            assert _body(_get(transport, f"{server.url}/bytes/{size}", headers=headers)) == _payload(size)

    assert _connections_during(server, run) == 20


@pytest.mark.unit
def test_a_reused_connection_closed_before_any_answer_is_stale_and_closes_the_idle_ones(server: _Server) -> None:
    transport = SocketTransport(TransportOptions(read_timeout=5))

    def run() -> None:
        # Two bodies left unread hold two connections; read, both go back to the pool.
        held = [_get(transport, f"{server.url}/bytes/{MiB + i}") for i in range(2)]
        for i, response in enumerate(held):
            assert _body(response) == _payload(MiB + i)
        with pytest.raises(StaleConnection, match=r"to 127\.0\.0\.1:\d+: server closed a reused connection before"):
            _get(transport, f"{server.url}/drop")
        # The other idle connection, as old, was closed with it: this one is new ...
        assert _body(_get(transport, f"{server.url}/bytes/7")) == _payload(7)
        # ... and a new connection dropped the same way is not the keep-alive race.
        transport.close()
        fresh = SocketTransport(TransportOptions(read_timeout=5))
        with pytest.raises(TransportError, match="closed the connection without a response") as caught:
            _get(fresh, f"{server.url}/drop")
        assert not isinstance(caught.value, StaleConnection)
        fresh.close()

    assert _connections_during(server, run) == 4


@pytest.mark.unit
def test_connection_refused_is_a_clean_transport_error(make: Callable[..., Transport]) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as unused:
        port = unused.server_address[1]  # bound, then closed: nobody listens
    transport = make()
    request = Request(
        "GET",
        f"http://127.0.0.1:{port}/v2/repo/blobs/uploads/x?_state=SECRETSTATE",
        "GET /v2/<name>/blobs/uploads/<session>",
        headers=(("Authorization", "Bearer SECRETTOKEN"),),
    )
    with pytest.raises(TransportError) as caught:
        transport.send(request)
    message = str(caught.value)
    assert message == f"GET /v2/<name>/blobs/uploads/<session> to 127.0.0.1:{port}: connection refused"
    assert type(caught.value) is TransportError


@pytest.mark.unit
def test_unknown_host_is_a_transport_error(make: Callable[..., Transport]) -> None:
    with pytest.raises(TransportError, match="no-such-host.invalid:80"):
        _get(make(connect_timeout=5), "http://no-such-host.invalid/v2/")


@pytest.mark.unit
def test_read_timeout_waiting_for_the_head(make: Callable[..., Transport], server: _Server) -> None:
    # The server holds its answer (``_Hold``, up to 10 s, 30 times the timeout) until released.
    hold = server.hold = _Hold()
    try:
        with pytest.raises(RequestTimeout, match=r"to 127\.0\.0\.1:\d+: read timed out after 0.3s"):
            _get(make(read_timeout=0.3), f"{server.url}/slow")
        assert not hold.answered.is_set()  # the call gave up before the server answered
        assert hold.arrived.wait(10)  # the request was sent: the read timed out, not the connect
    finally:
        hold.release.set()


@pytest.mark.unit
def test_read_timeout_in_the_middle_of_the_body(make: Callable[..., Transport], server: _Server) -> None:
    hold = server.hold = _Hold()  # 10 body bytes of 1000, then nothing until released
    transport = make(read_timeout=0.3)
    try:
        response = _get(transport, f"{server.url}/stall")
        assert response.status == 200
        with pytest.raises(RequestTimeout):
            response.read()
        assert not hold.answered.is_set()  # timed out while the server still held the rest
    finally:
        hold.release.set()
    response.close()
    assert _body(_get(transport, f"{server.url}/bytes/99")) == _payload(99)


@pytest.mark.unit
def test_header_injection_is_refused(make: Callable[..., Transport], server: _Server) -> None:
    request = Request("GET", f"{server.url}/bytes/1", "GET test", headers=(("Authorization", "Bearer x\r\nX-Evil: 1"),))
    with pytest.raises(TransportError) as caught:
        make().send(request)
    assert "X-Evil" not in str(caught.value) and "Bearer" not in str(caught.value)


@pytest.mark.unit
def test_unsupported_scheme(make: Callable[..., Transport]) -> None:
    with pytest.raises(TransportError):
        _get(make(), "ftp://127.0.0.1/x")


@pytest.mark.unit
def test_greenlets_share_the_bounded_pool(server: _Server) -> None:
    transport = SocketTransport(TransportOptions(max_connections_per_host=4))

    def fetch(i: int) -> bool:
        return _body(_get(transport, f"{server.url}/bytes/{2000 + i}")) == _payload(2000 + i)

    def run() -> None:
        greenlets = [gevent.spawn(fetch, i) for i in range(64)]
        gevent.joinall(greenlets, raise_error=True)
        assert all(g.value for g in greenlets)

    assert _connections_during(server, run) <= 4
    transport.close()


@pytest.mark.unit
def test_make_transport() -> None:
    assert isinstance(make_transport(), SocketTransport)
    transport = make_transport(TransportOptions(), http2=True)
    assert isinstance(transport, HttpxTransport)
    transport.close()


# -- against the real registry: uploads, downloads, TLS, HTTP/2 ---------------------------


def _push_blob(transport: Transport, base: str, repo: str, data: bytes) -> str:
    """POST, two streamed PATCHes (sized, then chunked), PUT ?digest=: a docker-style upload."""
    digest = _sha256(data)
    response = transport.send(Request("POST", f"{base}/v2/{repo}/blobs/uploads/", "POST upload"))
    assert response.status == 202, response.read()
    location = resolve_url(response.url, response.headers["location"])
    response.close()
    half = len(data) // 2
    for part, length in ((data[:half], half), (data[half:], None)):
        chunks = (memoryview(part)[i : i + 300_000] for i in range(0, len(part), 300_000))
        response = transport.send(Request("PATCH", location, "PATCH upload", body=chunks, content_length=length))
        assert response.status == 202, response.read()
        location = resolve_url(response.url, response.headers["location"])
        response.close()
    response = transport.send(Request("PUT", add_query(location, [("digest", digest)]), "PUT upload"))
    assert response.status == 201, response.read()
    response.close()
    return digest


def _registry_transport(kind: str, registry: RegistryFixture, **options: Any) -> Transport:
    if registry.ca_cert is not None:
        options.setdefault("ca_cert", str(registry.ca_cert))
    return TRANSPORTS[kind](TransportOptions(**options))


@pytest.mark.registry
@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
@pytest.mark.parametrize("mode", ["anon", "tls"])
def test_registry_blob_round_trip(kind: str, mode: str, request: pytest.FixtureRequest) -> None:
    registry: RegistryFixture = request.getfixturevalue(f"registry_{mode}")
    transport = _registry_transport(kind, registry)
    data = _payload(6 * MiB + 11)
    digest = _push_blob(transport, registry.url, f"transports/{kind}-{mode}", data)
    url = f"{registry.url}/v2/transports/{kind}-{mode}/blobs/{digest}"

    head = transport.send(Request("HEAD", url, "HEAD blob"))
    assert (head.status, head.headers["content-length"], head.read()) == (200, str(len(data)), b"")
    head.close()
    response = transport.send(Request("GET", url, "GET blob"))
    expected = "HTTP/2" if (kind, mode) == ("httpx", "tls") else "HTTP/1.1"
    assert response.http_version == expected
    assert response.headers["docker-content-digest"] == digest
    hasher = hashlib.sha256()
    for chunk in response.iter_bytes():
        hasher.update(chunk)
    response.close()
    assert "sha256:" + hasher.hexdigest() == digest
    transport.close()


@pytest.mark.registry
@pytest.mark.parametrize("kind", sorted(TRANSPORTS))
def test_tls_needs_a_trusted_certificate(kind: str, registry_tls: RegistryFixture) -> None:
    untrusting = TRANSPORTS[kind](TransportOptions())
    with pytest.raises(TLSError, match=r"to 127\.0\.0\.1:\d+: TLS certificate verification failed"):
        _get(untrusting, registry_tls.api_url)
    untrusting.close()
    for options in (TransportOptions(ca_cert=str(registry_tls.ca_cert)), TransportOptions(insecure=True)):
        transport = TRANSPORTS[kind](options)
        response = _get(transport, registry_tls.api_url)
        assert response.status == 200
        assert response.read() == b"{}"
        response.close()
        transport.close()


@pytest.mark.registry
def test_httpx_half_read_http2_streams_do_not_stall_the_connection(registry_tls: RegistryFixture) -> None:
    # httpcore forgets a stream closed early without resetting it; its unacknowledged data
    # then exhausts the connection's 16 MiB flow-control window (encode/httpcore#943).
    transport = _registry_transport("httpx", registry_tls, read_timeout=5)
    data = _payload(20 * MiB)
    digest = _push_blob(transport, registry_tls.url, "transports/h2-half-read", data)
    url = f"{registry_tls.url}/v2/transports/h2-half-read/blobs/{digest}"
    for _ in range(3):
        response = _get(transport, url)
        assert response.http_version == "HTTP/2"
        next(iter(response.iter_bytes()))
        response.close()
    response = _get(transport, url)
    assert hashlib.sha256(_body(response)).hexdigest() == digest.removeprefix("sha256:")
    transport.close()


# -- MemoryTransport ----------------------------------------------------------------------


@pytest.mark.unit
def test_memory_transport_scripts_and_records() -> None:
    seen: list[bytes] = []

    def handler(request: Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        seen.append(body)
        return 201, [("Location", "/next")], b""

    transport = MemoryTransport(handler)
    transport.queue(401, [("WWW-Authenticate", "Bearer a"), ("WWW-Authenticate", "Basic b")])
    transport.queue(200, body=b'{"token": "t"}')

    first = transport.send(Request("GET", "http://r/v2/", "GET /v2/", headers=(("Accept", "x"),)))
    assert first.status == 401 and first.headers.get_all("www-authenticate") == ["Bearer a", "Basic b"]
    second = transport.send(Request("GET", "http://auth/token", "GET token"))
    assert second.read() == b'{"token": "t"}'
    parts: list[bytes | memoryview] = [b"ab", memoryview(b"cd")]
    third = transport.send(Request("PATCH", "http://r/up", "PATCH", body=iter(parts), content_length=4))
    assert third.status == 201 and seen == [b"abcd"]
    head = transport.send(Request("HEAD", "http://r/blob", "HEAD"))
    assert head.read() == b""

    assert [r.method for r in transport.requests] == ["GET", "GET", "PATCH", "HEAD"]
    assert transport.requests[0].headers["accept"] == "x"
    assert transport.requests[2].body == b"abcd" and transport.requests[2].content_length == 4
    assert len(transport.open_responses) == 4
    for response in (first, second, third, head):
        response.close()
    assert transport.open_responses == [] and transport.unanswered == 0


@pytest.mark.unit
def test_memory_transport_errors() -> None:
    transport = MemoryTransport()
    transport.queue_error(TransportError("GET x to r:80: connection refused"))
    with pytest.raises(TransportError, match="refused"):
        transport.send(Request("GET", "http://r/", "GET x"))
    with pytest.raises(AssertionError, match="no reply"):
        transport.send(Request("GET", "http://r/", "GET x"))
    with pytest.raises(TransportError, match="content_length"):
        transport.send(Request("PUT", "http://r/", "PUT x", body=iter([b"abc"]), content_length=4))
    transport.queue(200, body=b"0123456789")
    response = transport.send(Request("GET", "http://r/", "GET x"))
    assert [bytes(c) for c in response.iter_bytes(4)] == [b"0123", b"4567", b"89"]


# -- GeventRunner -------------------------------------------------------------------------


@pytest.mark.unit
def test_runner_keeps_order_and_limit() -> None:
    active, peak = 0, 0

    def work(item: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        gevent.sleep(0.001 * (item % 5))
        active -= 1
        return item * 10

    assert GeventRunner().map(work, list(range(30)), 4) == [i * 10 for i in range(30)]
    assert peak == 4
    assert GeventRunner().map(work, [], 4) == []


@pytest.mark.unit
def test_runner_raises_the_first_failure_in_item_order() -> None:
    def work(item: int) -> int:
        if item in (2, 5):
            raise ValueError(f"item {item}")
        return item

    with pytest.raises(ValueError, match="item 2"):
        GeventRunner().map(work, list(range(8)), 8)


@pytest.mark.unit
def test_runner_stops_starting_and_kills_the_rest_after_a_failure() -> None:
    started: list[int] = []
    killed: list[int] = []
    unwound: list[int] = []
    greenlets: list[gevent.Greenlet] = []

    def work(item: int) -> int:
        started.append(item)
        greenlets.append(gevent.getcurrent())
        try:
            if item == 0:
                gevent.sleep(0.01)
                raise RuntimeError("boom")
            gevent.sleep(30)
            return item
        except gevent.GreenletExit:
            killed.append(item)
            raise
        finally:
            unwound.append(item)

    with pytest.raises(RuntimeError, match="boom"):
        GeventRunner().map(work, list(range(10)), 3)
    assert sorted(started) == [0, 1, 2]
    assert sorted(killed) == [1, 2]  # killed in their 30 s sleep, not waited for
    assert sorted(unwound) == [0, 1, 2]
    assert all(g.dead for g in greenlets)


@pytest.mark.unit
def test_runner_killed_caller_leaves_no_greenlet() -> None:
    greenlets: list[gevent.Greenlet] = []

    def work(item: int) -> int:
        greenlets.append(gevent.getcurrent())
        gevent.sleep(30)
        return item

    caller = gevent.spawn(GeventRunner().map, work, [1, 2, 3], 2)
    gevent.sleep(0.01)
    caller.kill(block=True)
    assert len(greenlets) == 2 and all(g.dead for g in greenlets)
