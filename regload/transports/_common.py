"""What the network transports share: the TLS context, request framing rules, error mapping.

Error messages are one line, ``<request name> to <host>:<port>: <cause>``. They never carry the
URL (its query may hold upload state) nor any header value (tokens, credentials).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable, Iterator

from regload.errors import CertificateError, PlainHTTPAnswer, RequestTimeout, TLSError, TransportError, UsageError
from regload.http import Request, TransportOptions

# Framing is the transport's job: these request headers are replaced by what the body needs.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})
# What OpenSSL says when the first bytes back are not a TLS record but an HTTP answer ("HTTP/1.x
# 400 ..."): 3.0 calls the five bytes "HTTP/" a wrong version, 3.2 and later a record layer failure.
PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})
# Methods that carry content: they get ``Content-Length: 0`` when they have no body (RFC 9110
# 8.6; some proxies answer 411 otherwise).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def build_ssl_context(
    options: TransportOptions, factory: Callable[[], ssl.SSLContext] = ssl.create_default_context
) -> ssl.SSLContext:
    """The client TLS context: system trust plus ``ca_cert``; ``insecure`` verifies nothing."""
    context = factory()
    if options.ca_cert:
        try:
            context.load_verify_locations(cafile=options.ca_cert)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load CA certificates from {options.ca_cert}: {exc}") from exc
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def default_headers(options: TransportOptions) -> tuple[tuple[str, str], ...]:
    close = (("Connection", "close"),) if not options.keep_alive else ()
    return (("User-Agent", options.user_agent), *close, *options.extra_headers)


def merge_headers(defaults: tuple[tuple[str, str], ...], request: Request) -> list[tuple[str, str]]:
    """Defaults first, unless the request sets the same field; framing fields dropped."""
    if not request.headers:
        return list(defaults)  # most registry requests (blob GETs, the ping) set none
    own = {name.lower() for name, _ in request.headers}
    merged = [(n, v) for n, v in defaults if n.lower() not in own]
    merged.extend((n, v) for n, v in request.headers if n.lower() not in FRAMING_HEADERS)
    return merged


def body_length(request: Request, where: str) -> int | None:
    """The Content-Length to announce, or None for chunked transfer coding."""
    body = request.body
    if body is None:
        if request.content_length:
            raise TransportError(f"{where}: content_length={request.content_length} without a body")
        return 0 if request.method in BODY_METHODS else None
    if isinstance(body, (bytes, bytearray, memoryview)):
        size = memoryview(body).nbytes
        if request.content_length is not None and request.content_length != size:
            raise TransportError(f"{where}: request body is {size} bytes, content_length says {request.content_length}")
        return size
    return request.content_length


def sized_chunks(chunks: Iterable[bytes | memoryview], limit: int) -> Iterator[memoryview]:
    """Re-cut body chunks to at most ``limit`` bytes each, without copying."""
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        for start in range(0, len(view), limit):
            yield view[start : start + limit]


def length_mismatch(where: str, sent: int, announced: int) -> TransportError:
    return TransportError(f"{where}: request body stream gave {sent} bytes, content_length announced {announced}")


def label(request: Request) -> str:
    """The request's template name, starting with its method: ``GET /v2/<name>/blobs/<digest>``."""
    name = request.name or request.method
    if name != request.method and not name.startswith(request.method + " "):
        name = f"{request.method} {name}"
    return name


def describe(request: Request, host: str, port: int) -> str:
    """``GET /v2/<name>/blobs/<digest> to registry:5000``: the prefix of every error message."""
    if ":" in host:
        host = f"[{host}]"
    return f"{label(request)} to {host}:{port}"


def map_exception(exc: BaseException, where: str, phase: str, timeout: float) -> TransportError:
    """Turn a backend failure into regload's exception with a one-line, secret-free message.

    ``phase`` is "connect" or "read" (what was going on), ``timeout`` the limit that applied.
    """
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateError(f"{where}: TLS certificate verification failed: {exc.verify_message}")
    if isinstance(exc, TimeoutError):  # also socket.timeout and gevent's TLS timeouts
        return RequestTimeout(f"{where}: {phase} timed out after {timeout:g}s")
    if isinstance(exc, ssl.SSLError) and exc.reason in PLAIN_HTTP_REASONS:
        return PlainHTTPAnswer(f"{where}: TLS error: the registry answered in plain HTTP, not TLS")
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"{where}: TLS error: {exc.reason or exc.strerror or exc}")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"{where}: cannot resolve host: {exc.strerror or exc}")
    if isinstance(exc, ConnectionRefusedError):
        return TransportError(f"{where}: connection refused")
    if isinstance(exc, ConnectionResetError):
        return TransportError(f"{where}: connection reset by peer")
    if isinstance(exc, BrokenPipeError):
        return TransportError(f"{where}: connection closed by peer while sending")
    if isinstance(exc, OSError):
        return TransportError(f"{where}: {(exc.strerror or str(exc) or type(exc).__name__).lower()}")
    return TransportError(f"{where}: {type(exc).__name__}: {exc}")
