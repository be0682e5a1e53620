"""SocketTransport: HTTP/1.1 on gevent sockets and the httptools (llhttp) parser, the default.

Each request costs what the wire needs and little more (``bench/per_request.py`` measures it
beside a bare socket loop):

- one pool per origin: a LIFO list of idle connections behind a bounded semaphore;
- an idle connection is watched by the event loop: the server's FIN, or bytes nobody asked for,
  mark it unfit, with no system call per request. When the loop has not polled for a moment
  (a long stretch of work in Python), one ``recv(1, MSG_PEEK | MSG_DONTWAIT)`` on the raw socket
  tells instead, still with no switch to the gevent hub;
- the request head is one ``bytes`` join, built once per distinct request and process, sent in
  the same write as a small body;
- the answer is waited for before it is read (no read that can only fail with ``EAGAIN``), on a
  timer the connection reuses (gevent's socket methods allocate a ``Timeout`` per wait);
- llhttp (Node.js's parser) reads the head, calling back once per field;
- a body of known length is read with ``recv_into`` into one buffer per response, handed out
  as memoryview chunks of it: a chunk is valid until the next one is asked for.

Connections are kept alive unless either side says ``close``: a request sent with
``Connection: close`` (``keep_alive=False``, docker's profile, or a header of the caller's) never
gives its connection back to the pool, whatever the answer says (RFC 9112 §9.6: proxies and load
balancers often close without echoing the header).

Nothing is sent twice: a write that fails is an error, once any answer the server gave before
it closed (a 401, a 413) has been looked for. A connection taken from the pool whose server
closed it (FIN, not a reset) before any byte of the answer to a request sent whole (the keep-alive
race, RFC 9112 §9.3.1: the server closed it just as the request left) is ``StaleConnection``,
and the other idle connections to that origin, no younger, are closed with it; the client
decides whether to send the request again (``RegistryClient`` does, once, for an idempotent
request, and reports the dead attempt). Redirects, retries and auth belong to the client.
"""

from __future__ import annotations

import _socket
import errno
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import cast
from urllib.parse import urlsplit

import gevent.socket
import gevent.ssl
import httptools
from gevent import get_hub, getcurrent
from gevent.lock import BoundedSemaphore
from gevent.monkey import get_original

from regload.errors import StaleConnection, TransportError
from regload.http import Headers, Request, Response, TransportOptions
from regload.transports._common import (
    body_length,
    build_ssl_context,
    default_headers,
    describe,
    label,
    length_mismatch,
    map_exception,
    merge_headers,
)

_HEAD_READ = 64 * 1024  # the buffer that response heads and parsed (chunked) bodies are read into
_MAX_HEAD = 1 << 20  # a response head larger than this is refused (Go's server default)
_COALESCE = 64 * 1024  # a bytes body up to this size leaves in the same write as the head
_MAX_BUFFER = 16 << 20  # a body that claims gigabytes gets buffers as its bytes arrive
_TARGET_OK = re.compile(r"[\x21-\x7e\x80-\U0010ffff]*")
_MAX_NAMES = 256  # error-message prefixes kept per origin (one per endpoint template)
_MAX_HEADS = 4096  # request heads kept per process (then forgotten all at once)
_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
# The C method itself: gevent's wrappers wait on EAGAIN, and the one under a TLS socket refuses
# flags (it stands for the ``ssl.SSLSocket``); a peek at the TCP bytes needs neither.
_raw_recv = _socket.socket.recv
_raw_recv_into = _socket.socket.recv_into
_raw_send = _socket.socket.send
_PLAIN = gevent.socket.socket  # a TCP socket (a TLS one is a subclass: its bytes must go through it)
_FRESH = 0.001  # s: an event loop that polled this recently has seen what an idle socket got
_now = time.time  # the event loop's clock (``loop.now()``) is wall-clock time


# Request heads as sent, by what makes them, and whether they say ``Connection: close``.
_HEADS: dict[tuple[object, ...], tuple[bytes, bool]] = {}

_os_thread_id = get_original("_thread", "get_ident")  # the patched one tells greenlets apart
_HEAD_BUFFERS: dict[int, memoryview] = {}


