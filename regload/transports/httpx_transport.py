"""HttpxTransport: httpx with HTTP/2 (negotiated by ALPN over TLS) and proxy support.

Slower per request than ``SocketTransport``; use it for HTTP/2 registries or proxies. One shared
``httpx.Client`` and one SSL context (a new client per user would build a context each time).

A request that says ``Connection: close`` is never followed by another on its connection (h11
closes it, RFC 9112 §9.6), and without keep-alive the pool keeps no connection. httpcore checks
an idle connection for a close before it reuses it; a keep-alive race it misses (the server
closes just as the request leaves) is a plain ``TransportError`` here, not ``StaleConnection``:
httpx does not say whether the connection was a reused one, so the client does not send it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import h2.errors
import h2.events
import httpx

from regload.errors import RequestTimeout, TransportError
from regload.http import Headers, Request, Response, TransportOptions
from regload.transports._common import (
    body_length,
    build_ssl_context,
    default_headers,
    describe,
    length_mismatch,
    map_exception,
    merge_headers,
    sized_chunks,
)

# httpx (h2, h11) copies what is left of a body each time it slices one: quadratic for a large
# ``bytes``. Chunks of at most 1 MiB, as memoryviews, keep every copy small.
_UPLOAD_CHUNK = 1 << 20
_QUOTED = re.compile(r"""(?:\bb)?['"]""")


class HttpxTransport:
    """Transport on one shared ``httpx.Client``: no redirects, no retries, no auth.

    httpx limits connections per client, not per host: ``max_connections_per_host`` bounds the
    whole pool. Waiting for a free connection has no time limit (as with the socket transport), so
    the wait shows up as latency rather than as an error.
    """

    def __init__(self, options: TransportOptions | None = None, http2: bool = True) -> None:
        self._options = options = options or TransportOptions()
        size = max(1, options.max_connections_per_host)
        self._client = httpx.Client(
            http1=True,
            http2=http2,
            verify=build_ssl_context(options),
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=options.connect_timeout,
                read=options.read_timeout,
                write=options.read_timeout,
                pool=None,
            ),
            # Without keep-alive no connection is kept after its response (HTTP/2 has no
            # Connection header: the pool keeping none is what makes a connection per request).
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size if options.keep_alive else 0),
        )
        # The defaults would add Accept and Accept-Encoding: gzip. Blobs and manifests are
        # digested as sent, so ask for no content coding (the socket transport sends neither
        # header either); a caller that wants one sets it per request.
        for name in ("Accept", "Accept-Encoding", "User-Agent"):
            del self._client.headers[name]
        self._defaults = tuple((n, v) for n, v in default_headers(options) if not (http2 and n == "Connection"))

    def send(self, request: Request) -> Response:
        where = _where(request)
        length = body_length(request, where)
        headers = merge_headers(self._defaults, request)
        if length is not None and request.body is not None:
            headers.append(("Content-Length", str(length)))
        content = _content(request, length, where)
        try:
            built = self._client.build_request(request.method, request.url, headers=headers, content=content)
            response = self._client.send(built, stream=True)
        except httpx.InvalidURL as exc:
            raise TransportError(f"{where}: invalid URL") from exc
        except httpx.HTTPError as exc:
            raise _map(exc, where, self._options) from exc
        return _HttpxResponse(response, request, where, self._options)

    def close(self) -> None:
        self._client.close()


