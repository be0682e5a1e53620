"""The Locust front end: ``PullUser``, ``PushUser``, ``StormUser``, ``TraceUser``, the abstract ``RegistryUser``
for scenarios of one's own, and the run they share (``LoadRun``, ``install``).

Importing a user class (``from regload.locust import PullUser``, or from ``regload.locust.users``)
imports Locust, which monkey-patches the standard library for gevent, and installs regload's
plugin (``plugin``: its options, and a ``LoadRun`` on each environment). The modules that do not
import Locust (``observer``, ``options``, ``thresholds``, ``throughput``, ``arrival_report``) can
be used and tested without that patching: this package imports nothing until a name is asked for.
"""

from typing import Any

__all__ = ("LoadRun", "PullUser", "PushUser", "RegistryUser", "StormUser", "TraceUser", "install")


def __getattr__(name: str) -> Any:
    if name == "TraceUser":
        from . import trace_user

        return trace_user.TraceUser
    if name == "StormUser":
        from . import storm_user

        return storm_user.StormUser
    if name in ("PullUser", "PushUser", "RegistryUser"):
        from . import users

        return getattr(users, name)
    if name == "LoadRun":
        from .run import LoadRun

        return LoadRun
    if name == "install":
        from .plugin import install

        return install
    raise AttributeError(name)
