"""The Locust front end: ``PullUser``, ``PushUser`` and the abstract ``RegistryUser``.

Importing the user classes (``from regload.locust import PullUser``) imports Locust, which
monkey-patches the standard library for gevent, and registers regload's options and event
listeners. The helper modules (``observer``, ``options``, ``thresholds``, ``throughput``) do
not import Locust, so they can be used and tested without that patching.
"""

from typing import Any

__all__ = ["PullUser", "PushUser", "RegistryUser"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import (
            hooks,  # noqa: F401  (registers the listeners)
            users,
        )

        return getattr(users, name)
    raise AttributeError(name)
