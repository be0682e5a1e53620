"""GeventTransport: HTTP/1.1 on gevent sockets, the default transport (lowest cost per request).

geventhttpclient provides the connection pool (one per scheme, host and port) and its llhttp
response parser; the request/response cycle is written here rather than taken from
``HTTPClient.request`` (2.6.1), because that method

- silently sends a request again, on another connection, when sending fails with EPIPE/ECONNRESET
  or the connection closes before a response byte: up to ``concurrency + 1`` extra attempts for
  GET, HEAD, PUT, DELETE, OPTIONS, TRACE (``attempts_left`` in client.py), and for any method
  while waiting for ``100 Continue``. A server that drops a GET makes it see ``concurrency + 2``
  requests. A load tester must see every failure, and a streamed PUT body would be resent as an
  exhausted iterator;
- can only stream a body of known length as a file object through ``sendfile`` (8 KiB reads);
- reads bodies through a ``bytearray`` with several copies per block.

What remains from the pool: before reusing an idle socket it drops it when the server has closed
it (a zero-timeout ``select``), and a connect tries each address DNS returns in turn (localhost:
::1, then 127.0.0.1). Neither sends a request twice.

Response bodies of known length are read straight from the socket into the caller's chunks;
chunked or close-delimited bodies go through the parser.
"""

from __future__ import annotations

import errno
import re
import socket
from collections import deque
from collections.abc import Iterable, Iterator
from typing import cast
from urllib.parse import urlsplit

import gevent.ssl
from gevent.monkey import get_original
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser
from geventhttpclient.connectionpool import ConnectionPool

from regload.errors import TransportError
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

_RECV_SIZE = 64 * 1024  # socket reads for response heads and parsed (chunked) bodies
_COALESCE = 64 * 1024  # a bytes body up to this size leaves in the same write as the head
_MAX_BUFFER = 16 << 20  # read() of a body that claims gigabytes allocates as the bytes arrive
_TARGET_OK = re.compile(r"[\x21-\x7e\x80-\U0010ffff]*")
_select = get_original("select", "select")  # the system call, even when monkey-patched
_MAX_NAMES = 256  # error-message prefixes kept per origin (one per endpoint template)


class _Pool(ConnectionPool):
    """geventhttpclient's pool (LIFO, bounded, drops idle sockets the server closed), with
    TCP_NODELAY (a head then a body in two writes must not wait for a delayed ACK) and our
    own TLS context."""

    def __init__(self, host: str, port: int, tls: gevent.ssl.SSLContext | None, options: TransportOptions) -> None:
        super().__init__(
            host,
            port,
            host,
            port,
            size=max(1, options.max_connections_per_host),
            connection_timeout=options.connect_timeout,
            network_timeout=options.read_timeout,
        )
        self._tls = tls
        self._server_hostname = host

    def _connect_socket(
        self, sock: socket.socket, address: tuple[str, int] | tuple[str, int, int, int] | bytes | str
    ) -> socket.socket:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect(address)
        if self._tls is None:
            return sock
        return cast(socket.socket, self._tls.wrap_socket(sock, server_hostname=self._server_hostname))

    def _is_socket_alive(self, sock: socket.socket | None) -> bool:
        """The pool's check of an idle socket (readable means closed by the server, or dirty),
        without the switch to the hub that gevent's ``select(..., 0)`` makes on every request."""
        if sock is None:
            return False
        try:
            return sock.fileno() >= 0 and not _select([sock], [], [], 0.0)[0]
        except (OSError, ValueError):
            return False


class _Origin:
    """A scheme, host and port: its pool, its Host header and its name in error messages."""

    __slots__ = ("pool", "host_header", "host", "port", "names")

    def __init__(self, pool: _Pool, host_header: str, host: str, port: int) -> None:
        self.pool = pool
        self.host_header = host_header
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


class _Parser(HTTPResponseParser):
    """Collects the head (every field, in order) and any body bytes the parser is fed."""

    def __init__(self, head_only: bool) -> None:
        super().__init__()
        self.head_only = head_only
        self.fields: list[tuple[str, str]] = []
        self.body: deque[bytes | memoryview] = deque()
        self.final = False  # the head of the final (non-1xx) response is complete
        self.complete = False  # ... and so is its body
        self.trailing_garbage = False
        self._name = ""
        self._value: str | None = None

    def _on_message_begin(self) -> None:
        if self.final:  # bytes after the end of the response: never reuse this connection
            self.trailing_garbage = True
        else:
            self.fields = []  # an interim 1xx head is forgotten

    def _on_status(self, status: str) -> None:
        pass

    def _on_header_field(self, text: str) -> None:
        if self._value is None:
            self._name += text  # a name may come in pieces split across reads
        else:  # a new field: the previous one is complete (inlined _flush, once per field)
            self.fields.append((self._name, self._value))
            self._name, self._value = text, None

    def _on_header_value(self, text: str) -> None:
        self._value = text if self._value is None else self._value + text

    def _flush(self) -> None:
        if self._name:
            self.fields.append((self._name, self._value or ""))
        self._name, self._value = "", None

    def _on_headers_complete(self) -> bool:
        self._flush()
        if self.get_code() >= 200:
            self.final = True
        return self.head_only  # True: no body follows (HEAD)

    def _on_body(self, data: bytearray) -> None:
        self.body.append(memoryview(data))  # a fresh bytearray per call: no copy needed

    def _on_message_complete(self) -> None:
        if self.final:
            self.complete = True

    def feed_data(self, data: bytes) -> None:
        try:
            self.feed(data)
        except HTTPParseError:
            if not self.complete:
                raise
            self.trailing_garbage = True


