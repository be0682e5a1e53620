"""A fault-injecting HTTP/1.1 reverse proxy to put between regload and a real test registry.

Clients use the proxy's URL as the registry's; the proxy forwards to a plain-HTTP upstream (a
``docker-registry`` on loopback) and, for a chosen share of the requests, misbehaves instead::

    from tests.support.fault_proxy import Fault, FaultProxy

    with FaultProxy(registry_anon.url, seed=7) as proxy:          # or proxy.start() ... proxy.stop()
        proxy.set_faults([Fault("corrupt", 1.0, method="GET", path=r"/blobs/sha256:")])
        regload("pull", f"{proxy.host}/repo:tag")                 # proxy.url = http://127.0.0.1:PORT
        assert proxy.counters().faults("corrupt", "GET blob") >= 1

Faults (``Fault.kind``; each applies to ``fraction`` of the requests its filter matches):

- ``reset``: the client connection is reset (RST, ``SO_LINGER`` 0) before any answer, after
  reading the head and the first ``after_request_bytes`` bytes of the request body; not forwarded.
- ``close_mid_body``: forwarded; the client gets the head and the first ``keep`` body bytes
  (default half the body, 1 byte when its length is unknown), then the connection closes (FIN).
- ``truncate``: forwarded; the full ``Content-Length`` is announced, ``keep`` bytes (default all
  but the last) are sent, then the connection closes. Only for sized responses.
- ``corrupt``: forwarded; one body byte is inverted (``keep`` gives its offset, default the
  middle of the body), the length is kept.
- ``delay``: sleeps ``seconds`` before forwarding (``stop()`` cuts the sleep short).
- ``status_500``, ``status_502``, ``status_503``: answered by the proxy (request body read and
  dropped, not forwarded): a spec JSON error, an HTML page and a text body respectively.
- ``status_429``: answered ``429 TOOMANYREQUESTS`` with ``Retry-After: <retry_after>``.
- ``wrong_digest``: forwarded; the answer's ``Docker-Content-Digest`` is replaced (added when
  missing) by another well-formed sha256 digest.
- ``split``: forwarded; the answer (head and body, sized or none, as to a HEAD) is sent in two
  writes, apart in time, cut ``keep`` bytes from its start (default the middle): run over every
  ``keep``, the client's reads are split at every byte. A cut at or past the end is not applied.
- ``rechunk``: forwarded; a sized body is sent in chunked coding instead, ``keep`` bytes per chunk
  (default 7), each in a write of its own, every chunk line with extensions (one quoted, holding
  ``;``) and the body followed by two trailer fields.
- ``huge_head``: forwarded; the answer gets a ``X-Fault-Padding`` field of ``keep`` bytes (default
  64 KiB).
- ``redirect_blob``: a blob GET (``…/blobs/<digest>``) is answered ``307`` to the proxy's
  *storage listener*, on another host name (``127.0.0.2`` when it can be bound, else ``localhost``
  while the proxy is ``127.0.0.1``): a stand-in for object storage with pre-signed URLs. The
  storage listener fetches the blob from upstream with the ``Authorization`` of the redirected
  request (its own credentials, as a signed URL carries them) and never with what its own client
  sends; it records for every request whether an ``Authorization`` came with it
  (``storage_hits()``).

``Fault(kind, fraction=1.0, method=None, path=None, seconds=1.0, retry_after=1, keep=None,
after_request_bytes=0, limit=None)``. Its filter: ``method`` (regex matched against the whole
method, e.g. ``"PATCH|PUT"``) and ``path`` (regex searched in the request target, path and query,
e.g. ``r"/blobs/sha256:"``); both optional. ``limit`` caps how many times a fault is injected.
For each request the faults are tried in order and the first that matches and wins its draw is
applied. Each fault draws from its own RNG seeded from ``(seed, position, kind)``: the same
request sequence faults the same requests on every run. A body fault drawn for an answer without
a body (a HEAD, a 201), or a ``redirect_blob`` drawn for anything but a blob GET, is not applied
(the request is forwarded as it is) and counts in ``Counters.skipped``.

A client's ``Connection: close`` is honoured: the proxy closes that connection after its answer.
With ``echo_close=False`` it does so without adding ``Connection: close`` to the answer, as many
reverse proxies and load balancers do (RFC 9112 §9.6 lets the client know it anyway: it sent it).

Runtime control (thread-safe): ``set_faults(faults)`` replaces the mix (fresh RNGs),
``clear_faults()``, ``counters()`` returns a snapshot (``Counters``: connections, requests in total
and per endpoint, faults injected per kind and per ``(kind, endpoint)``, skipped draws, upstream
errors), ``reset_counters()``, ``storage_hits()``, ``events()`` (the last requests, for debugging).
Endpoints are named ``"<METHOD> <kind>"``, kind one of ping, manifest, blob, upload, tags,
catalog, other (``"GET blob"``, ``"PATCH upload"``, ``"PUT manifest"``; see ``endpoint_kind``).

Forwarding without a fault is faithful: every end-to-end header both ways (``Authorization``,
``WWW-Authenticate``, ``Location`` …), ``Host`` set to the upstream's, absolute ``Location`` values
pointing at the upstream rewritten to point at the proxy (relative ones unchanged), bodies streamed
in 64 KiB blocks both ways (``Content-Length`` kept; chunked request and response bodies re-framed
as chunked). Client connections are kept alive; each has its own upstream connection, kept alive
too. When the upstream cannot be reached (a registry being restarted) the proxy answers ``502``
with a ``fault proxy: upstream unreachable`` body and counts ``Counters.upstream_errors``; when the
upstream fails after the answer began, the client connection is closed.

Recording (``record=True``): every request the proxy listener serves is kept whole, in order, as an
``Exchange`` (``exchanges()``): method, target, every request header field as sent (each repeated
field apart, as podman sends its manifest ``Accept`` types; ``Authorization`` values replaced by
their scheme), the status answered, and when the request's head arrived and its answer was sent,
which gives a client's peak concurrency. ``reset_counters()`` clears them too.

Limits: 127.0.0.1 only, one thread per connection, at most ``max_connections`` at once (default
256; further clients wait in the listen backlog until one closes, and an idle kept-alive
connection is only closed after ``timeout`` seconds: under Locust, give more than users × the
connections each keeps), every socket with a ``timeout``; ``stop()`` shuts every socket down and
joins every thread (``stop`` returns how many did not end in time: 0 normally). ``start()`` may
be called again after ``stop()`` (new ports).
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import re
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import BinaryIO, Self
from urllib.parse import urlsplit, urlunsplit

from tests.support.http11 import (
    BLOCK,
    BodyWriter,
    Framing,
    Head,
    WireError,
    drain,
    encode_head,
    end_to_end,
    iter_body,
    read_head,
    request_framing,
    response_framing,
)

FAULT_KINDS = (
    "reset",
    "close_mid_body",
    "corrupt",
    "truncate",
    "delay",
    "status_500",
    "status_502",
    "status_503",
    "status_429",
    "wrong_digest",
    "redirect_blob",
    "split",
    "rechunk",
    "huge_head",
)
_ANSWERED = ("status_500", "status_502", "status_503", "status_429")  # answered by the proxy itself
_BODY_FAULTS = ("close_mid_body", "truncate", "corrupt")
_WIRE_FAULTS = ("split", "rechunk")  # the sized answer is read whole, then sent re-cut
_SPLIT_PAUSE = 0.005  # between the two writes of a split answer: the client reads them apart

_BLOB_PATH = re.compile(r"/v2/.+/blobs/(sha256:[0-9a-f]{64})$")
_STORAGE_PATH = re.compile(r"^/storage/([0-9a-f]{32})/(sha256:[0-9a-f]{64})$")
_ENDPOINTS = (
    (re.compile(r"/v2/?$"), "ping"),
    (re.compile(r"/v2/.+/blobs/uploads/[^/]*$"), "upload"),
    (re.compile(r"/v2/.+/blobs/[^/]+$"), "blob"),
    (re.compile(r"/v2/.+/manifests/[^/]+$"), "manifest"),
    (re.compile(r"/v2/.+/tags/list$"), "tags"),
    (re.compile(r"/v2/_catalog$"), "catalog"),
)
_MAX_TOKENS = 4096  # redirect tokens remembered by the storage listener
_MAX_EVENTS = 20_000  # a few seconds of a small load run: 2 users make ~2,000 requests in 4 s


def endpoint_kind(method: str, target: str) -> str:
    """``"GET blob"``, ``"PATCH upload"``, ``"PUT manifest"``, ``"GET ping"``, ``"GET other"`` …"""
    path = target.split("?", 1)[0]
    kind = next((name for pattern, name in _ENDPOINTS if pattern.search(path)), "other")
    return f"{method} {kind}"


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour, for ``fraction`` (0.0–1.0) of the requests its filter matches."""

    kind: str
    fraction: float = 1.0
    method: str | None = None  # regex matched against the whole method ("GET", "PATCH|PUT")
    path: str | None = None  # regex searched in the request target (path and query)
    seconds: float = 1.0  # delay
    retry_after: int = 1  # status_429
    # close_mid_body, truncate: body bytes sent; corrupt: offset of the byte; split: offset of the
    # cut; rechunk: chunk size; huge_head: size of the padding
    keep: int | None = None
    after_request_bytes: int = 0  # reset: request body bytes read before the RST
    limit: int | None = None  # injected at most this many times

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be within 0.0-1.0, not {self.fraction}")
        if self.seconds < 0 or self.retry_after < 0 or self.after_request_bytes < 0:
            raise ValueError("seconds, retry_after and after_request_bytes cannot be negative")
        if (self.keep is not None and self.keep < 0) or (self.limit is not None and self.limit < 0):
            raise ValueError("keep and limit cannot be negative")
        for pattern in (self.method, self.path):
            if pattern is not None:
                re.compile(pattern)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and not re.fullmatch(self.method, method, re.IGNORECASE):
            return False
        return self.path is None or re.search(self.path, target) is not None


