import json

import pytest

from regload.auth import Authenticator, Credentials, TokenCache, parse_challenges
from regload.errors import AuthError, PlainHTTPRefused, RegistryError
from regload.http import Headers, Request

pytestmark = pytest.mark.unit


def test_bearer_challenge_with_commas_in_quotes():
    [c] = parse_challenges(
        ['Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"']
    )
    assert c.scheme == "bearer"
    assert c.get("realm") == "https://auth.example/token"
    assert c.get("service") == "registry.example"
    assert c.get("scope") == "repository:a/b:pull,push"


def test_several_challenges_and_escapes():
    cs = parse_challenges(['Basic realm="a \\"quoted\\" realm", Bearer realm="r",error="invalid_token"', "Negotiate"])
    assert [c.scheme for c in cs] == ["basic", "bearer", "negotiate"]
    assert cs[0].get("realm") == 'a "quoted" realm'
    assert cs[1].get("error") == "invalid_token"


@pytest.mark.parametrize(
    ("text", "readable"),
    [
        ('Bearer realm="unterminated', []),  # the challenge cut by the open quote is dropped
        ("Bearer ,,, realm", [("bearer", ()), ("realm", ())]),  # a bare token is another scheme
        ("=", []),
        ('"', []),
        ("Bearer realm=", [("bearer", (("realm", ""),))]),
        ("", []),
    ],
)
def test_malformed_challenges_do_not_raise(text, readable):
    """A broken field value yields what could be read of it and never hides the challenges
    around it: before it in the same value, or in the other ``WWW-Authenticate`` fields."""
    basic = ("basic", (("realm", "a"),))
    challenges = parse_challenges(['Basic realm="a", ' + text, text, 'Basic realm="a"'])
    assert [(c.scheme, c.params) for c in challenges] == [basic, *readable, *readable, basic]


class FakeResponse:
    def __init__(self, status, body=b"", headers=()):
        self.status = status
        self.headers = Headers(headers)
        self._body = body
        self.url = ""
        self.http_version = "HTTP/1.1"

    def read(self):
        return self._body

    def iter_bytes(self, chunk_size=1 << 20):
        yield self._body

    def close(self):
        pass


CHALLENGE = ("WWW-Authenticate", 'Bearer realm="https://auth/token",service="reg",scope="repository:app:pull"')


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def token_server(sent, expires_in=60):
    def send(request: Request):
        sent.append(request)
        return FakeResponse(200, json.dumps({"token": f"T{len(sent)}", "expires_in": expires_in}).encode())

    return send


def test_token_flow_scopes_cache_and_renewal():
    clock = Clock()
    auth = Authenticator(Credentials("u", "secret"), TokenCache(clock))
    sent: list[Request] = []
    send = token_server(sent)
    scopes = ("repository:app:pull",)
    assert auth.handle_challenge(FakeResponse(401, headers=[CHALLENGE]), scopes, send, "GET x")
    [token_request] = sent
    assert token_request.name == "GET token"
    assert token_request.url == "https://auth/token?service=reg&scope=repository%3Aapp%3Apull"
    assert token_request.header("Authorization").startswith("Basic ")
    req = auth.authorize(Request("GET", "http://reg/v2/app/manifests/1", "n"), scopes, send)
    assert req.header("Authorization") == "Bearer T1"
    assert len(sent) == 1  # cached
    clock.now += 50  # within the renewal margin (10 % of 60 s, at least 5 s... 10 s left here)
    assert auth.authorize(req, scopes, send).header("Authorization") == "Bearer T1"
    clock.now += 6  # 4 s left: renew before expiry
    assert auth.authorize(req, scopes, send).header("Authorization") == "Bearer T2"
    assert len(sent) == 2


def test_push_scope_merges_with_challenge():
    auth = Authenticator(None, TokenCache())
    sent: list[Request] = []
    auth.handle_challenge(
        FakeResponse(401, headers=[CHALLENGE]),
        ("repository:app:pull,push", "repository:base:pull"),
        token_server(sent),
        "x",
    )
    assert sent[0].url.endswith("scope=repository%3Aapp%3Apull%2Cpush&scope=repository%3Abase%3Apull")
    assert sent[0].header("Authorization") is None


def test_disabled_cache_fetches_every_time():
    auth = Authenticator(None, TokenCache(enabled=False))
    sent: list[Request] = []
    send = token_server(sent)
    auth.handle_challenge(FakeResponse(401, headers=[CHALLENGE]), ("repository:app:pull",), send, "x")
    for _ in range(3):
        auth.authorize(Request("GET", "u", "n"), ("repository:app:pull",), send)
    assert len(sent) == 4


