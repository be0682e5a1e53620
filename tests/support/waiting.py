"""Waiting for a condition instead of sleeping for a guessed time.

    line = wait_until(lambda: "ready" in log.read_text(), timeout=30, message=lambda: log.read_text())

A test that sleeps, then expects a state, fails on a loaded machine (the state comes late) and
wastes time on an idle one; one that polls the real condition (a file appeared, a log line, a
counter moved) with a deadline does neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns a true value, and return
    that value; after ``timeout`` seconds without one, fail (``AssertionError``) with ``message``
    (a callable is called then, to show the state at the time of the failure)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"not within {timeout:g} s: {text}")
        time.sleep(interval)
