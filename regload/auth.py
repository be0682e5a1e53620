"""Registry authentication: ``WWW-Authenticate`` challenges, basic credentials, bearer tokens.

The flow (distribution docs/spec/auth/token.md): a request answered 401 carries a challenge
``Bearer realm="…",service="…",scope="…"``; the client GETs the realm with ``service`` and one
``scope`` parameter per scope (basic credentials when it has them), receives ``token`` or
``access_token`` and ``expires_in`` (default 60 s), and retries with ``Authorization: Bearer``.
Tokens are cached by (realm, service, scopes) and renewed shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from threading import Lock
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from .errors import AuthError, PlainHTTPRefused
from .http import Request, Response, add_query, read_bounded
from .reference import is_loopback

TOKEN_ENDPOINT = "GET token"
DEFAULT_TOKEN_LIFETIME = 60.0
MAX_TOKEN_RESPONSE = 1 << 20


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        key = key.lower()
        for k, v in self.params:
            if k == key:
                return v
        return None


class _Tokens:
    """A tiny tokenizer for RFC 9110 §11.6.1 challenge lists: tokens, quoted strings, '=' and ','."""

    _TCHAR = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/:")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def token(self) -> str:
        self.skip_space()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in self._TCHAR:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        # Called on '"': read to the closing quote, honouring backslash escapes.
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "\\" and self.pos < len(self.text):
                out.append(self.text[self.pos])
                self.pos += 1
            elif c == '"':
                return "".join(out)
            else:
                out.append(c)
        raise ValueError("unterminated quoted string")

    def value(self) -> str:
        return self.quoted() if self.peek() == '"' else self.token()

    def at_param(self) -> bool:
        """True when the next item is ``key=`` (a parameter), not a new challenge's scheme."""
        save = self.pos
        key = self.token()
        is_param = bool(key) and self.peek() == "=" and self.text[self.pos + 1 : self.pos + 2] != "="
        self.pos = save
        return is_param


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse every challenge of every ``WWW-Authenticate`` field value. Malformed text yields
    what could be read before it (a registry's broken header must not crash a load test)."""
    challenges: list[Challenge] = []
    for value in values:
        tok = _Tokens(value)
        try:
            while tok.peek():
                if tok.peek() == ",":
                    tok.pos += 1
                    continue
                scheme = tok.token()
                if not scheme:
                    break
                params: list[tuple[str, str]] = []
                while tok.peek():
                    if tok.peek() == ",":
                        tok.pos += 1
                        continue
                    if not tok.at_param():
                        break
                    key = tok.token().lower()
                    tok.skip_space()  # optional whitespace before '=' (RFC 9110 §11.2: BWS)
                    tok.pos += 1  # '='
                    params.append((key, tok.value()))
                    if tok.peek() not in (",", ""):
                        break
                challenges.append(Challenge(scheme.lower(), tuple(params)))
        except ValueError:
            continue
    return challenges


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(username={self.username!r}, password=***)"


@dataclass(frozen=True, slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # monotonic clock
    lifetime: float


class TokenCache:
    """Bearer tokens by (realm, service, scopes). Thread/greenlet safe enough: a lock around the
    dict; two callers racing for the same missing token may both fetch one (both are counted)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, enabled: bool = True) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], Token] = {}
        self._lock = Lock()
        self.clock = clock
        self.enabled = enabled

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> Token | None:
        """A fresh token for exactly these scopes, or else one whose scopes cover them (a push
        token for ``pull,push`` serves a HEAD that asks for ``pull``)."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and self._fresh(token):
                return token
            realm, service, wanted = key
            for (r, s, have), other in self._tokens.items():
                if r == realm and s == service and _covers(have, wanted) and self._fresh(other):
                    return other
        return None

    def _fresh(self, token: Token) -> bool:
        # Renew before expiry: with 10 % of the lifetime (at least 5 s) left, fetch a new one so a
        # request never leaves with a token that expires in flight.
        margin = max(5.0, token.lifetime * 0.1)
        return self.clock() < token.expires_at - margin

    def put(self, key: tuple[str, str, tuple[str, ...]], token: Token) -> None:
        if self.enabled:
            with self._lock:
                self._tokens[key] = token

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


Send = Callable[[Request], Response]


@runtime_checkable
class Reportable(Protocol):
    """A response that can be reported as failed (``client.ObservedResponse``)."""

    def fail(self, error: BaseException) -> None: ...


class Authenticator:
    """Adds authorization to requests for one registry and answers its challenges.

    ``authorize(request, scopes)`` returns the request with the best ``Authorization`` known;
    ``handle_challenge(response, scopes, send)`` reads a 401 and obtains what is needed (a
    token through ``send``, so the token request is visible in stats as ``GET token``) and says
    whether a retry can succeed.
    """

    def __init__(
        self, credentials: Credentials | None = None, cache: TokenCache | None = None, *, plain_http: bool = False
    ) -> None:
        self.credentials = credentials
        self.cache = cache if cache is not None else TokenCache()
        # The user asked for plain HTTP (--plain-http, an http:// registry URL): only then may the
        # credentials go in clear to a token realm that is not on loopback.
        self.plain_http = plain_http
        self._scheme: str | None = None  # "basic" or "bearer" once the registry said so
        self._realm: str | None = None
        self._service: str = ""

    @property
    def scheme(self) -> str | None:
        return self._scheme

    def authorize(self, request: Request, scopes: tuple[str, ...], send: Send) -> Request:
        if self._scheme == "basic" and self.credentials:
            return request.with_headers([("Authorization", self.credentials.basic_header())])
        if self._scheme == "bearer" and self._realm is not None:
            token = self._token(_merge_scopes(scopes, ()), send)
            return request.with_headers([("Authorization", f"Bearer {token.value}")])
        return request

    def prepare(self, scopes: tuple[str, ...], send: Send) -> None:
        """Fetch the token for ``scopes`` now if the registry wants one: before concurrent
        requests start, so they share one token instead of each fetching their own."""
        if self._scheme == "bearer" and self._realm is not None:
            self._token(_merge_scopes(scopes, ()), send)

    def learn(self, response: Response) -> None:
        """Record the scheme and realm of a 401 without fetching anything (after the ping)."""
        challenges = parse_challenges(response.headers.get_all("WWW-Authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.get("realm")), None)
        if bearer is not None:
            self._scheme, self._realm = "bearer", bearer.get("realm")
            self._service = bearer.get("service") or ""
        elif any(c.scheme == "basic" for c in challenges):
            self._scheme = "basic"

    def handle_challenge(
        self, response: Response, scopes: tuple[str, ...], send: Send, endpoint: str, *, sent_credentials: bool = True
    ) -> bool:
        """Learn from a 401. True when a retry with new authorization may succeed.
        ``sent_credentials``: the request that got the 401 carried an ``Authorization``."""
        challenges = parse_challenges(response.headers.get_all("WWW-Authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None and bearer.get("realm"):
            self._scheme, self._realm = "bearer", bearer.get("realm")
            self._service = bearer.get("service") or ""
            # Ask for what the request needs plus what the challenge names (it may add scopes).
            wanted = _merge_scopes(scopes, (bearer.get("scope") or "").split())
            token = self._fetch_token(wanted, send)
            self.cache.put(self._key(_merge_scopes(scopes, ())), token)
            return True
        if basic is not None:
            if self.credentials is None:
                raise AuthError(
                    endpoint,
                    401,
                    "UNAUTHORIZED",
                    "the registry requires a username and password",
                    reason="no credentials given",
                    credentials_missing=True,
                )
            if self._scheme == "basic" and sent_credentials:
                return False  # the credentials we sent were refused
            # Else the first challenge, or one met by a request that left before a concurrent
            # one learnt the scheme: it has not tried the credentials yet.
            self._scheme = "basic"
            return True
        return False

    def _key(self, scopes: tuple[str, ...]) -> tuple[str, str, tuple[str, ...]]:
        assert self._realm is not None
        return (self._realm, self._service, scopes)

    def _token(self, scopes: tuple[str, ...], send: Send) -> Token:
        token = self.cache.get(self._key(scopes))
        return token if token is not None else self._fetch_token(scopes, send)

    def _fetch_token(self, scopes: tuple[str, ...], send: Send) -> Token:
        assert self._realm is not None
        params = [("service", self._service)] if self._service else []
        params += [("scope", s) for s in scopes]
        headers: list[tuple[str, str]] = [("Accept", "application/json")]
        if self.credentials:
            _refuse_cleartext_realm(self._realm, self.plain_http)
            headers.append(("Authorization", self.credentials.basic_header()))
        request = Request("GET", add_query(self._realm, params), TOKEN_ENDPOINT, tuple(headers))
        response = send(request)
        try:
            status = response.status
            body = read_bounded(response, MAX_TOKEN_RESPONSE)
            token = self._parse_token(status, body)
        except AuthError as e:
            if isinstance(response, Reportable):
                response.fail(e)  # the token request is counted as failed, with its cause
            raise
        finally:
            response.close()
        self.cache.put(self._key(scopes), token)
        return token

    def _parse_token(self, status: int, body: bytes) -> Token:
        if status in (401, 403):
            code = "DENIED" if status == 403 else "UNAUTHORIZED"
            if self.credentials is None:
                why = "the token server requires credentials"
                raise AuthError(
                    TOKEN_ENDPOINT, status, code, why, reason="no credentials given", credentials_missing=True
                )
            why = f"authentication refused by {shown_url(self._realm or '')}"
            raise AuthError(TOKEN_ENDPOINT, status, code, why, reason=why)
        if status != 200:
            raise AuthError(TOKEN_ENDPOINT, status, None, "the token server failed", reason="token server failed")
        if len(body) > MAX_TOKEN_RESPONSE:
            why = f"the token server's answer is larger than {MAX_TOKEN_RESPONSE >> 20} MiB"
            raise AuthError(TOKEN_ENDPOINT, status, None, why, reason="token answer too large")
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError, RecursionError):
            why = "the token server answered something that is not a token"
            raise AuthError(TOKEN_ENDPOINT, status, None, why, reason="not a token") from None
        if not isinstance(value, str) or not value:
            why = "the token server answered no token"
            raise AuthError(TOKEN_ENDPOINT, status, None, why, reason="not a token")
        # docs/spec/auth/token.md: a lifetime under 60 s is treated as 60 s by docker; we keep
        # the server's value (a test server may use short lifetimes on purpose).
        lifetime = max(lifetime, 1.0)
        return Token(value, self.cache.clock() + lifetime, lifetime)


def shown_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: what may be shown of a token realm (its query and
    any user information left out)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _refuse_cleartext_realm(realm: str, plain_http: bool) -> None:
    """Basic credentials go to the token realm: never in clear across the network unless the user
    asked for plain HTTP (a registry on HTTPS naming an http:// realm elsewhere would leak them)."""
    parts = urlsplit(realm)
    if parts.scheme == "http" and not plain_http and not is_loopback(parts.hostname or ""):
        server = parts.netloc.rpartition("@")[2]
        raise PlainHTTPRefused(
            TOKEN_ENDPOINT,
            f"the token server http://{server} is plain HTTP and not loopback: credentials are not"
            " sent in clear unless plain HTTP was asked for",
        )


def _merge_scopes(wanted: Iterable[str], offered: Iterable[str]) -> tuple[str, ...]:
    """Union of scopes, one per resource with the union of actions, in a stable order."""
    actions: dict[str, list[str]] = {}
    for scope in (*wanted, *offered):
        resource, _, acts = scope.rpartition(":")
        if not resource:
            continue
        have = actions.setdefault(resource, [])
        for a in acts.split(","):
            if a and a not in have:
                have.append(a)
    return tuple(f"{r}:{','.join(sorted(a))}" for r, a in sorted(actions.items()))


def _covers(have: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """True when the scopes ``have`` grant every action of every scope ``wanted``."""
    granted: dict[str, set[str]] = {}
    for scope in have:
        resource, _, acts = scope.rpartition(":")
        granted.setdefault(resource, set()).update(acts.split(","))
    for scope in wanted:
        resource, _, acts = scope.rpartition(":")
        if not set(acts.split(",")) <= granted.get(resource, set()):
            return False
    return True


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"