class _SendFailed(Exception):
    """A socket write failed (kept apart from errors raised by the body iterator)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause)
        self.cause = cause


_TLS_CONTEXTS: dict[tuple[str | None, bool], gevent.ssl.SSLContext] = {}


def _tls_context(options: TransportOptions) -> gevent.ssl.SSLContext:
    """One client TLS context per CA file and verification mode, shared by the transports of a
    process: loading the system CAs costs ~10 ms of CPU and ~1 MiB, which a Locust run would
    otherwise pay once per user, all at spawn time."""
    key = (options.ca_cert, options.insecure)
    context = _TLS_CONTEXTS.get(key)
    if context is None:
        context = build_ssl_context(options, gevent.ssl.create_default_context)
        # HTTP/1.1 is all this transport speaks; say so in ALPN.
        context.set_alpn_protocols(["http/1.1"])
        _TLS_CONTEXTS[key] = context
    return context


class GeventTransport:
    """HTTP/1.1 transport on geventhttpclient's pools: no redirects, no retries, no auth."""

    def __init__(self, options: TransportOptions | None = None) -> None:
        self._options = options or TransportOptions()
        self._tls = _tls_context(self._options)
        self._defaults = default_headers(self._options)
        self._origins: dict[tuple[str, str], _Origin] = {}
        self._closed = False

    def send(self, request: Request) -> Response:
        origin, target = self._route(request)
        where = origin.where(request)
        length = body_length(request, where)
        head = self._head(request, origin, target, length, where)
        pool = origin.pool
        try:
            sock = pool.get_socket()
        except RuntimeError as exc:  # "connection pool closed", or no address for the host
            raise TransportError(f"{where}: {exc}") from exc
        except Exception as exc:
            raise map_exception(exc, where, "connect", self._options.connect_timeout) from exc
        try:
            try:
                self._write(sock, head, request, length, where)
            except _SendFailed as failed:
                # The server may have answered early (401, 413 ...) and closed: that answer is
                # worth more than the broken pipe. Nothing is sent again.
                if failed.cause.errno in (errno.EPIPE, errno.ECONNRESET):
                    try:
                        return _GeventResponse(sock, pool, request, where, self._options, True)
                    except TransportError:
                        pass
                raise map_exception(failed.cause, where, "write", self._options.read_timeout) from failed.cause
            return _GeventResponse(sock, pool, request, where, self._options, False)
        except BaseException:
            pool.release_socket(sock)  # a response takes over the socket only once it is complete
            raise

    def close(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            origin.pool.close()
        self._origins.clear()

    # -- request side ---------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[_Origin, str]:
        scheme, netloc, path, query, _ = urlsplit(request.url)
        origin = self._origins.get((scheme, netloc))
        if origin is None:
            origin = self._new_origin(request, scheme, netloc)
        target = path or "/"
        if query:
            target += "?" + query
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
        tls = self._tls if scheme == "https" else None
        host_header = netloc.rpartition("@")[2]  # never forward userinfo
        origin = _Origin(_Pool(host, port, tls, self._options), host_header, host, port)
        self._origins[(scheme, netloc)] = origin
        return origin

    def _head(self, request: Request, origin: _Origin, target: str, length: int | None, where: str) -> bytes:
        if not _TARGET_OK.fullmatch(target):
            raise TransportError(f"{where}: URL path or query contains spaces or control characters")
        lines = [f"{request.method} {target} HTTP/1.1"]
        if request.header("Host") is None:
            lines.append("Host: " + origin.host_header)
        lines.extend(f"{n}: {v}" for n, v in merge_headers(self._defaults, request))
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
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise TransportError(f"{where}: a header is not latin-1 text") from exc

    @staticmethod
    def _write(sock: socket.socket, head: bytes, request: Request, length: int | None, where: str) -> None:
        """Send head and body. Socket failures come out as ``_SendFailed``; whatever the body
        iterator raises (a source error) comes out as it is."""
        body = request.body
        try:
            if body is None:
                sock.sendall(head)
                return
            if isinstance(body, (bytes, bytearray, memoryview)):
                if (length or 0) <= _COALESCE:
                    sock.sendall(head + body)
                else:
                    sock.sendall(head)
                    sock.sendall(body)
                return
            sock.sendall(head)
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
                sock.sendall(chunk)
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
                sock.sendall(b"".join((b"%x\r\n" % size, chunk, b"\r\n")))
            else:
                sock.sendall(b"%x\r\n" % size)
                sock.sendall(chunk)
                sock.sendall(b"\r\n")
        except OSError as exc:
            raise _SendFailed(exc) from exc
    try:
        sock.sendall(b"0\r\n\r\n")
    except OSError as exc:
        raise _SendFailed(exc) from exc


class _GeventResponse:
    """A response on a pooled socket. The socket goes back to the pool as soon as the body has
    been received in full (or right away when there is none); ``close()`` before that closes it,
    so a half-read body never reaches the next request."""

    __slots__ = (
        "status",
        "headers",
        "url",
        "http_version",
        "_sock",
        "_pool",
        "_parser",
        "_pending",
        "_remaining",
        "_keep_alive",
        "_closed",
        "_where",
        "_timeout",
    )

    def __init__(
        self,
        sock: socket.socket,
        pool: ConnectionPool,
        request: Request,
        where: str,
        options: TransportOptions,
        broken: bool,
    ) -> None:
        self._sock: socket.socket | None = None  # set at the very end: send() owns it till then
        self._pool = pool
        self._where = where
        self._timeout = options.read_timeout
        self._closed = False
        parser = self._parser = _Parser(head_only=request.method == "HEAD")
        self._read_head(sock, parser)
        self.status: int = parser.get_code()
        self.headers = Headers(parser.fields)
        self.url = request.url
        self.http_version = parser.get_http_version()
        self._pending = parser.body
        self._remaining: int | None = None  # body bytes still on the socket, when sized
        chunked = "transfer-encoding" in self.headers
        if not parser.complete and not chunked and "content-length" in self.headers:
            self._remaining = parser.get_remaining_content_length()
        self._keep_alive = (
            not broken
            and self.http_version == "HTTP/1.1"
            and (parser.complete or chunked or self._remaining is not None)
            and not any("close" in v.lower() for v in self.headers.get_all("connection"))
        )
        self._sock = sock
        if parser.complete or self._remaining == 0:
            self._release()

    def _read_head(self, sock: socket.socket, parser: _Parser) -> None:
        try:
            data = sock.recv(_RECV_SIZE)
            if not data:
                raise TransportError(f"{self._where}: server closed the connection without a response")
            while True:
                parser.feed_data(data)
                if parser.final:
                    return
                data = sock.recv(_RECV_SIZE)
                if not data:
                    raise TransportError(f"{self._where}: server closed the connection mid-head")
        except Exception as exc:
            raise map_exception(exc, self._where, "read", self._timeout) from exc

    def _release(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        parser_clean = not self._parser.trailing_garbage
        if self._keep_alive and parser_clean:
            self._pool.return_socket(sock)
        else:
            self._pool.release_socket(sock)

    def close(self) -> None:
        self._closed = True
        self._pending.clear()
        sock, self._sock = self._sock, None
        if sock is not None:  # body not fully received: this socket is not reusable
            self._pool.release_socket(sock)

    def __del__(self) -> None:
        # Safety net for a response dropped without close(): free the pool slot.
        sock = getattr(self, "_sock", None)
        if sock is not None:
            self._pool.release_socket(sock)

    def read(self) -> bytes:
        return b"".join(self.iter_bytes(1 << 62))

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
            elif self._sock is None:
                return
            else:
                try:
                    if self._remaining is not None:
                        self._receive_sized(self._sock, chunk_size)
                    else:
                        self._receive_parsed(self._sock)
                except Exception as exc:
                    self.close()
                    raise map_exception(exc, self._where, "read", self._timeout) from exc
                except BaseException:  # killed or a gevent.Timeout mid-read: the body is lost
                    self.close()
                    raise

    def _receive_sized(self, sock: socket.socket, chunk_size: int) -> None:
        """Fill one fresh chunk of up to ``chunk_size`` bytes straight from the socket."""
        assert self._remaining is not None
        size = min(chunk_size, self._remaining, _MAX_BUFFER)
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            n = sock.recv_into(view[got:], size - got)
            if not n:
                raise TransportError(
                    f"{self._where}: connection closed with {self._remaining - got} body bytes missing"
                )
            got += n
        self._pending.append(view)
        self._remaining -= size
        if not self._remaining:
            self._release()

    def _receive_parsed(self, sock: socket.socket) -> None:
        data = sock.recv(_RECV_SIZE)
        if data:
            self._parser.feed_data(data)
        else:
            self._parser.feed_data(b"")  # EOF: ends a close-delimited body, else a parse error
            if not self._parser.complete:
                raise TransportError(f"{self._where}: connection closed before the end of the body")
        if self._parser.complete:
            self._release()
