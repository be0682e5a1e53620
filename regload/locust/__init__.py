"""The Locust front end: ``PullUser``, ``PushUser``, ``TraceUser`` and the abstract ``RegistryUser``.

Importing the user classes (``from regload.locust import PullUser``, or from
``regload.locust.users``) imports Locust, which monkey-patches the standard library for gevent,
and registers regload's options and event listeners (``users`` imports ``hooks``). The helper
modules (``observer``, ``options``, ``pool``, ``thresholds``, ``throughput``) do not import
Locust, so they can be used and tested without that patching.
"""

from typing import Any

__all__ = ["PullUser", "PushUser", "RegistryUser", "TraceUser"]


def __getattr__(name: str) -> Any:
    if name == "TraceUser":
        from . import trace_user

        return trace_user.TraceUser
    if name in __all__:
        from . import users

        return getattr(users, name)
    raise AttributeError(name)