@dataclass(frozen=True)
class Counters:
    """A snapshot of what the proxy saw and did."""

    connections: int
    requests: int
    requests_by_endpoint: dict[str, int]
    injected: dict[str, int]  # fault kind -> times applied
    injected_by_endpoint: dict[tuple[str, str], int]  # (kind, endpoint) -> times applied
    skipped: dict[str, int]  # fault kind -> draws that did not apply (no body to fault)
    upstream_errors: int

    def faults(self, kind: str, endpoint: str | None = None) -> int:
        """Times ``kind`` was injected, on ``endpoint`` (``"GET blob"``) or on any."""
        if endpoint is None:
            return self.injected.get(kind, 0)
        return self.injected_by_endpoint.get((kind, endpoint), 0)


@dataclass(frozen=True)
class StorageHit:
    """One request the storage listener got."""

    method: str
    path: str
    authorization: bool  # an Authorization header came with it
    status: int  # what it answered (502: upstream failed)


@dataclass(frozen=True)
class Event:
    """One request the proxy handled (``events()``), for debugging a test."""

    endpoint: str
    target: str
    fault: str | None  # the fault applied, if any
    status: int | None  # the status the client got, None when it got none


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as recorded (``record=True``)."""

    method: str
    target: str
    fields: tuple[tuple[str, str], ...]  # request header fields in order; Authorization: scheme only
    status: int  # of the answer (0: none was relayed)
    started: float  # monotonic: the request's head was read
    ended: float  # monotonic: its answer was sent (or the connection ended)

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.fields if n.lower() == lname]

    def get(self, name: str) -> str | None:
        values = self.get_all(name)
        return values[0] if values else None


def _tls_hello(rfile: BinaryIO) -> bool:
    """The connection starts with a TLS record (a ClientHello: content type 22)."""
    peek = getattr(rfile, "peek", None)
    return bool(peek) and peek(1)[:1] == b"\x16"


def _redacted(fields: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Header fields with credentials cut to their scheme (``Bearer``, ``Basic``)."""
    return tuple((n, v.split(" ", 1)[0] if n.lower() == "authorization" else v) for n, v in fields)