def _head_buffer() -> memoryview:
    """The receive buffer of this OS thread, shared by every response: a head (or a piece of a
    chunked body) is parsed as soon as it is received, with no greenlet switch in between, so
    nothing in the buffer outlives the next receive. One per thread, not per transport: a
    Locust process has a transport per user, and 1,000 users would hold 1,000 buffers."""
    ident = _os_thread_id()
    buffer = _HEAD_BUFFERS.get(ident)
    if buffer is None:
        buffer = _HEAD_BUFFERS[ident] = memoryview(bytearray(_HEAD_READ))
    return buffer


class _IdleWatch:
    """The event loop's eye on a connection while it sits idle in the pool: anything readable
    there (the server's FIN or RST, or bytes nobody asked for) makes it unfit for a request.
    An io watcher of its own on the socket's descriptor, not holding the loop open (``ref``)."""

    __slots__ = ("watcher", "stirred")

    def __init__(self, loop: object, fd: int) -> None:
        self.watcher = loop.io(fd, 1, ref=False)  # type: ignore[attr-defined]  # 1: EV_READ
        self.stirred = False

    def start(self) -> None:
        self.stirred = False
        self.watcher.start(_stirred, self)

    def stop(self) -> bool:
        """Stop watching; True when the socket stirred while idle (or is about to be told so)."""
        watcher = self.watcher
        stirred = self.stirred or watcher.pending  # triggered in this loop pass, not yet called back
        watcher.stop()
        return stirred


def _stirred(watch: _IdleWatch) -> None:
    watch.stirred = True
    watch.watcher.stop()  # level-triggered: once is enough


class _Connection:
    """A pooled socket and its reads. On a TCP socket a read goes straight to the C method, and
    a wait for bytes reuses one timer of the connection's: gevent's own ``recv_into`` allocates
    a ``Timeout`` for every wait (1.7 µs against 0.13 µs for restarting a timer, measured here).
    A TLS socket reads through gevent's ``SSLSocket``, which knows what OpenSSL has buffered."""

    __slots__ = ("sock", "reused", "_raw", "_timer", "_hub", "_idle")

    def __init__(self, sock: socket.socket, read_timeout: float | None) -> None:
        self.sock = sock
        self.reused = False  # it carried a request before: the server may have closed it since
        self._raw = sock._sock if type(sock) is _PLAIN else None  # type: ignore[attr-defined]
        self._hub = get_hub()
        # A repeating timer, armed with ``again``: libev's plain start would go on counting down
        # from where the last stop left it, so that many short waits would add up to a timeout.
        # A TLS socket waits through gevent's own methods and needs none.
        timed = self._raw is not None and read_timeout is not None
        self._timer = self._hub.loop.timer(read_timeout, read_timeout) if timed else None
        self._idle: _IdleWatch | None = None

    def park(self) -> None:
        """Idle in the pool from now on, watched by the event loop."""
        if self._idle is None:
            self._idle = _IdleWatch(self._hub.loop, self.sock.fileno())
        self._idle.start()
        self.reused = True

    def alive(self) -> bool:
        """A parked keep-alive socket can carry a request: the server has neither closed it nor
        written to it. The event loop's watch tells, with no system call, as long as the loop
        polled a moment ago (it does whenever every greenlet waits: under load, all the time);
        after a longer stretch of work in Python, one peek at the raw socket tells, still with
        no switch to the hub."""
        if self._idle.stop():  # type: ignore[union-attr]  # parked before it is asked
            return False
        if _now() - self._hub.loop.now() < _FRESH:
            return True
        try:
            _raw_recv(self.sock._sock, 1, _PEEK)  # type: ignore[attr-defined]
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # b"": closed by the server; a byte: unasked-for data

    def recv_into(self, view: memoryview, wait_first: bool = False) -> int:
        """``socket.recv_into``, waiting cooperatively. ``wait_first``: the bytes cannot be there
        yet (an answer to a request just sent), so the hub is asked first, with no read that
        would only fail with ``EAGAIN``."""
        raw = self._raw
        if raw is None:
            return self.sock.recv_into(view)
        if not wait_first:
            try:
                return _raw_recv_into(raw, view)
            except BlockingIOError:
                pass
        while True:
            self._wait_readable()
            try:
                return _raw_recv_into(raw, view)
            except BlockingIOError:  # woken with nothing to read (another reader, a spurious wake-up)
                continue

    def _wait_readable(self) -> None:
        watcher = self.sock._read_event  # type: ignore[attr-defined]
        timer = self._timer
        if timer is None:
            self._hub.wait(watcher)
            return
        # ``update``: the loop's clock may be stale after a long stretch of work in Python.
        timer.again(getcurrent().throw, TimeoutError, update=True)
        try:
            self._hub.wait(watcher)
        finally:
            timer.stop()

    def close(self) -> None:
        # The watchers first: libev must not watch a descriptor number the kernel may reuse.
        if self._idle is not None:
            self._idle.watcher.close()
            self._idle = None
        if self._timer is not None:
            self._timer.close()
        self.sock.close()

    def __del__(self) -> None:
        # A pool dropped without close() (a transport left to the garbage collector).
        if getattr(self, "_idle", None) is not None:
            self.close()


