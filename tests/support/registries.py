"""The five registry modes of the test bed, each a real ``docker-registry`` process.

``start(mode, workdir)`` returns a :class:`RegistryFixture`; ``conftest.py`` wraps each mode in
a session fixture (``registry_anon``, ``registry_basic``, …) and all of them in ``any_registry``.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from regload.local_registry import Htpasswd, LocalRegistry, Token
from tests.support.htpasswd import write_htpasswd
from tests.support.pki import make_server_pki, make_token_signer
from tests.support.token_server import TokenServer

MODES = ("anon", "basic", "token", "tls", "prefix")

USERNAME = "regload"
#: Exercises escaping: '@' and ':' (basic auth splits on the first ':'), '%', '/', '+', '#', ' '.
PASSWORD = "p@ss:w0rd!%/+ #"
SERVICE = "regload-test-registry"
ISSUER = "regload-test-issuer"
PREFIX = "/some/prefix/"


@dataclass
class RegistryFixture:
    """A running test registry and what a client needs to reach it."""

    mode: str
    registry: LocalRegistry
    username: str | None = None
    password: str | None = None
    ca_cert: Path | None = None
    #: A directory holding only ``ca.crt``: skopeo's ``--cert-dir``.
    ca_dir: Path | None = None
    token_server: TokenServer | None = None
    #: In prefix mode, a second registry without prefix over the same storage: docker-style
    #: references (skopeo) cannot carry a path prefix, so skopeo seeds and reads through it.
    seed: LocalRegistry | None = None

    @property
    def url(self) -> str:
        """Base URL, prefix included, without trailing slash."""
        return self.registry.url

    @property
    def api_url(self) -> str:
        return self.registry.url + "/v2/"

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def prefix(self) -> str | None:
        return self.registry.prefix

    @property
    def tls(self) -> bool:
        return self.ca_cert is not None

    @property
    def skopeo_host(self) -> str:
        """``host:port`` for docker references that reach this registry's content."""
        return (self.seed or self.registry).host

    def docker_ref(self, repository: str, tag: str = "latest") -> str:
        """A skopeo ``docker://`` reference into this registry."""
        return f"docker://{self.skopeo_host}/{repository}:{tag}"

    def basic_auth(self) -> str | None:
        """The ``Authorization: Basic`` value for the test user, or None when anonymous."""
        if self.username is None or self.password is None:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert) if self.ca_cert else None)

    def close(self) -> None:
        for registry in (self.seed, self.registry):
            if registry is not None:
                registry.stop()
        if self.token_server is not None:
            self.token_server.stop()


@dataclass(frozen=True)
class Response:
    status: int
    #: Case-insensitive: Go sends ``Www-Authenticate``.
    headers: Message
    body: bytes


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10,
) -> Response:
    """One request with urllib, error statuses returned rather than raised, no proxy."""
    # An empty ProxyHandler: $http_proxy from the environment must not catch loopback traffic.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with opener.open(request, timeout=timeout) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as err:
        body = err.read()
        return Response(err.code, err.headers, body)


def start(mode: str, workdir: Path, *, token_expires_in: int = 300) -> RegistryFixture:
    """Start the registry (and token server) of ``mode``; files go under ``workdir``."""
    if mode == "anon":
        return RegistryFixture(mode, LocalRegistry().start())
    if mode == "basic":
        htpasswd = write_htpasswd(workdir / "htpasswd", {USERNAME: PASSWORD})
        registry = LocalRegistry(auth=Htpasswd(htpasswd)).start()
        return RegistryFixture(mode, registry, USERNAME, PASSWORD)
    if mode == "token":
        signer = make_token_signer(workdir / "token-pki")
        server = TokenServer(
            signer,
            service=SERVICE,
            issuer=ISSUER,
            users={USERNAME: PASSWORD},
            expires_in=token_expires_in,
        ).start()
        auth = Token(realm=server.realm, service=SERVICE, issuer=ISSUER, rootcertbundle=signer.cert)
        try:
            registry = LocalRegistry(auth=auth).start()
        except BaseException:
            server.stop()
            raise
        return RegistryFixture(mode, registry, USERNAME, PASSWORD, token_server=server)
    if mode == "tls":
        pki = make_server_pki(workdir / "pki")
        registry = LocalRegistry(tls=(pki.server_cert, pki.server_key)).start()
        return RegistryFixture(mode, registry, ca_cert=pki.ca_cert, ca_dir=pki.ca_dir)
    if mode == "prefix":
        registry = LocalRegistry(prefix=PREFIX).start()
        try:
            seed = LocalRegistry(storage_dir=registry.storage_dir).start()
        except BaseException:
            registry.stop()
            raise
        return RegistryFixture(mode, registry, seed=seed)
    raise ValueError(f"unknown registry mode {mode!r}; known: {', '.join(MODES)}")
