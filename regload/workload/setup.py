"""Set-up with retries: what a load test creates before it measures (the pull pool, a trace's
warm-up) may try again, since a registry still busy with an earlier run, or another process
pushing the same blob at once, can fail one attempt. Refused credentials are not tried again:
they would be refused again, and each try loads the token service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import gevent

from ..errors import AuthError, RegloadError

log = logging.getLogger("regload")
SETUP_ATTEMPTS = 3
SETUP_BACKOFF = 0.5  # seconds before the second attempt; the n-th waits n times as long

T = TypeVar("T")


def with_retries(action: Callable[[], T], attempts: int = SETUP_ATTEMPTS, backoff: float = SETUP_BACKOFF) -> T:
    """``action()``, tried up to ``attempts`` times; the last error is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except RegloadError as e:
            if attempt >= attempts or (isinstance(e, AuthError) and e.refused):
                raise
            log.info("regload: set-up failed (%s); trying again (%d of %d)", e, attempt + 1, attempts)
            gevent.sleep(backoff * attempt)
    raise AssertionError("unreachable: attempts must be at least 1")