class _Pool:
    """The connections to one origin: at most ``size`` at once (a request waits for a free one,
    with no time limit: the wait shows as latency), the idle ones reused last-in first-out."""

    __slots__ = ("host", "port", "tls", "options", "idle", "slots", "closed")

    def __init__(self, host: str, port: int, tls: gevent.ssl.SSLContext | None, options: TransportOptions) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.options = options
        self.idle: list[_Connection] = []
        self.slots = BoundedSemaphore(max(1, options.max_connections_per_host))
        self.closed = False

    def get(self) -> _Connection:
        self.slots.acquire()
        try:
            if self.closed:
                raise TransportError("transport is closed")
            idle = self.idle
            while idle:
                conn = idle.pop()
                if conn.alive():
                    return conn
                conn.close()
            return _Connection(self._connect(), self.options.read_timeout)
        except BaseException:
            self.slots.release()
            raise

    def _connect(self) -> socket.socket:
        # Each address DNS gives is tried in turn (localhost: ::1, then 127.0.0.1); the TLS
        # handshake is part of the connect and has its time limit.
        sock = gevent.socket.create_connection((self.host, self.port), timeout=self.options.connect_timeout)
        try:
            # A head and then a body in two writes must not wait for a delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = cast(socket.socket, self.tls.wrap_socket(sock, server_hostname=self.host))
            sock.settimeout(self.options.read_timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def put(self, conn: _Connection) -> None:
        """Back in the pool, for the next request."""
        if self.closed:
            conn.close()
        else:
            conn.park()
            self.idle.append(conn)
        self.slots.release()

    def discard(self, conn: _Connection) -> None:
        """Closed: its state is unknown (a body half read, a write cut short, a server close)."""
        conn.close()
        self.slots.release()

    def close_idle(self) -> None:
        """Close the idle connections: one of them was found closed by the server, and the rest,
        used before it, have been idle at least as long."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    def close(self) -> None:
        self.closed = True
        self.close_idle()


class _Origin:
    """A scheme, host and port: its pool, its Host header and its name in error messages."""

    __slots__ = ("pool", "host_line", "host", "port", "names")

    def __init__(self, pool: _Pool, host_header: str, host: str, port: int) -> None:
        self.pool = pool
        self.host_line = "Host: " + host_header
        self.host = host
        self.port = port
        self.names: dict[tuple[str, str], str] = {}  # (method, name) -> error-message prefix

    def where(self, request: Request) -> str:
        """``describe(request, host, port)``, formatted once per endpoint, not per request."""
        key = (request.method, request.name)
        where = self.names.get(key)
        if where is None:
            where = describe(request, self.host, self.port)
            if len(self.names) < _MAX_NAMES:
                self.names[key] = where
        return where


class _Message:
    """What llhttp reports of one response: the final head's fields in order, body bytes, and
    whether anything came after the response (then the connection is never reused)."""

    __slots__ = ("_feeding", "head_only", "fields", "body", "final", "complete", "garbage")

    def __init__(self, head_only: bool) -> None:
        # The parser (the response's) holds this object for its callbacks; this object holds
        # the parser only while it feeds it, so that no reference cycle is left to the garbage
        # collector (a cycle per response made a Locust process of 1,000 users larger and slower).
        self._feeding: httptools.HttpResponseParser | None = None
        self.head_only = head_only  # the answer to a HEAD: no body follows, whatever it says
        self.fields: list[tuple[str, str]] = []
        self.body: deque[bytes | memoryview] = deque()
        self.final = False  # the head of the final (non-1xx) response is complete
        self.complete = False  # ... and so is its body
        self.garbage = False

    def on_message_begin(self) -> None:
        if self.final:
            self.garbage = True  # bytes after the end of the response
        else:
            self.fields = []  # an interim 1xx head is forgotten

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self._feeding.get_status_code() >= 200:  # type: ignore[union-attr]  # called while it feeds
            self.final = True
            self.complete = self.head_only

    def on_body(self, data: bytes) -> None:
        if self.head_only:
            self.garbage = True  # llhttp cannot be told that a HEAD answer has no body
        else:
            self.body.append(data)

    def on_message_complete(self) -> None:
        if self.final:
            self.complete = True

    def feed(self, parser: httptools.HttpResponseParser, data: memoryview, where: str) -> None:
        self._feeding = parser
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if not self.complete:
                raise TransportError(f"{where}: the server switched protocols (status 101)") from exc
            self.garbage = True
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise TransportError(f"{where}: invalid HTTP response: {exc}") from exc
            self.garbage = True
        finally:
            self._feeding = None


class _SendFailed(Exception):
    """A socket write failed (kept apart from errors raised by the body iterator)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause)
        self.cause = cause


