"""MemoryTransport: an in-memory transport for unit tests of protocol pieces.

It records every request (with its body consumed, as a real transport would) and answers from a
queue of scripted replies, then from a handler function::

    transport = MemoryTransport()
    transport.queue(401, [("WWW-Authenticate", 'Bearer realm="https://auth/token"')])
    transport.queue(200, body=b'{"token": "t"}')
    ... run the auth flow ...
    assert transport.requests[1].url.startswith("https://auth/token?")

A handler sees the request and its body bytes and returns ``(status, headers, body)``; it may
raise ``TransportError`` to play a network failure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from regload.errors import TransportError
from regload.http import Headers, Request, Response

Reply = tuple[int, Iterable[tuple[str, str]], bytes]
Handler = Callable[[Request, bytes], Reply]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    url: str
    name: str
    headers: Headers
    body: bytes
    content_length: int | None  # as the request announced it; None when chunked or no body


class MemoryTransport:
    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler
        self.requests: list[RecordedRequest] = []
        self._replies: deque[Reply | BaseException] = deque()
        self._responses: list[MemoryResponse] = []
        self.closed = False

    def queue(self, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        """Answer the next unanswered request with this reply (before asking the handler)."""
        self._replies.append((status, tuple(headers), body))

    def queue_error(self, error: BaseException) -> None:
        """Make the next request fail with ``error`` (e.g. a ``TransportError``)."""
        self._replies.append(error)

    @property
    def unanswered(self) -> int:
        """Queued replies no request has taken yet."""
        return len(self._replies)

    @property
    def open_responses(self) -> list[MemoryResponse]:
        """Responses not closed yet: a test can check that the code under test closes them."""
        return [r for r in self._responses if not r.closed]

    def send(self, request: Request) -> Response:
        if self.closed:
            raise TransportError(f"{request.method} {request.name}: transport is closed")
        body = _consume(request)
        self.requests.append(
            RecordedRequest(
                request.method,
                request.url,
                request.name,
                Headers(request.headers),
                body,
                request.content_length,
            )
        )
        if self._replies:
            reply = self._replies.popleft()
            if isinstance(reply, BaseException):
                raise reply
        elif self.handler is not None:
            reply = self.handler(request, body)
        else:
            raise AssertionError(f"MemoryTransport: no reply for {request.method} {request.url}")
        status, headers, content = reply
        response = MemoryResponse(status, Headers(headers), request.url, b"" if request.method == "HEAD" else content)
        self._responses.append(response)
        return response

    def close(self) -> None:
        self.closed = True


def _consume(request: Request) -> bytes:
    body = request.body
    if body is None:
        data = b""
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        data = b"".join(bytes(chunk) for chunk in body)
    if request.content_length is not None and request.content_length != len(data):
        raise TransportError(
            f"{request.method} {request.name}: request body stream gave {len(data)} bytes, "
            f"content_length announced {request.content_length}"
        )
    return data


class MemoryResponse:
    http_version = "HTTP/1.1"

    def __init__(self, status: int, headers: Headers, url: str, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.url = url
        self._body = memoryview(body)
        self._offset = 0
        self.closed = False

    def read(self) -> bytes:
        return b"".join(self.iter_bytes(max(1, len(self._body))))

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes | memoryview]:
        if self.closed:
            raise TransportError("response body read after close()")
        while self._offset < len(self._body):
            chunk = self._body[self._offset : self._offset + chunk_size]
            self._offset += len(chunk)
            yield bytes(chunk)

    def close(self) -> None:
        self.closed = True