@pytest.mark.parametrize(
    "status, body, message",
    [
        (401, b"", "authentication refused by https://auth/token"),
        (500, b"oops", "token server failed"),
        (200, b"not json", "not a token"),
        (200, b'{"expires_in": 5}', "no token"),
        (200, b'{"token": "' + b"t" * (2 << 20) + b'"}', "answer is larger than 1 MiB"),
    ],
)
def test_token_server_failures(status, body, message):
    auth = Authenticator(Credentials("u", "hunter2"))

    def send(request):
        return FakeResponse(status, body)

    with pytest.raises(AuthError) as e:
        auth.handle_challenge(FakeResponse(401, headers=[CHALLENGE]), (), send, "x")
    assert message in str(e.value)
    assert "hunter2" not in str(e.value)


def test_basic_without_credentials_is_a_clear_error():
    with pytest.raises(AuthError, match="requires a username") as e:
        Authenticator().handle_challenge(
            FakeResponse(401, headers=[("WWW-Authenticate", 'Basic realm="r"')]), (), None, "GET /v2/"
        )
    assert e.value.credentials_missing and e.value.refused


def test_a_refusal_names_the_realm_without_its_query_or_user_information():
    challenge = ("WWW-Authenticate", 'Bearer realm="https://bot:pw@auth.example:8443/v2/token?account=x",service="r"')
    auth = Authenticator(Credentials("u", "hunter2"))
    with pytest.raises(AuthError) as e:
        auth.handle_challenge(FakeResponse(401, headers=[challenge]), (), lambda request: FakeResponse(403), "x")
    assert e.value.reason == "authentication refused by https://auth.example:8443/v2/token"
    assert e.value.refused and not e.value.credentials_missing
    assert "pw@" not in str(e.value) and "account" not in str(e.value)


def test_credentials_repr_hides_password():
    assert "hunter2" not in repr(Credentials("u", "hunter2"))


def test_a_wider_token_serves_narrower_scopes():
    auth = Authenticator(None, TokenCache())
    sent: list[Request] = []
    send = token_server(sent)
    auth.handle_challenge(
        FakeResponse(401, headers=[CHALLENGE]), ("repository:app:pull,push", "repository:base:pull"), send, "x"
    )
    for scopes in (("repository:app:pull",), ("repository:app:push,pull",), ("repository:base:pull",)):
        assert auth.authorize(Request("GET", "u", "n"), scopes, send).header("Authorization") == "Bearer T1"
    auth.authorize(Request("GET", "u", "n"), ("repository:base:push",), send)
    assert len(sent) == 2


@pytest.mark.parametrize(
    ("realm", "credentials", "plain_http", "refused"),
    [
        ("http://auth.example/token", True, False, True),
        ("http://auth.example:8080/token", True, False, True),
        ("http://user@auth.example/token", True, False, True),
        ("http://127.0.0.1:5001/token", True, False, False),  # loopback: never on the network
        ("http://localhost/token", True, False, False),
        ("http://[::1]:5001/token", True, False, False),
        ("https://auth.example/token", True, False, False),
        ("http://auth.example/token", False, False, False),  # anonymous: nothing secret to send
        ("http://auth.example/token", True, True, False),  # the user asked for plain HTTP
    ],
)
def test_credentials_never_go_in_clear_to_a_remote_token_server(realm, credentials, plain_http, refused):
    auth = Authenticator(Credentials("u", "hunter2") if credentials else None, plain_http=plain_http)
    sent: list[Request] = []
    challenge = FakeResponse(401, headers=[("WWW-Authenticate", f'Bearer realm="{realm}",service="reg"')])
    if not refused:
        assert auth.handle_challenge(challenge, (), token_server(sent), "x")
        assert len(sent) == 1
        return
    with pytest.raises(PlainHTTPRefused) as e:
        auth.handle_challenge(challenge, (), token_server(sent), "x")
    assert sent == []  # refused before anything was sent
    # A local refusal (the user's setting forbids it), not a registry's answer: no HTTP status.
    assert not isinstance(e.value, RegistryError) and e.value.exit_code == 1
    message = str(e.value)
    assert message.startswith("GET token: the token server http://auth.example") and "plain HTTP" in message
    assert "hunter2" not in message and "user@" not in message
    # A token renewal after the ping (learn, then authorize) is refused the same way.
    auth = Authenticator(Credentials("u", "hunter2"), plain_http=plain_http)
    auth.learn(challenge)
    with pytest.raises(PlainHTTPRefused):
        auth.authorize(Request("GET", "https://reg/v2/", "GET /v2/"), ("repository:app:pull",), token_server(sent))
    assert sent == []
