"""The retry policy: off by default, because a load tester must see every failure.

When a user asks for retries (``--retries N``), a request that failed in a way worth another try
is sent again after a wait, up to N more times. Every attempt still reaches the observer as a
request of its own, the failed ones with their cause, so retries never hide a fault from the
stats. Only requests that can be sent twice are retried:

- an answer of 429, 502, 503 or 504: the registry did not process the request (RFC 9110
  §15.6.3–15.6.5, RFC 6585 §4); any method but PATCH, whose upload offset may have moved;
- a connection failure or timeout: only idempotent methods (GET, HEAD, PUT, DELETE; RFC 9110
  §9.2.2), since the request may have been processed before the connection broke;
- never a request whose body is a stream (a blob upload): it cannot be replayed.

The wait doubles from ``backoff`` on each attempt, capped by ``max_wait``; a ``Retry-After``
header (seconds or an HTTP date, RFC 9110 §10.2.3) is honoured unless told otherwise, also capped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .errors import RegistryError, RegloadError, TransportError, UsageError
from .http import Request

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})
MAX_RETRIES = 100
MAX_WAIT = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 0  # extra attempts after the first; 0 = never retry
    backoff: float = 1.0  # seconds before the first retry, doubled on each next one
    max_wait: float = 30.0  # no wait is longer, whatever Retry-After says
    honour_retry_after: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.retries <= MAX_RETRIES:
            raise UsageError(f"--retries must be between 0 and {MAX_RETRIES}, not {self.retries}")
        for name, value in (("--retry-backoff", self.backoff), ("--retry-max-wait", self.max_wait)):
            if not 0 <= value <= MAX_WAIT:  # also refuses nan
                raise UsageError(f"{name} must be a number of seconds from 0 to {MAX_WAIT:g}, not {value}")

    def delay(self, request: Request, error: RegloadError, attempt: int) -> float | None:
        """Seconds to wait before sending ``request`` again after its ``attempt``-th try (1 =
        the first) failed with ``error``; None when it must not be retried."""
        if attempt > self.retries or not request.replayable:
            return None
        if isinstance(error, RegistryError):
            if error.status not in RETRY_STATUSES or request.method == "PATCH":
                return None
            if self.honour_retry_after and error.retry_after is not None:
                return min(error.retry_after, self.max_wait)
        elif not (isinstance(error, TransportError) and request.method in IDEMPOTENT):
            return None
        return min(self.backoff * 2 ** (attempt - 1), self.max_wait)


NO_RETRIES = RetryPolicy()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delay-seconds or an HTTP date; None if neither."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²": str.isdigit takes any Unicode digit
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