def _cooperative_context() -> gevent.ssl.SSLContext:
    """What ``ssl.create_default_context()`` makes, as gevent's class (its sockets yield to other
    greenlets whether or not the process is monkey-patched; ``gevent.ssl.create_default_context``
    is the standard library's function and makes the blocking kind in an unpatched process)."""
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.load_default_certs()
    return context


_TLS_CONTEXTS: dict[tuple[str | None, bool], gevent.ssl.SSLContext] = {}


def _tls_context(options: TransportOptions) -> gevent.ssl.SSLContext:
    """One client TLS context per CA file and verification mode, shared by the transports of a
    process: loading the system CAs costs ~10 ms of CPU and ~1 MiB, which a Locust run would
    otherwise pay once per user, all at spawn time."""
    key = (options.ca_cert, options.insecure)
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = build_ssl_context(options, _cooperative_context)
        context.set_alpn_protocols(["http/1.1"])  # all this transport speaks
        _TLS_CONTEXTS[key] = context
    return context


class SocketTransport:
    """HTTP/1.1 on gevent sockets: no redirects, no retries, no auth."""

    def __init__(self, options: TransportOptions | None = None) -> None:
        self._options = options or TransportOptions()
        # Loading the system's CAs costs ~20 ms: that is done for the first https origin; a CA
        # file given is loaded now, so that a bad one is refused before anything is sent.
        self._tls = _tls_context(self._options) if self._options.ca_cert else None
        self._defaults = default_headers(self._options)
        self._origins: dict[tuple[str, str], _Origin] = {}
        self._prefixes: dict[str, _Origin] = {}  # "scheme://netloc" as the URLs spell it
        self._closed = False

    def send(self, request: Request) -> Response:
        origin, target = self._route(request)
        where = origin.where(request)
        length = body_length(request, where)
        head, closes = self._head(request, origin, target, length, where)
        pool = origin.pool
        try:
            conn = pool.get()
        except TransportError as exc:
            raise TransportError(f"{where}: {exc}") from exc
        except Exception as exc:
            raise map_exception(exc, where, "connect", self._options.connect_timeout) from exc
        try:
            try:
                _write(conn.sock, head, request, length, where)
            except _SendFailed as failed:
                # The server may have answered early (401, 413 ...) and closed: that answer is
                # worth more than the broken pipe.
                if failed.cause.errno in (errno.EPIPE, errno.ECONNRESET):
                    try:
                        return _SocketResponse(conn, pool, request, where, self, keep_alive=False, sent=False)
                    except TransportError:
                        pass
                raise map_exception(failed.cause, where, "write", self._options.read_timeout) from failed.cause
            return _SocketResponse(conn, pool, request, where, self, keep_alive=not closes)
        except BaseException as exc:
            pool.discard(conn)  # a response takes the connection over only once it is built
            if isinstance(exc, StaleConnection):
                pool.close_idle()
            raise

    def close(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            origin.pool.close()
        self._origins.clear()
        self._prefixes.clear()

    # -- request side ---------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[_Origin, str]:
        url = request.url
        # The usual URL, "scheme://netloc/path?query", split by one search instead of urlsplit.
        cut = url.find("/", url.find("://") + 3)
        if cut > 0 and "#" not in url:
            origin = self._prefixes.get(url[:cut])
            if origin is not None:
                return origin, url[cut:]
        scheme, netloc, path, query, _ = urlsplit(url)
        origin = self._origins.get((scheme, netloc))
        if origin is None:
            origin = self._new_origin(request, scheme, netloc)
        target = path or "/"
        if query:
            target += "?" + query
        if cut > 0 and url[:cut] == f"{scheme}://{netloc}" and url[cut:] == target:
            self._prefixes[url[:cut]] = origin
        return origin, target

    def _new_origin(self, request: Request, scheme: str, netloc: str) -> _Origin:
        what = label(request)
        if self._closed:
            raise TransportError(f"{what}: transport is closed")
        if scheme not in ("http", "https"):
            raise TransportError(f"{what}: unsupported URL scheme {scheme!r}")
        parts = urlsplit(f"{scheme}://{netloc}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise TransportError(f"{what}: invalid port in URL") from exc
        host = parts.hostname
        if not host:
            raise TransportError(f"{what}: URL without a host")
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = _tls_context(self._options)
            tls = self._tls
        host_header = netloc.rpartition("@")[2]  # never forward userinfo
        origin = _Origin(_Pool(host, port, tls, self._options), host_header, host, port)
        self._origins[(scheme, netloc)] = origin
        return origin

    def _head(
        self, request: Request, origin: _Origin, target: str, length: int | None, where: str
    ) -> tuple[bytes, bool]:
        """The request head, and whether it says ``Connection: close``. A load test sends the same
        few requests over and over (the same pool images' paths, from every user): their heads
        are built and checked once per process."""
        key = (origin.host_line, self._defaults, request.method, target, request.headers, length, request.body is None)
        head = _HEADS.get(key)
        if head is None:
            head = self._new_head(request, origin, target, length, where)
            if len(_HEADS) >= _MAX_HEADS:
                _HEADS.clear()
            _HEADS[key] = head
        return head

    def _new_head(
        self, request: Request, origin: _Origin, target: str, length: int | None, where: str
    ) -> tuple[bytes, bool]:
        if not _TARGET_OK.fullmatch(target):
            raise TransportError(f"{where}: URL path or query contains spaces or control characters")
        lines = [f"{request.method} {target} HTTP/1.1"]
        if not request.headers or request.header("Host") is None:
            lines.append(origin.host_line)
        fields = merge_headers(self._defaults, request)
        closes = any(n.lower() == "connection" and _lists_close(v) for n, v in fields)
        lines += [f"{n}: {v}" for n, v in fields]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        elif request.body is not None:
            lines.append("Transfer-Encoding: chunked")
        text = "\r\n".join(lines) + "\r\n\r\n"
        # One C-speed scan instead of a check per field: a CR or LF inside a name or value
        # (header injection, e.g. through a token) shows up as an extra line break.
        if text.count("\n") != len(lines) + 1 or text.count("\r") != len(lines) + 1:
            bad = [n for n, v in (*self._defaults, *request.headers) if "\r" in n + v or "\n" in n + v]
            raise TransportError(f"{where}: header field {bad[0] if bad else request.method!r} contains a line break")
        try:
            return text.encode("latin-1"), closes
        except UnicodeEncodeError as exc:
            raise TransportError(f"{where}: a header is not latin-1 text") from exc


def _lists_close(value: str) -> bool:
    """Whether a ``Connection`` field value lists the ``close`` option (RFC 9110 §7.6.1)."""
    return any(option.strip().lower() == "close" for option in value.split(","))


def _send(sock: socket.socket, data: bytes | memoryview) -> None:
    """``sock.sendall(data)``. On a TCP socket, one ``send`` first: a head or a small body fits in
    the socket's buffer, and gevent's ``sendall`` costs a ``getsockopt`` call on every use."""
    if type(sock) is _PLAIN:
        try:
            sent = _raw_send(sock._sock, data)  # type: ignore[attr-defined]
        except BlockingIOError:
            sent = 0
        view = memoryview(data).cast("B")
        if sent == len(view):
            return
        data = view[sent:]
    sock.sendall(data)


def _write(sock: socket.socket, head: bytes, request: Request, length: int | None, where: str) -> None:
    """Send head and body. Socket failures come out as ``_SendFailed``; whatever the body
    iterator raises (a source error) comes out as it is."""
    body = request.body
    try:
        if body is None:
            _send(sock, head)
            return
        if isinstance(body, (bytes, bytearray, memoryview)):
            if (length or 0) <= _COALESCE:
                _send(sock, head + body)
            else:
                _send(sock, head)
                _send(sock, body)
            return
        _send(sock, head)
    except OSError as exc:
        raise _SendFailed(exc) from exc
    if length is None:
        _write_chunked(sock, body)
        return
    sent = 0
    for chunk in body:
        size = memoryview(chunk).nbytes
        if sent + size > length:
            raise length_mismatch(where, sent + size, length)
        try:
            _send(sock, chunk)
        except OSError as exc:
            raise _SendFailed(exc) from exc
        sent += size
    if sent != length:
        raise length_mismatch(where, sent, length)


def _write_chunked(sock: socket.socket, body: Iterable[bytes | memoryview]) -> None:
    for chunk in body:
        size = memoryview(chunk).nbytes
        if not size:
            continue  # an empty chunk would end the body
        try:
            if size <= _COALESCE:
                _send(sock, b"".join((b"%x\r\n" % size, chunk, b"\r\n")))
            else:
                _send(sock, b"%x\r\n" % size)
                _send(sock, chunk)
                _send(sock, b"\r\n")
        except OSError as exc:
            raise _SendFailed(exc) from exc
    try:
        _send(sock, b"0\r\n\r\n")
    except OSError as exc:
        raise _SendFailed(exc) from exc


class _SocketResponse:
    """A response on a pooled socket. The socket goes back to the pool as soon as the body has
    been received in full (or right away when there is none); ``close()`` before that closes it,
    so a half-read body never reaches the next request."""

    __slots__ = (
        "status",
        "headers",
        "url",
        "http_version",
        "_conn",
        "_pool",
        "_message",
        "_parser",
        "_pending",
        "_remaining",
        "_until_close",
        "_keep_alive",
        "_closed",
        "_where",
        "_timeout",
        "_buffer",
    )

    def __init__(
        self,
        conn: _Connection,
        pool: _Pool,
        request: Request,
        where: str,
        transport: SocketTransport,
        keep_alive: bool,
        sent: bool = True,
    ) -> None:
        """``keep_alive``: the request let the connection live on (it did not say ``close``);
        the answer may still end it. ``sent``: the request went out whole (else its write
        failed, and this is the early answer the server may have given before it closed)."""
        self._conn: _Connection | None = None  # set at the very end: send() owns it till then
        self._pool = pool
        self._where = where
        self._timeout = transport._options.read_timeout
        self._buffer: memoryview | None = None  # for a body of known length, made on first use
        self._closed = False
        message = self._message = _Message(request.method == "HEAD")
        parser = self._parser = httptools.HttpResponseParser(message)
        self._read_head(conn, message, sent)
        self.status: int = parser.get_status_code()
        self.headers = headers = Headers(message.fields)
        self.url = request.url
        self.http_version = "HTTP/" + parser.get_http_version()
        self._pending = message.body
        self._remaining: int | None = None  # body bytes still on the socket, when sized
        coding, length = headers.get("transfer-encoding"), headers.get("content-length")
        connection = headers.get("connection")
        # A body is chunked when chunked is the last coding; other codings end it at close.
        chunked = coding is not None and coding.lower().rstrip().endswith("chunked")
        sized = coding is None and length is not None
        self._until_close = not message.complete and not chunked and not sized
        if not message.complete and sized and length is not None:
            # llhttp checked the value; what came with the head is already in ``_pending``.
            try:
                self._remaining = int(length) - sum(map(len, self._pending))
            except ValueError:
                raise TransportError(f"{where}: invalid Content-Length in the response") from None
        self._keep_alive = (
            keep_alive
            and self.http_version == "HTTP/1.1"
            and not self._until_close
            and (connection is None or not any(_lists_close(v) for v in headers.get_all("connection")))
        )
        self._conn = conn
        if message.complete or self._remaining == 0:
            self._release()

    def _read_head(self, conn: _Connection, message: _Message, sent: bool) -> None:
        buffer = _head_buffer()
        received = 0
        try:
            while not message.final:
                n = conn.recv_into(buffer, wait_first=not received)
                if not n:
                    # The keep-alive race: a close (FIN) of an idle connection the request went
                    # out on whole. A reset, or a close while the request was being written,
                    # may end a request the server read: an error like any other.
                    if conn.reused and sent and not received:
                        raise StaleConnection(f"{self._where}: server closed a reused connection before answering")
                    cause = "without a response" if not received else "mid-head"
                    raise TransportError(f"{self._where}: server closed the connection {cause}")
                received += n
                message.feed(self._parser, buffer[:n], self._where)
                if received > _MAX_HEAD and not message.final:
                    raise TransportError(f"{self._where}: response head larger than {_MAX_HEAD >> 10} KiB")
        except Exception as exc:
            raise map_exception(exc, self._where, "read", self._timeout) from exc

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._keep_alive and not self._message.garbage:
            self._pool.put(conn)
        else:
            self._pool.discard(conn)

    def close(self) -> None:
        self._closed = True
        self._pending.clear()
        conn, self._conn = self._conn, None
        if conn is not None:  # body not fully received: this connection is not reusable
            self._pool.discard(conn)

    def __del__(self) -> None:
        # Safety net for a response dropped without close(): free the pool slot.
        conn = getattr(self, "_conn", None)
        if conn is not None:
            self._pool.discard(conn)

    def read(self) -> bytes:
        pending = self._pending
        if self._conn is None and len(pending) == 1 and type(pending[0]) is bytes and not self._closed:
            return pending.popleft()  # type: ignore[return-value]  # the usual small answer: it came with its head
        # Each chunk is copied before the next is read: they may share one buffer.
        return b"".join([bytes(c) if type(c) is not bytes else c for c in self.iter_bytes(_MAX_BUFFER)])

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        if self._closed:
            raise TransportError(f"{self._where}: response body read after close()")
        pending = self._pending
        while True:
            if pending:
                chunk = pending.popleft()
                if len(chunk) > chunk_size:
                    view = memoryview(chunk)
                    pending.appendleft(view[chunk_size:])
                    chunk = view[:chunk_size]
                yield chunk
                continue
            conn = self._conn
            if conn is None:
                return
            try:
                if self._remaining is None:
                    self._receive_parsed(conn)
                    continue
                chunk = self._receive_sized(conn, chunk_size)
            except Exception as exc:
                self.close()
                raise map_exception(exc, self._where, "read", self._timeout) from exc
            except BaseException:  # killed or a gevent.Timeout mid-read: the body is lost
                self.close()
                raise
            yield chunk

    def _receive_sized(self, conn: _Connection, chunk_size: int) -> memoryview:
        """The next chunk, up to ``chunk_size`` bytes, straight from the socket into the
        response's buffer (overwritten by the chunk after it)."""
        remaining: int = self._remaining  # type: ignore[assignment]  # a sized body
        size = min(chunk_size, remaining, _MAX_BUFFER)
        buffer = self._buffer
        if buffer is None or len(buffer) < size:
            buffer = self._buffer = memoryview(bytearray(size))
        got = 0
        while got < size:
            n = conn.recv_into(buffer[got:size])
            if not n:
                raise TransportError(f"{self._where}: connection closed with {remaining - got} body bytes missing")
            got += n
        self._remaining = remaining - size
        if not self._remaining:
            self._release()
        return buffer[:size]

    def _receive_parsed(self, conn: _Connection) -> None:
        """More of a chunked or close-delimited body, through the parser into ``_pending``."""
        buffer = _head_buffer()
        n = conn.recv_into(buffer)
        message = self._message
        if n:
            message.feed(self._parser, buffer[:n], self._where)
        elif self._until_close:
            message.complete = True  # EOF is the end of a body with no length
        else:
            raise TransportError(f"{self._where}: connection closed before the end of the body")
        if message.complete:
            self._release()