@dataclass
class _Armed:
    fault: Fault
    rng: random.Random
    injected: int = 0


@dataclass
class _Tally:
    connections: int = 0
    requests: int = 0
    upstream_errors: int = 0
    requests_by_endpoint: collections.Counter[str] = field(default_factory=collections.Counter)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    injected_by_endpoint: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)


@dataclass(frozen=True)
class _Signed:
    """What a storage URL stands for: an upstream blob path and the credentials to read it."""

    path: str
    authorization: str | None


class _Closed(Exception):
    """The client connection is done with (closed, reset or cut by a fault)."""


class _UpstreamFailed(Exception):
    """Connecting to, writing to or reading from the upstream failed."""


class _Connection:
    """One client connection and the upstream connection it uses."""

    def __init__(self, proxy: FaultProxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.sock = sock
        self.rfile: BinaryIO = sock.makefile("rb")
        self.up: socket.socket | None = None
        self.up_rfile: BinaryIO | None = None
        self.last_status = 0  # status of the last answer relayed from upstream

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def upstream(self) -> tuple[socket.socket, BinaryIO]:
        if self.up is not None and _closed_by_peer(self.up):
            self.drop_upstream()
        if self.up is None or self.up_rfile is None:
            host, port = self.proxy.upstream_address
            try:
                up = socket.create_connection((host, port), timeout=min(5.0, self.proxy.timeout))
            except OSError as e:
                raise _UpstreamFailed(f"connect: {e}") from e
            up.settimeout(self.proxy.timeout)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.proxy._track(up)
            self.up, self.up_rfile = up, up.makefile("rb")
        return self.up, self.up_rfile

    def drop_upstream(self) -> None:
        up, rfile, self.up, self.up_rfile = self.up, self.up_rfile, None, None
        if up is not None:
            self.proxy._untrack(up)
            _close_quietly(rfile, up)

    def reset(self) -> None:
        """RST instead of FIN: ``SO_LINGER`` on with a zero timeout, then close."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        self.drop_upstream()
        self.proxy._untrack(self.sock)
        _close_quietly(self.rfile, self.sock)


def _close_quietly(rfile: BinaryIO | None, sock: socket.socket) -> None:
    # The file object holds a reference to the socket: close it first, or the fd stays open.
    try:
        if rfile is not None:
            rfile.close()
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle kept-alive socket that is readable has been closed (or dirtied) by its peer."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _wrong_digest(value: str | None) -> str:
    """A well-formed sha256 digest that is not ``value``."""
    return "sha256:" + hashlib.sha256(b"fault-proxy:" + (value or "").encode()).hexdigest()


def _canned(kind: str, retry_after: int) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """The proxy's own answer for a ``status_*`` fault."""
    if kind == "status_500":
        doc = {"errors": [{"code": "UNKNOWN", "message": "fault proxy: injected internal server error"}]}
        return 500, "Internal Server Error", [("Content-Type", "application/json")], json.dumps(doc).encode()
    if kind == "status_502":
        page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"
        return 502, "Bad Gateway", [("Content-Type", "text/html")], page
    if kind == "status_503":
        return 503, "Service Unavailable", [("Content-Type", "text/plain")], b"fault proxy: service unavailable\n"
    doc = {"errors": [{"code": "TOOMANYREQUESTS", "message": "fault proxy: too many requests"}]}
    headers = [("Content-Type", "application/json"), ("Retry-After", str(retry_after))]
    return 429, "Too Many Requests", headers, json.dumps(doc).encode()


class FaultProxy:
    """The proxy: see the module docstring."""

    def __init__(
        self,
        upstream: str,
        *,
        faults: Iterable[Fault] = (),
        seed: int = 0,
        max_connections: int = 256,
        timeout: float = 30.0,
        record: bool = False,
        echo_close: bool = True,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, not {upstream!r}")
        self.upstream_address = (parts.hostname, parts.port or 80)
        self.upstream_host = parts.netloc.rpartition("@")[2]  # the Host header upstream
        self.seed = seed
        self.timeout = timeout
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self._tally = _Tally()
        self._hits: list[StorageHit] = []
        self._events: collections.deque[Event] = collections.deque(maxlen=_MAX_EVENTS)
        self.record = record
        self.echo_close = echo_close  # a close the client asked for is said in the answer too
        self._exchanges: list[Exchange] = []
        self._tokens: collections.OrderedDict[str, _Signed] = collections.OrderedDict()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._listeners: list[socket.socket] = []
        self.port = 0
        self.storage_host_name = ""
        self.storage_port = 0
        self.set_faults(faults)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of an image reference through the proxy."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def storage_url(self) -> str:
        """Origin of the storage listener that ``redirect_blob`` sends clients to."""
        return f"http://{self.storage_host_name}:{self.storage_port}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self._listeners:
            return self
        self._stopping.clear()
        main = self._listen("127.0.0.1")
        self.port = main.getsockname()[1]
        try:
            storage = self._listen("127.0.0.2")
            self.storage_host_name = "127.0.0.2"
        except OSError:  # 127.0.0.0/8 is not all loopback here: another *name* for 127.0.0.1
            storage = self._listen("127.0.0.1")
            self.storage_host_name = "localhost"
        self.storage_port = storage.getsockname()[1]
        self._spawn(self._accept_loop, main, self._serve_proxy, name=f"fault-proxy-accept-{self.port}")
        self._spawn(self._accept_loop, storage, self._serve_storage, name=f"fault-proxy-storage-{self.port}")
        return self

    def stop(self, timeout: float = 5.0) -> int:
        """Close every listener and connection, join every thread; returns the threads still alive."""
        self._stopping.set()
        with self._lock:
            listeners, self._listeners = self._listeners, []
            sockets = list(self._sockets)
            threads = [t for t in self._threads if t.is_alive()]
        for sock in [*listeners, *sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv or accept
            except OSError:
                pass
        for sock in listeners:
            sock.close()
        deadline = time.monotonic() + timeout
        while threads and time.monotonic() < deadline:
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            with self._lock:  # a connection accepted just before the stop may have started one more
                threads = [t for t in self._threads if t.is_alive()]
        return len(threads)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- runtime control -----------------------------------------------------------------------

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """Replace the fault mix; each fault gets a fresh RNG seeded from (seed, position, kind)."""
        armed = [_Armed(f, random.Random(f"{self.seed}/{i}/{f.kind}")) for i, f in enumerate(faults)]
        with self._lock:
            self._armed = armed

    def clear_faults(self) -> None:
        self.set_faults(())

    def counters(self) -> Counters:
        with self._lock:
            t = self._tally
            return Counters(
                t.connections,
                t.requests,
                dict(t.requests_by_endpoint),
                dict(t.injected),
                dict(t.injected_by_endpoint),
                dict(t.skipped),
                t.upstream_errors,
            )

    def reset_counters(self) -> None:
        with self._lock:
            self._tally = _Tally()
            self._hits.clear()
            self._events.clear()
            self._exchanges.clear()

    def storage_hits(self, at_least: int = 0, timeout: float = 5.0) -> list[StorageHit]:
        """The storage listener's requests so far; with ``at_least``, waits (up to ``timeout``)
        until that many are recorded: a hit is recorded once its response is sent, which may be
        just after the client has read it."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                hits = list(self._hits)
            if len(hits) >= at_least or time.monotonic() > deadline:
                return hits
            time.sleep(0.01)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def exchanges(self) -> list[Exchange]:
        """Every request recorded so far (``record=True``), in the order their heads arrived."""
        with self._lock:
            return sorted(self._exchanges, key=lambda e: e.started)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _listen(self, address: str) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, 0))
            sock.listen(128)
            sock.settimeout(0.25)  # the accept loop looks at the stop flag this often
        except OSError:
            sock.close()
            raise
        with self._lock:
            self._listeners.append(sock)
        return sock

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        def run() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(thread)

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
        if self._stopping.is_set():  # stop() ran between accept/connect and here
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _pick(self, method: str, target: str, endpoint: str) -> Fault | None:
        """Count the request and draw its fault (first matching fault that wins its draw)."""
        with self._lock:
            self._tally.requests += 1
            self._tally.requests_by_endpoint[endpoint] += 1
            for armed in self._armed:
                fault = armed.fault
                if fault.limit is not None and armed.injected >= fault.limit:
                    continue
                if fault.matches(method, target) and armed.rng.random() < fault.fraction:
                    armed.injected += 1
                    return fault
        return None

    def _injected(self, fault: Fault, endpoint: str) -> None:
        with self._lock:
            self._tally.injected[fault.kind] += 1
            self._tally.injected_by_endpoint[(fault.kind, endpoint)] += 1

    def _skipped(self, fault: Fault) -> None:
        with self._lock:
            self._tally.skipped[fault.kind] += 1
            for armed in self._armed:  # a draw that did not apply does not use up the limit
                if armed.fault is fault:
                    armed.injected -= 1

    def _event(self, endpoint: str, target: str, fault: str | None, status: int | None) -> None:
        with self._lock:
            self._events.append(Event(endpoint, target, fault, status))

    # -- connections ---------------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, serve: Callable[[_Connection], None]) -> None:
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.25):
                continue
            try:
                sock, _ = listener.accept()
            except (TimeoutError, OSError):
                self._slots.release()
                continue
            sock.settimeout(self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(sock)
            with self._lock:
                self._tally.connections += 1
            self._spawn(self._run_connection, _Connection(self, sock), serve, name=f"fault-proxy-conn-{self.port}")

    def _run_connection(self, conn: _Connection, serve: Callable[[_Connection], None]) -> None:
        try:
            serve(conn)
        except (_Closed, OSError, WireError):
            pass  # the client went away, timed out, sent garbage, or a fault closed it
        finally:
            conn.close()
            self._slots.release()

    def _serve_proxy(self, conn: _Connection) -> None:
        if _tls_hello(conn.rfile):
            # containers/image (podman, skopeo) with --tls-verify=false tries HTTPS first and falls
            # back to HTTP when the handshake fails: fail it at once, not after its 10 s timeout.
            conn.reset()
            raise _Closed
        while not self._stopping.is_set():
            head = read_head(conn.rfile)
            if head is None:
                return
            started = time.monotonic()
            conn.last_status = 0
            try:
                more = self._proxy_request(conn, head)
            finally:
                if self.record:
                    self._record(head, conn.last_status, started)
            if not more:
                return

    def _record(self, head: Head, status: int, started: float) -> None:
        method, target, _ = head.start
        exchange = Exchange(method, target, _redacted(head.fields), status, started, time.monotonic())
        with self._lock:
            self._exchanges.append(exchange)

    def _serve_storage(self, conn: _Connection) -> None:
        while not self._stopping.is_set():
            head = read_head(conn.rfile)
            if head is None or not self._storage_request(conn, head):
                return

    # -- the proxy listener ----------------------------------------------------------------------

    def _proxy_request(self, conn: _Connection, head: Head) -> bool:
        """Serve one request; returns whether the connection may carry another."""
        method, target, version = head.start
        endpoint = endpoint_kind(method, target)
        framing = request_framing(head)
        fault = self._pick(method, target, endpoint)
        keep_alive = version == "HTTP/1.1" and not head.has_token("Connection", "close")
        if head.has_token("Expect", "100-continue"):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        kind = fault.kind if fault else None
        if fault is not None and kind == "reset":
            if fault.after_request_bytes:
                drain(conn.rfile, framing, fault.after_request_bytes)
            self._injected(fault, endpoint)
            self._event(endpoint, target, kind, None)
            conn.reset()
            raise _Closed
        if fault is not None and kind == "delay":
            self._injected(fault, endpoint)
            if self._stopping.wait(fault.seconds):
                raise _Closed
            fault = None
        if fault is not None and kind in _ANSWERED:
            drain(conn.rfile, framing)
            status, reason, fields, body = _canned(fault.kind, fault.retry_after)
            self._injected(fault, endpoint)
            self._answer(conn, status, reason, fields, body, keep_alive)
            self._event(endpoint, target, kind, status)
            return keep_alive
        if fault is not None and kind == "redirect_blob":
            blob = _BLOB_PATH.search(target.split("?", 1)[0]) if method == "GET" else None
            if blob is None:
                self._skipped(fault)
            else:
                drain(conn.rfile, framing)
                location = self._sign(target, head.get("Authorization"), blob.group(1))
                self._injected(fault, endpoint)
                self._answer(conn, 307, "Temporary Redirect", [("Location", location)], b"", keep_alive)
                self._event(endpoint, target, kind, 307)
                return keep_alive
            fault = None
        fields = [(n, v) for n, v in end_to_end(head.fields) if n.lower() not in ("host", "expect")]
        fields.insert(0, ("Host", self.upstream_host))
        return self._forward(conn, method, target, fields, framing, keep_alive, fault, endpoint, self._rewrite_headers)

    def _answer(
        self,
        conn: _Connection,
        status: int,
        reason: str,
        fields: list[tuple[str, str]],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        fields = [*fields, ("Content-Length", str(len(body)))]
        if not keep_alive and self.echo_close:
            fields.append(("Connection", "close"))
        conn.send(encode_head(f"HTTP/1.1 {status} {reason}", fields) + body)
        conn.last_status = status

    def _rewrite_headers(self, fields: list[tuple[str, str]], fault: Fault | None) -> list[tuple[str, str]]:
        """Absolute Locations on the upstream point at the proxy; ``wrong_digest`` applied."""
        out = []
        for name, value in fields:
            if name.lower() == "location":
                value = self._rewrite_location(value)
            elif name.lower() == "docker-content-digest" and fault is not None and fault.kind == "wrong_digest":
                value = _wrong_digest(value)
            out.append((name, value))
        if (
            fault is not None
            and fault.kind == "wrong_digest"
            and not any(n.lower() == "docker-content-digest" for n, _ in fields)
        ):
            out.append(("Docker-Content-Digest", _wrong_digest(None)))
        return out

    def _rewrite_location(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.netloc:
            return value  # relative, or not ours
        try:
            address = (parts.hostname, parts.port or 80)
        except ValueError:
            return value
        if address != self.upstream_address:
            return value
        return urlunsplit(("http", self.host, parts.path, parts.query, parts.fragment))

    # -- forwarding ------------------------------------------------------------------------------------

    def _forward(
        self,
        conn: _Connection,
        method: str,
        target: str,
        fields: list[tuple[str, str]],
        framing: Framing,
        keep_alive: bool,
        fault: Fault | None,
        endpoint: str,
        rewrite: Callable[[list[tuple[str, str]], Fault | None], list[tuple[str, str]]],
    ) -> bool:
        """Send the request upstream (body streamed from the client), relay the answer."""
        try:
            response = self._exchange(conn, method, target, fields, framing)
        except _UpstreamFailed as failed:
            conn.drop_upstream()
            with self._lock:
                self._tally.upstream_errors += 1
            body = f"fault proxy: upstream unreachable ({failed})\n".encode()
            self._answer(conn, 502, "Bad Gateway", [("Content-Type", "text/plain")], body, False)
            self._event(endpoint, target, None, 502)
            conn.last_status = 502
            raise _Closed from None
        head = response
        conn.last_status = head.status
        assert conn.up_rfile is not None
        rframing = response_framing(head, method)
        if fault is not None and (
            (fault.kind in (*_BODY_FAULTS, "rechunk") and rframing.empty)
            or (fault.kind in ("truncate", "rechunk") and rframing.kind != "length")
            or (fault.kind == "split" and not (rframing.empty or rframing.kind == "length"))
        ):
            self._skipped(fault)
            fault = None
        out = rewrite(end_to_end(head.fields), fault)
        if fault is not None and fault.kind == "wrong_digest":
            self._injected(fault, endpoint)
        chunked = rframing.kind in ("chunked", "close")
        if rframing.kind == "length":
            out.append(("Content-Length", str(rframing.length)))
        elif rframing.kind == "none":
            out.extend((n, v) for n, v in head.fields if n.lower() == "content-length")  # HEAD answers
        elif chunked and not keep_alive:
            chunked = False  # close-delimited to the client as well
        elif chunked:
            out.append(("Transfer-Encoding", "chunked"))
        if not keep_alive and self.echo_close:
            out.append(("Connection", "close"))
        upstream_reusable = head.start[0] == "HTTP/1.1" and not head.has_token("Connection", "close")
        if fault is not None and fault.kind == "huge_head":
            out.append(("X-Fault-Padding", "p" * (fault.keep if fault.keep is not None else 64 * 1024)))
            self._injected(fault, endpoint)
        if fault is not None and fault.kind in _WIRE_FAULTS:
            start = f"HTTP/1.1 {head.start[1]} {head.start[2]}"
            self._send_recut(conn, start, out, b"".join(iter_body(conn.up_rfile, rframing, BLOCK)), fault, endpoint)
            self._event(endpoint, target, fault.kind, head.status)
            if not upstream_reusable:
                conn.drop_upstream()
            return keep_alive
        conn.send(encode_head(f"HTTP/1.1 {head.start[1]} {head.start[2]}", out))
        self._event(endpoint, target, fault.kind if fault else None, head.status)
        body_fault = fault if fault is not None and fault.kind in _BODY_FAULTS else None
        complete = self._relay_body(conn, rframing, BodyWriter(conn.sock, chunked), body_fault, endpoint)
        if not complete:
            conn.drop_upstream()
            try:
                conn.sock.shutdown(socket.SHUT_WR)  # FIN: the client sees the body end early
            except OSError:
                pass
            raise _Closed
        if rframing.kind == "close" or not upstream_reusable:
            conn.drop_upstream()
        return keep_alive

    def _send_recut(
        self, conn: _Connection, start: str, fields: list[tuple[str, str]], body: bytes, fault: Fault, endpoint: str
    ) -> None:
        """A ``split`` or ``rechunk`` answer: the same head and body, cut differently on the wire."""
        # Counted before the answer leaves: a client that has read it may look at once.
        if fault.kind == "rechunk":
            self._injected(fault, endpoint)
            fields = [(n, v) for n, v in fields if n.lower() != "content-length"] + [("Transfer-Encoding", "chunked")]
            conn.send(encode_head(start, fields))
            size = max(1, fault.keep if fault.keep is not None else 7)
            for offset in range(0, len(body), size):
                piece = body[offset : offset + size]
                conn.send(b'%x;fault-proxy=1;note="a;b"\r\n' % len(piece) + piece + b"\r\n")
            conn.send(b"0;last=1\r\nX-Fault-Trailer: done\r\nX-Fault-Checksum: 0\r\n\r\n")
            return
        wire = encode_head(start, fields) + body
        cut = fault.keep if fault.keep is not None else len(wire) // 2
        if not 0 < cut < len(wire):
            self._skipped(fault)
            conn.send(wire)
            return
        self._injected(fault, endpoint)
        conn.send(wire[:cut])
        if self._stopping.wait(_SPLIT_PAUSE):
            raise _Closed
        conn.send(wire[cut:])

    def _exchange(
        self, conn: _Connection, method: str, target: str, fields: list[tuple[str, str]], framing: Framing
    ) -> Head:
        """Send head and body upstream, read the answer's head. When the upstream stops taking
        the body (it answered early, e.g. 404 to an unknown upload session, and closed), the rest
        of the client's body is read and dropped, then that early answer is relayed."""
        up, _ = conn.upstream()
        if framing.kind == "length":
            fields = [*fields, ("Content-Length", str(framing.length))]
        elif framing.kind == "chunked":
            fields = [*fields, ("Transfer-Encoding", "chunked")]
        elif method in ("POST", "PUT", "PATCH"):
            fields = [*fields, ("Content-Length", "0")]
        try:
            up.sendall(encode_head(f"{method} {target} HTTP/1.1", fields))
        except OSError as e:
            raise _UpstreamFailed(f"send: {e}") from e
        writer: BodyWriter | None = BodyWriter(up, framing.kind == "chunked")
        for data in iter_body(conn.rfile, framing):  # a client failure here ends the connection
            try:
                if writer is not None:
                    writer.write(data)
            except OSError:
                writer = None
        try:
            if writer is not None:
                writer.finish()
        except OSError:
            pass
        return self._read_response(conn)

    def _read_response(self, conn: _Connection) -> Head:
        rfile = conn.up_rfile
        if rfile is None:
            raise _UpstreamFailed("no connection")
        try:
            while True:
                head = read_head(rfile, response=True)
                if head is None:
                    raise _UpstreamFailed("closed without an answer")
                if not 100 <= head.status < 200:
                    return head
        except (OSError, WireError) as e:
            raise _UpstreamFailed(f"read: {e}") from e

    def _relay_body(
        self, conn: _Connection, framing: Framing, writer: BodyWriter, fault: Fault | None, endpoint: str
    ) -> bool:
        """Stream the upstream body to the client, faulted; False when it was cut short."""
        assert conn.up_rfile is not None
        known = framing.length if framing.kind == "length" else None
        cut: int | None = None
        flip: int | None = None
        if fault is not None and fault.kind == "close_mid_body":
            cut = fault.keep if fault.keep is not None else (known // 2 if known else 1)
        elif fault is not None and fault.kind == "truncate" and known:
            cut = fault.keep if fault.keep is not None else known - 1
            cut = min(cut, known - 1)
        elif fault is not None and fault.kind == "corrupt":
            flip = fault.keep if fault.keep is not None else (known // 2 if known else 0)
        sent = 0
        body = iter_body(conn.up_rfile, framing, BLOCK)
        while True:
            try:
                data = next(body, None)
            except (OSError, WireError):
                raise _Closed from None  # the upstream broke mid-body: so does the client's answer
            if data is None:
                break
            if cut is not None and sent + len(data) >= cut:
                writer.write(data[: cut - sent])
                assert fault is not None
                self._injected(fault, endpoint)
                return False
            if flip is not None and sent <= flip < sent + len(data):
                assert fault is not None
                buf = bytearray(data)
                buf[flip - sent] ^= 0xFF
                data = bytes(buf)
                self._injected(fault, endpoint)
                flip = None
            writer.write(data)
            sent += len(data)
        if fault is not None and (cut is not None or flip is not None):
            self._skipped(fault)  # the body ended before the fault's offset
        writer.finish()
        return True

    # -- the storage listener ----------------------------------------------------------------------

    def _sign(self, target: str, authorization: str | None, digest: str) -> str:
        """A storage URL standing for ``target`` read with ``authorization``."""
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = _Signed(target, authorization)
            while len(self._tokens) > _MAX_TOKENS:
                self._tokens.popitem(last=False)
        return f"{self.storage_url}/storage/{token}/{digest}?X-Fault-Proxy-Signature={token[:8]}"

    def _storage_request(self, conn: _Connection, head: Head) -> bool:
        method, target, version = head.start
        keep_alive = version == "HTTP/1.1" and not head.has_token("Connection", "close")
        authorization = head.get("Authorization") is not None
        framing = request_framing(head)
        drain(conn.rfile, framing)
        match = _STORAGE_PATH.match(target.split("?", 1)[0])
        with self._lock:
            signed = self._tokens.get(match.group(1)) if match else None
        if signed is None or method not in ("GET", "HEAD"):
            status, reason = (403, "Forbidden") if signed is None else (405, "Method Not Allowed")
            self._answer(conn, status, reason, [("Content-Type", "text/plain")], b"fault proxy storage: no\n", False)
            self._record_hit(method, target, authorization, status)
            raise _Closed
        fields = [("Host", self.upstream_host), ("User-Agent", "fault-proxy-storage")]
        if signed.authorization:
            fields.append(("Authorization", signed.authorization))

        def storage_headers(fields: list[tuple[str, str]], fault: Fault | None) -> list[tuple[str, str]]:
            # What object storage sends: no registry headers.
            return [(n, v) for n, v in fields if n.lower() in ("content-type", "etag", "date")]

        conn.last_status = 0
        try:
            return self._forward(
                conn, method, signed.path, fields, Framing("none"), keep_alive, None, "storage", storage_headers
            )
        finally:
            self._record_hit(method, target, authorization, conn.last_status)

    def _record_hit(self, method: str, target: str, authorization: bool, status: int) -> None:
        with self._lock:
            self._hits.append(StorageHit(method, target.split("?", 1)[0], authorization, status))
