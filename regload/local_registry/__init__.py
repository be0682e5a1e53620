"""A throwaway CNCF distribution registry (Debian's ``docker-registry``) on loopback: the Locust
front end's embedded registry when no ``--host`` is given, and the test suite's.

``config`` says what the registry is asked to be; ``process`` starts, restarts and stops it.
Standard library only: importable without gevent, locust or httpx.
"""

from .config import Htpasswd, RegistryConfig, Token
from .process import LocalRegistry, RegistryBinaryNotFound, RegistryStartError, find_registry_binary, free_port

__all__ = [
    "Htpasswd",
    "LocalRegistry",
    "RegistryBinaryNotFound",
    "RegistryConfig",
    "RegistryStartError",
    "Token",
    "find_registry_binary",
    "free_port",
]
