"""The transport interface: plain request and response values, and what a transport must do.

The protocol core builds ``Request`` values and reads ``Response`` objects; it never imports an
HTTP library. Transports (``regload.transports``) implement ``Transport`` on gevent sockets,
httpx, or in memory for unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, overload, runtime_checkable
from urllib.parse import urljoin, urlsplit

from .errors import RegloadError

# A request body: exact bytes, or a re-iterable-once stream of chunks whose total length is
# ``Request.content_length`` (or unknown, then the transport uses chunked transfer coding).
Body = bytes | Iterable[bytes | memoryview]
_T = TypeVar("_T")


class Headers(Mapping[str, str]):
    """An immutable, case-insensitive multi-map of header fields.

    ``headers[name]`` and ``get`` give the first value; ``get_all`` every value in order.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] = tuple(fields)
        # First value per lower-cased name (built from the end, so the first one wins); every
        # response builds one, so this stays a single comprehension.
        self._index = {name.lower(): value for name, value in reversed(self._fields)}

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    @overload
    def get(self, name: str, /) -> str | None: ...

    @overload
    def get(self, name: str, default: str, /) -> str: ...

    @overload
    def get(self, name: str, default: _T, /) -> str | _T: ...

    def get(self, name: str, default: object = None, /) -> object:
        # Mapping.get would go through __getitem__ and a KeyError on every miss.
        return self._index.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        if lname not in self._index:
            return []
        if len(self._index) == len(self._fields):  # no name appears twice
            return [self._index[lname]]
        return [value for n, value in self._fields if n.lower() == lname]

    def __repr__(self) -> str:
        return f"Headers({sorted(self._index)})"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request. ``name`` is the endpoint template used for stats and error messages
    (``GET /v2/<name>/blobs/<digest>``): never a URL with digests, sessions or credentials."""

    method: str
    url: str
    name: str
    # Out of repr: headers may carry Authorization, and a body may be a whole blob.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    body: Body | None = field(default=None, repr=False)
    content_length: int | None = None

    def with_headers(self, extra: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> Request:
        dropped = {d.lower() for d in drop}
        extra = tuple(extra)
        replaced = {n.lower() for n, _ in extra} | dropped
        kept = tuple((n, v) for n, v in self.headers if n.lower() not in replaced)
        return Request(self.method, self.url, self.name, kept + extra, self.body, self.content_length)

    @property
    def replayable(self) -> bool:
        """The body can be sent again (none, or bytes; a stream is consumed once)."""
        return self.body is None or isinstance(self.body, bytes)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return None


@runtime_checkable
class Response(Protocol):
    """A response whose body has not been read yet.

    ``read()`` returns the whole remaining body (for small documents); ``iter_bytes`` streams it
    in chunks of at most ``chunk_size``. A chunk may be a view of a buffer that the next chunk
    overwrites: use it (hash it, write it) before asking for the next, or keep ``bytes(chunk)``.
    Either consumes the body; ``close()`` releases the connection (discarding unread body) and
    is always safe to call twice.
    """

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def url(self) -> str: ...

    @property
    def http_version(self) -> str: ...

    def read(self) -> bytes: ...

    def iter_bytes(self, chunk_size: int = 1 << 20) -> Iterator[bytes | memoryview]: ...

    def close(self) -> None: ...


def read_bounded(response: Response, limit: int, *, until_error: bool = False) -> bytes:
    """A small body (a manifest, a token, an error document) read to its end or to one byte past
    ``limit``, whichever comes first: a result longer than ``limit`` means the body is too large,
    and the caller decides what that is. ``until_error``: a read failure ends the body instead of
    raising (an error document is read for its words; what came before the failure is kept)."""
    out = bytearray()
    try:
        for chunk in response.iter_bytes(min(limit + 1, 1 << 20)):
            out += chunk
            if len(out) > limit:
                break
    except RegloadError:
        if not until_error:
            raise
    del out[limit + 1 :]  # in place: the body is copied once, into the bytes returned
    return bytes(out)


class Transport(Protocol):
    """Sends one request and returns its response.

    A transport never follows redirects, never retries, and never adds authentication: the
    protocol core does those, so that every attempt is visible. Backend exceptions are mapped
    to ``regload.errors.TransportError`` (``TLSError``, ``RequestTimeout``) here and nowhere else.
    """

    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings every transport honours."""

    ca_cert: str | None = None  # PEM file of extra trusted CAs
    insecure: bool = False  # skip TLS verification
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_connections_per_host: int = 16
    user_agent: str = "regload/0.1"
    keep_alive: bool = True  # False: a connection per request (``Connection: close``), as docker's daemon
    extra_headers: tuple[tuple[str, str], ...] = field(default=())


def resolve_url(base: str, location: str) -> str:
    """Resolve a ``Location`` header against the URL of the request that returned it.

    Registries answer relative or absolute locations, possibly on another host, possibly with
    query state (distribution's ``_state``); RFC 3986 resolution keeps the query of ``location``.
    """
    return urljoin(base, location)


def same_origin(a: str, b: str) -> bool:
    """True when both URLs have the same scheme, host and port (credentials may be shared).
    A URL with a malformed port (``:99999``, ``:abc``) is the same origin as nothing."""
    sa, sb = urlsplit(a), urlsplit(b)
    try:
        return (sa.scheme, sa.hostname, sa.port or _default_port(sa.scheme)) == (
            sb.scheme,
            sb.hostname,
            sb.port or _default_port(sb.scheme),
        )
    except ValueError:
        return False


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def add_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    """Append query parameters to ``url``, keeping any query it already has."""
    from urllib.parse import urlencode

    encoded = urlencode(list(params))
    if not encoded:
        return url
    return url + ("&" if "?" in url else "?") + encoded
