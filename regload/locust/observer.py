"""Reports every registry request to Locust's stats, named by the spec's path template."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ..errors import (
    AuthError,
    CertificateError,
    DigestMismatch,
    PlainHTTPRefused,
    RegistryError,
    RegloadError,
    RequestTimeout,
    TLSError,
    TransportError,
    mended_by,
)

log = logging.getLogger("regload")
#: What to log, once, of a failure that an option mends (``errors.mended_by``).
LOCUST_HINTS = MappingProxyType(
    {
        "trust": "give --registry-ca-cert FILE to trust the registry's CA, or --registry-insecure to skip verification",
        "plain-http": "the registry speaks plain HTTP: give --host http://HOST:PORT",
        "credentials": "give credentials with --registry-username and --registry-password"
        " (or REGLOAD_USERNAME and REGLOAD_PASSWORD)",
        "refused": "check --registry-username and --registry-password; a user waits --connection-backoff seconds"
        " after each refusal",
    }
)


def failure_cause(error: BaseException) -> str:
    """A bounded, secret-free cause for Locust's failure table: one row per kind of fault,
    never one per digest, session or URL."""
    if isinstance(error, PlainHTTPRefused):
        return "credentials refused over plain HTTP"
    if isinstance(error, RegistryError):
        status = f"HTTP {error.status}" + (f" {error.code}" if error.code else "")
        return f"{status}: {error.reason}" if isinstance(error, AuthError) and error.reason else status
    if isinstance(error, DigestMismatch):
        return "digest mismatch"
    if isinstance(error, RequestTimeout):
        return "timeout"
    if isinstance(error, CertificateError):
        return "TLS error: certificate verify failed"  # the whole story once in the log: Hints
    if isinstance(error, TLSError):
        return "TLS error: " + str(error).rsplit(": ", 1)[-1][:80]
    if isinstance(error, TransportError):
        # "GET /v2/... to host:port: connection refused" -> "connection refused"
        return "connection error: " + _bounded(str(error).rsplit(": ", 1)[-1])
    if isinstance(error, RegloadError):
        # "<endpoint or subject>: <what went wrong>": the part after the subject.
        return _bounded(str(error).split(": ", 1)[-1])[:80]
    return f"{type(error).__name__}"


def _bounded(text: str) -> str:
    """A message without its variable parts: "closed with 1234 body bytes missing" becomes
    "closed with N body bytes missing" (one failure row, not one per byte count or digest)."""
    return _NUMBERS.sub("N", _DIGESTS.sub("<digest>", text))


_DIGESTS = re.compile(r"\b[a-z0-9]+:[a-f0-9]{12,}\b")
_NUMBERS = re.compile(r"\d+")


class Hints:
    """Logs, once per run and kind, the whole story of a failure whose fix is an option (an
    untrusted certificate, plain HTTP, missing or refused credentials): the failure table keeps
    only a short cause."""

    def __init__(self) -> None:
        self._given: set[str] = set()

    def log(self, error: BaseException) -> None:
        hint = LOCUST_HINTS.get(mended_by(error) or "")
        if hint is not None and hint not in self._given:
            self._given.add(hint)
            log.warning("regload: %s; %s", error, hint)


class CauseError(Exception):
    """What Locust stores as a failure: the original error's cause only.

    Locust names a failure by ``repr(exception)``; this one's repr is the cause itself, so the
    failures table and CSV read ``connection error: connection refused``, not the class name."""

    def __repr__(self) -> str:
        return str(self)


class LocustObserver:
    """``regload.client.Observer`` firing ``events.request``: ``GET /v2/<name>/blobs/<digest>``
    becomes request type ``GET`` and name ``/v2/<name>/blobs/<digest>``."""

    def __init__(self, events: Any, hints: Hints | None = None) -> None:
        self._fire = events.request.fire
        self._hints = hints or Hints()
        self._split: dict[str, tuple[str, str]] = {}

    def on_request(
        self, name: str, method: str, elapsed: float, status: int | None, length: int, error: BaseException | None
    ) -> None:
        split = self._split.get(name)
        if split is None:
            kind, _, path = name.partition(" ")
            split = self._split[name] = (kind or method, path or name)
        if error is not None:
            self._hints.log(error)
        self._fire(
            request_type=split[0],
            name=split[1],
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=CauseError(failure_cause(error)) if error is not None else None,
            context={},
        )

    def operation(
        self, kind: str, elapsed: float, length: int, error: BaseException | None, name: str = "image"
    ) -> None:
        """A whole operation: ``PULL image`` / ``PUSH image``, or a trace's ``TRACE GET blob``…"""
        self._fire(
            request_type=kind,
            name=name,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=CauseError(failure_cause(error)) if error is not None else None,
            context={},
        )


def drop_counter(events: Any, cause: str) -> Callable[[str], None]:
    """What the open model calls for an arrival no user was idle for: one failed request in the
    row ``<kind> dropped``, with no latency (Locust rounds nothing here)."""

    def dropped(kind: str) -> None:
        events.request.fire(
            request_type=kind,
            name="dropped",
            response_time=0.0,
            response_length=0,
            exception=CauseError(cause),
            context={},
        )

    return dropped
