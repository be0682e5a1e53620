"""bench/per_request.py's regload subject: the project's PullUser, unchanged, plus the CPU probe."""

from regload.locust import PullUser

from _cpu import _on_start, _on_stop  # noqa: F401  (listeners)

__all__ = ["PullUser"]
