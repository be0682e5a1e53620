"""Resource limits for the processes a test starts: a lowered open-files limit makes any
descriptor leak fail at once, not after thousands of entries on someone else's machine."""

from __future__ import annotations

import resource
from collections.abc import Callable


def open_files_limit(count: int) -> Callable[[], None]:
    """A ``preexec_fn`` setting the child's soft and hard ``RLIMIT_NOFILE`` to ``count`` (an
    unprivileged child cannot raise it again; Locust tries, and warns that it could not)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))

    return apply
