"""The Locust front end: ``PullUser``, ``PushUser`` and the abstract ``RegistryUser``.

Importing this package registers regload's options and event listeners with Locust.
"""

from . import hooks  # noqa: F401  (registers the listeners)
from .users import PullUser, PushUser, RegistryUser

__all__ = ["PullUser", "PushUser", "RegistryUser"]
