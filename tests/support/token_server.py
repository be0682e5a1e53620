"""A Docker token server (the ``realm`` of a ``Bearer`` challenge) for token-mode tests.

``GET /token?service=S&scope=repository:NAME:pull,push&scope=…`` with optional basic auth
answers ``{"token", "access_token", "expires_in", "issued_at"}``. The token is an RS256 JWT whose
JOSE header carries ``x5c`` = [the signing certificate, base64 DER]; distribution 2.8 checks that
certificate against its ``rootcertbundle`` and the claims ``iss``, ``aud``, ``exp``/``nbf``
(with 60 s of leeway), then ``access``.

Every answered request is recorded in :attr:`TokenServer.requests` so tests can count them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.support.pki import TokenSigner


@dataclass(frozen=True)
class Scope:
    """One ``type:name:actions`` scope, e.g. ``repository:library/busybox:pull,push``."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        # The name may itself contain ':' (e.g. `repository:host:5000/x:pull` from some
        # clients), so split the type off the front and the actions off the back.
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not (sep and sep2 and kind and name):
            raise ValueError(f"malformed scope {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


#: Decides what a user gets for a requested scope; ``user`` is None for anonymous requests.
Policy = Callable[[str | None, Scope], Iterable[str]]


def grant_all(user: str | None, scope: Scope) -> Iterable[str]:
    """The default policy: every requested action is granted."""
    return scope.actions


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: Mapping[str, Any], signer: TokenSigner) -> str:
    """Compact-serialised RS256 JWS (RFC 7515) with the signing certificate in ``x5c``."""
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(signer.cert_der).decode()]}
    signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
    signature = signer.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def decode_jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT: for assertions in tests."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


class TokenServer:
    """A token server on a free port of ``host`` (``127.0.0.1``), serving from a background thread.

    ``users`` maps user names to passwords; when given, requests without valid basic
    credentials get 401 (unless ``anonymous`` is set, then they get a token for ``sub`` "").
    ``expires_in`` may be changed between requests.
    """

    def __init__(
        self,
        signer: TokenSigner,
        *,
        service: str,
        issuer: str,
        users: Mapping[str, str] | None = None,
        anonymous: bool = False,
        expires_in: int = 300,
        policy: Policy = grant_all,
        tls: tuple[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.signer = signer
        self.service = service
        self.issuer = issuer
        self.users = dict(users or {})
        self.anonymous = anonymous
        self.expires_in = expires_in
        self.policy = policy
        self.tls = tls
        #: Where it listens, as it appears in its URL (a name that resolves to this machine works).
        self.host = host
        #: (scopes as sent, user or None) of every token issued, in order.
        self.requests: list[tuple[tuple[str, ...], str | None]] = []
        #: Same, for requests answered 401.
        self.refused: list[tuple[tuple[str, ...], str | None]] = []
        #: Every token value handed out, in order: tests grep outputs for them.
        self.issued: list[str] = []
        self._queued: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("token server not started")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self._server.server_address[1]}"

    @property
    def realm(self) -> str:
        """The URL to put in the registry's ``auth.token.realm``."""
        return self.url + "/token"

    def start(self) -> Self:
        server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
        server.daemon_threads = True
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="token-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget recorded requests and queued answers (session fixtures share one server)."""
        with self._lock:
            self.requests.clear()
            self.refused.clear()
            self.issued.clear()
            self._queued.clear()

    def queue_response(self, status: int, body: bytes = b"") -> None:
        """Answer the next token request with this instead of a token (to test failures)."""
        with self._lock:
            self._queued.append((status, body))

    # -- request handling (called from server threads) ----------------------------------------

    def _authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(allowed, user) for an Authorization header."""
        if header is None or not header.lower().startswith("basic "):
            return (not self.users or self.anonymous), None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        if self.users and self.users.get(user) != password:
            return False, user
        return True, user

    def _issue(self, scopes: tuple[str, ...], user: str | None) -> dict[str, Any]:
        now = int(time.time())
        access = []
        for text in scopes:
            scope = Scope.parse(text)
            granted = set(self.policy(user, scope))
            actions = [a for a in scope.actions if a in granted]
            access.append({"type": scope.type, "name": scope.name, "actions": actions})
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        token = sign_jwt(claims, self.signer)
        issued = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": issued,
        }

    def _handle(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(path)
        if url.path != "/token":
            return 404, {}, b"not found\n"
        query = parse_qs(url.query)
        # One `scope` parameter per scope; some clients join several with spaces in one.
        scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
        allowed, user = self._authenticate(authorization)
        with self._lock:
            if self._queued:
                status, body = self._queued.pop(0)
                return status, {"Content-Type": "application/json"}, body
            if not allowed:
                self.refused.append((scopes, user))
                return (
                    401,
                    {"WWW-Authenticate": 'Basic realm="regload-token"'},
                    b'{"details":"bad credentials"}',
                )
        if query.get("service", [self.service])[0] != self.service:
            return 400, {}, b'{"details":"unknown service"}'
        try:
            answer = self._issue(scopes, user)
        except ValueError as exc:
            return 400, {}, json.dumps({"details": str(exc)}).encode()
        with self._lock:
            self.requests.append((scopes, user))
            self.issued.append(answer["token"])
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as registry clients expect

        def do_GET(self) -> None:
            status, headers, body = server._handle(self.path, self.headers.get("Authorization"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # quiet: pytest shows failures, and the requests are recorded anyway

    return Handler
