"""Reports every registry request to Locust's stats, named by the spec's path template."""

from __future__ import annotations

from typing import Any

from ..errors import DigestMismatch, RegistryError, RegloadError, TimeoutError_, TransportError


def failure_cause(error: BaseException) -> str:
    """A bounded, secret-free cause for Locust's failure table: one row per kind of fault,
    never one per digest, session or URL."""
    if isinstance(error, RegistryError):
        return f"HTTP {error.status}" + (f" {error.code}" if error.code else "")
    if isinstance(error, DigestMismatch):
        return "digest mismatch"
    if isinstance(error, TimeoutError_):
        return "timeout"
    if isinstance(error, TransportError):
        # "GET /v2/... to host:port: connection refused" -> "connection refused"
        return "connection error: " + str(error).rsplit(": ", 1)[-1]
    if isinstance(error, RegloadError):
        return f"{type(error).__name__}: {str(error).split(': ')[-1][:80]}"
    return f"{type(error).__name__}"


class CauseError(Exception):
    """What Locust stores as a failure: the original error's cause only."""


class LocustObserver:
    """``regload.client.Observer`` firing ``events.request``: ``GET /v2/<name>/blobs/<digest>``
    becomes request type ``GET`` and name ``/v2/<name>/blobs/<digest>``."""

    def __init__(self, events: Any) -> None:
        self._fire = events.request.fire
        self._split: dict[str, tuple[str, str]] = {}

    def on_request(
        self, name: str, method: str, elapsed: float, status: int | None, length: int, error: BaseException | None
    ) -> None:
        split = self._split.get(name)
        if split is None:
            kind, _, path = name.partition(" ")
            split = self._split[name] = (kind or method, path or name)
        self._fire(
            request_type=split[0],
            name=split[1],
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=CauseError(failure_cause(error)) if error is not None else None,
            context={},
        )

    def operation(self, kind: str, elapsed: float, length: int, error: BaseException | None) -> None:
        """A whole image operation: ``PULL image`` / ``PUSH image``."""
        self._fire(
            request_type=kind,
            name="image",
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=CauseError(failure_cause(error)) if error is not None else None,
            context={},
        )
