"""Just enough HTTP/1.1 message framing (RFC 9112) to relay messages and fault them on the way.

Heads are read into ordered ``(name, value)`` fields, names as sent; bodies are streamed in
blocks, never held whole: by ``Content-Length``, by chunked transfer coding (decoded here, so a
relay can re-frame them) or, for responses, until the connection closes. Used by
``tests.support.fault_proxy``; the reader is a buffered file over a socket (``sock.makefile("rb")``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

MAX_HEAD = 64 * 1024  # bytes of one message head
MAX_LINE = 8 * 1024  # bytes of one chunk-size or trailer line
BLOCK = 64 * 1024  # body bytes moved per read

#: Fields that describe one connection, not the message (RFC 9110 7.6.1), and the framing
#: fields a relay regenerates for the body it sends on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class WireError(Exception):
    """A malformed message, or a connection closed in the middle of one."""


@dataclass
class Head:
    """A request head (``start`` = method, target, version) or a response head (``start`` =
    version, status, reason)."""

    start: tuple[str, str, str]
    fields: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for n, v in self.fields if n.lower() == lname), None)

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.fields if n.lower() == lname]

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated field (``Connection``, ``Expect``) lists ``token``."""
        return any(t.strip().lower() == token for v in self.get_all(name) for t in v.split(","))

    @property
    def status(self) -> int:
        return int(self.start[1])


@dataclass(frozen=True)
class Framing:
    """How a body is delimited: none, ``length`` bytes, chunked, or until the connection closes."""

    kind: Literal["none", "length", "chunked", "close"]
    length: int = 0

    @property
    def empty(self) -> bool:
        return self.kind == "none" or (self.kind == "length" and self.length == 0)


NO_BODY = Framing("none")


def read_head(rfile: BinaryIO, *, response: bool = False) -> Head | None:
    """The next head on the connection; None when it closed cleanly before a new message."""
    lines: list[str] = []
    total = 0
    while True:
        raw = rfile.readline(MAX_HEAD + 1)
        if not raw:
            if not lines:
                return None
            raise WireError("connection closed in the middle of a message head")
        total += len(raw)
        if total > MAX_HEAD or not raw.endswith(b"\n"):
            raise WireError("message head too long")
        line = raw.rstrip(b"\r\n").decode("latin-1")
        if not line:
            if not lines:
                continue  # RFC 9112 2.2: ignore an empty line before a request line
            break
        lines.append(line)
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or (len(parts) == 2 and not response):
        raise WireError(f"malformed start line {lines[0][:80]!r}")
    start = (parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    if response and (not start[0].startswith("HTTP/1.") or not start[1].isdigit()):
        raise WireError(f"malformed status line {lines[0][:80]!r}")
    if not response and not start[2].startswith("HTTP/1."):
        raise WireError(f"malformed request line {lines[0][:80]!r}")
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):  # obsolete line folding is refused too
            raise WireError(f"malformed header line {line[:80]!r}")
        fields.append((name, value.strip(" \t")))
    return Head(start, fields)


def _framing_from_fields(head: Head) -> Framing | None:
    codings = [c.strip().lower() for v in head.get_all("Transfer-Encoding") for c in v.split(",") if c.strip()]
    if codings:
        if codings[-1] != "chunked":
            raise WireError(f"unsupported transfer coding {codings[-1]!r}")
        return Framing("chunked")
    lengths = {v.strip() for v in head.get_all("Content-Length")}
    if not lengths:
        return None
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise WireError("invalid Content-Length")
    return Framing("length", int(lengths.pop()))


def request_framing(head: Head) -> Framing:
    """RFC 9112 6.3: a request without Content-Length or Transfer-Encoding has no body."""
    return _framing_from_fields(head) or NO_BODY


def response_framing(head: Head, request_method: str) -> Framing:
    """RFC 9112 6.3: HEAD answers, 1xx, 204 and 304 have no body whatever their fields say."""
    status = head.status
    if request_method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return NO_BODY
    return _framing_from_fields(head) or Framing("close")


def iter_body(rfile: BinaryIO, framing: Framing, block: int = BLOCK) -> Iterator[bytes]:
    """The body's content (chunked coding removed), in blocks of at most ``block`` bytes."""
    if framing.kind == "length":
        yield from _read_exactly(rfile, framing.length, block)
    elif framing.kind == "chunked":
        while True:
            line = rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise WireError("connection closed or bad line in a chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise WireError(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                _skip_trailers(rfile)
                return
            yield from _read_exactly(rfile, size, block)
            if rfile.readline(MAX_LINE + 1).rstrip(b"\r\n"):
                raise WireError("chunk data longer than its size")
    elif framing.kind == "close":
        while data := rfile.read1(block):  # type: ignore[attr-defined]
            yield data


def _read_exactly(rfile: BinaryIO, size: int, block: int) -> Iterator[bytes]:
    remaining = size
    while remaining:
        data = rfile.read1(min(block, remaining))  # type: ignore[attr-defined]
        if not data:
            raise WireError(f"connection closed with {remaining} body bytes missing")
        remaining -= len(data)
        yield data


def _skip_trailers(rfile: BinaryIO) -> None:
    for _ in range(100):
        line = rfile.readline(MAX_LINE + 1)
        if not line.endswith(b"\n"):
            raise WireError("connection closed in chunked trailers")
        if not line.rstrip(b"\r\n"):
            return
    raise WireError("too many trailer fields")


def drain(rfile: BinaryIO, framing: Framing, limit: int | None = None) -> int:
    """Read and drop a body (or its first ``limit`` bytes); returns the bytes read."""
    seen = 0
    for data in iter_body(rfile, framing):
        seen += len(data)
        if limit is not None and seen >= limit:
            break
    return seen


def encode_head(start_line: str, fields: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([start_line, *(f"{n}: {v}" for n, v in fields)]) + "\r\n\r\n").encode("latin-1")


def end_to_end(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``fields`` without hop-by-hop ones, including those the ``Connection`` field names."""
    named = {t.strip().lower() for n, v in fields if n.lower() == "connection" for t in v.split(",")}
    return [(n, v) for n, v in fields if n.lower() not in HOP_BY_HOP and n.lower() not in named]


class BodyWriter:
    """Sends a body on a socket: as given (sized or close-delimited) or in chunked coding."""

    def __init__(self, sock: socket.socket, chunked: bool) -> None:
        self._sock = sock
        self._chunked = chunked

    def write(self, data: bytes) -> None:
        if not data:
            return  # an empty chunk would end a chunked body
        if self._chunked:
            self._sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self._sock.sendall(data)

    def finish(self) -> None:
        if self._chunked:
            self._sock.sendall(b"0\r\n\r\n")
