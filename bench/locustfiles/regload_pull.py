"""bench/per_request.py's regload subject: the project's PullUser, unchanged, plus the CPU probe."""

from _cpu import _on_start, _on_stop  # noqa: F401  (listeners)

from regload.locust import PullUser

__all__ = ["PullUser"]