def _where(request: Request) -> str:
    parts = urlsplit(request.url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return describe(request, parts.hostname or "?", port or (443 if parts.scheme == "https" else 80))


def _content(request: Request, length: int | None, where: str) -> bytes | Iterable[bytes] | None:
    # memoryview chunks are fine for h11 and h2 at runtime; httpx's annotation says bytes.
    body = request.body
    if body is None:
        return None
    if isinstance(body, (bytes, bytearray, memoryview)):
        if (length or 0) <= _UPLOAD_CHUNK:
            return bytes(body)
        return cast(Iterable[bytes], sized_chunks((body,), _UPLOAD_CHUNK))
    chunks = sized_chunks(body, _UPLOAD_CHUNK)
    return cast(Iterable[bytes], chunks if length is None else _counted(chunks, length, where))


def _counted(chunks: Iterator[memoryview], length: int, where: str) -> Iterator[memoryview]:
    """Check the stream against its announced length (h2 would not notice a short body)."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if sent > length:
            raise length_mismatch(where, sent, length)
        yield chunk
    if sent != length:
        raise length_mismatch(where, sent, length)


def _map(exc: httpx.HTTPError, where: str, options: TransportOptions) -> TransportError:
    """Map by httpx's class, with the root cause (ssl, OS) for the text."""
    if isinstance(exc, httpx.TimeoutException):
        if isinstance(exc, httpx.ConnectTimeout):
            return RequestTimeout(f"{where}: connect timed out after {options.connect_timeout:g}s")
        phase = "write" if isinstance(exc, httpx.WriteTimeout) else "read"
        return RequestTimeout(f"{where}: {phase} timed out after {options.read_timeout:g}s")
    root: BaseException | None = exc
    while root is not None:  # httpx -> httpcore -> the OSError / SSLError that started it
        if isinstance(root, OSError):
            return map_exception(root, where, "connect", options.connect_timeout)
        root = root.__cause__ or root.__context__
    # h11/h2 messages may quote what they refused (a header value, maybe a token): cut the quote.
    text = _QUOTED.split(str(exc), maxsplit=1)[0].rstrip(" :") or "failed"
    return TransportError(f"{where}: {type(exc).__name__}: {text}")


class _HttpxResponse:
    """A streamed httpx response. The body is read raw (no content decoding): digests are over
    the bytes as sent."""

    __slots__ = (
        "status",
        "headers",
        "url",
        "http_version",
        "_response",
        "_where",
        "_options",
        "_raw",
        "_rest",
        "_done",
        "_closed",
    )

    def __init__(self, response: httpx.Response, request: Request, where: str, options: TransportOptions) -> None:
        self._response = response
        self._where = where
        self._options = options
        self.status: int = response.status_code
        self.headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers.raw
        )
        self.url = request.url
        self.http_version: str = response.http_version
        self._raw: Iterator[bytes] | None = None
        self._rest: memoryview | None = None
        self._done = False  # the whole body came off the connection
        self._closed = False

    def read(self) -> bytes:
        return b"".join(self.iter_bytes(1 << 62))

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        if self._closed and not self._done:
            raise TransportError(f"{self._where}: response body read after close()")
        if self._raw is None:
            # Unsized iter_raw(): chunks as they come off the connection (h11 reads of 64 KiB,
            # h2 frames of 16 KiB); iter_raw(n) would re-buffer them through a BytesIO.
            self._raw = self._response.iter_raw()
        try:
            while True:
                if self._rest is not None:  # what is left of a chunk larger than chunk_size
                    view, self._rest = self._rest, None
                    if len(view) > chunk_size:
                        view, self._rest = view[:chunk_size], view[chunk_size:]
                    yield view
                    continue
                chunk = next(self._raw, None)
                if chunk is None:
                    self._done = True
                    return
                if len(chunk) <= chunk_size:
                    yield chunk
                else:
                    self._rest = memoryview(chunk)
        except httpx.HTTPError as exc:
            self.close()
            raise _map(exc, self._where, self._options) from exc

    def close(self) -> None:
        self._closed = True
        self._rest = None
        response = self._response
        if not response.is_closed and not self._done and self.http_version == "HTTP/2":
            _cancel_h2_stream(response)
        response.close()


def _cancel_h2_stream(response: httpx.Response) -> None:
    """Reset the HTTP/2 stream of a response closed before its end.

    httpcore (1.0.x) forgets such a stream without a RST_STREAM (encode/httpcore#943, closed
    unfixed): the server goes on sending, nobody acknowledges that data, and after ~16 MiB of
    unread bodies the connection's flow-control window is exhausted and every stream on it
    hangs. We ack what httpcore buffered for the stream and reset it; h2 itself then acks any
    DATA that still arrives for it. This reaches into httpx/httpcore internals, so it is
    best-effort: when the layout differs, nothing is done.
    """
    stream: Any = response.stream
    for attr in ("_stream", "_httpcore_stream", "_stream"):  # httpx bound -> httpx -> pool
        stream = getattr(stream, attr, None)
    connection: Any = getattr(stream, "_connection", None)
    stream_id = getattr(stream, "_stream_id", None)
    state: Any = getattr(connection, "_h2_state", None)
    if state is None or not isinstance(stream_id, int):
        return
    try:
        h2_stream = state.streams.get(stream_id)
        if h2_stream is None or h2_stream.closed:
            return
        for event in connection._events.get(stream_id, ()):
            if isinstance(event, h2.events.DataReceived):
                state.acknowledge_received_data(event.flow_controlled_length, stream_id)
        state.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        connection._write_outgoing_data(stream._request)
    except Exception:  # noqa: BLE001 - best effort; the connection reports its own failures
        pass
