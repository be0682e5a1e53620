"""The one place a registry client is built: transport, auth and client from a front end's
settings. The CLI, ``verify`` and the Locust users all connect through ``make_client``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..auth import Authenticator, Credentials, TokenCache
from ..client import NULL_OBSERVER, Observer, RegistryClient
from ..http import Transport, TransportOptions
from ..reference import Registry
from ..retry import NO_RETRIES, RetryPolicy
from ..transports import make_transport

_TRANSPORT = TransportOptions()


@dataclass(frozen=True)
class ClientSettings:
    """How to reach a registry, as the user's options say."""

    credentials: Credentials | None = None
    # The user asked for plain HTTP (--plain-http, or an http:// URL they wrote): only then may
    # credentials go in clear to a host that is not loopback (auth._refuse_cleartext_realm).
    plain_http: bool = False
    ca_cert: str | None = None
    insecure: bool = False
    read_timeout: float = _TRANSPORT.read_timeout
    connections_per_host: int = _TRANSPORT.max_connections_per_host
    http2: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    retry: RetryPolicy = field(default=NO_RETRIES)
    user_agent: str = _TRANSPORT.user_agent  # a client profile's, or --user-agent
    keep_alive: bool = True  # a client profile's: False, a connection per request

    def __repr__(self) -> str:  # Credentials hide the password; say nothing more than needed
        return f"ClientSettings(credentials={self.credentials!r}, plain_http={self.plain_http}, http2={self.http2})"


def make_client(
    registry: Registry,
    settings: ClientSettings,
    *,
    observer: Observer = NULL_OBSERVER,
    tokens: TokenCache | None = None,
    transport: Transport | None = None,
) -> RegistryClient:
    """A client for ``registry``. ``tokens``: a cache shared with other clients (default: its own).
    ``transport``: one given by the caller (an in-memory one in tests) instead of the one
    ``settings.http2`` selects."""
    if transport is None:
        options = TransportOptions(
            ca_cert=settings.ca_cert,
            insecure=settings.insecure,
            read_timeout=settings.read_timeout,
            max_connections_per_host=settings.connections_per_host,
            user_agent=settings.user_agent,
            keep_alive=settings.keep_alive,
        )
        transport = make_transport(options, http2=settings.http2)
    import gevent  # here, not at import: the CLI's --version and --help load no gevent

    plain_http = registry.scheme == "http" and settings.plain_http
    auth = Authenticator(settings.credentials, tokens, plain_http=plain_http)
    return RegistryClient(
        registry,
        transport,
        auth=auth,
        headers=settings.headers,
        observer=observer,
        retry=settings.retry,
        sleep=gevent.sleep,  # a retry's pause lets the other transfers go on, patched or not
    )
