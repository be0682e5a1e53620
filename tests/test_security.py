"""End to end: where credentials may go, what an untrusted certificate says, and that no password
or token shows in any output of the command line or of Locust's web UI.

Against real ``docker-registry`` processes: the session registries of ``conftest.py``, and a few
started here for one situation each (upload ``Location`` headers on another host name, a token
realm on plain HTTP, a self-signed certificate). "Another host" is ``localhost`` for a registry
reached as ``127.0.0.1``. A host that is "not loopback" is this machine's own host name: regload
cannot tell it from a remote host, yet it resolves to this machine, so nothing leaves it. The
redirect test puts a small HTTPS front (a test server) before a plain-HTTP blob store.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from regload.local_registry import Htpasswd, LocalRegistry, RegistryConfig, Token, free_port
from regload.reference import is_loopback
from tests.support.cli import Run, assert_clean_failure, regload
from tests.support.htpasswd import write_htpasswd
from tests.support.images import OciImage
from tests.support.locust_run import SMALL_IMAGES, Locust, assert_secret_absent, headless, run_locust
from tests.support.pki import make_server_pki, make_token_signer
from tests.support.registries import ISSUER, PASSWORD, SERVICE, USERNAME, RegistryFixture
from tests.support.token_server import TokenServer

WRONG_PASSWORD = "wrong-Secret-5150x"
SYNTHETIC = "synthetic:layers=1,size=8KiB,seed=21"
TLS_FAILURE = "TLS error: certificate verify failed"

Reply = tuple[int, list[tuple[str, str]], bytes]
Route = Callable[[str, str, str | None], Reply]


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def token_forms(tokens: list[str]) -> list[str]:
    """Each token, and each of its three JWT parts (a message cut short would hold one)."""
    return [form for token in tokens for form in (token, *token.split("."))]


def this_machine() -> str:
    """A host name regload takes for a remote host (not ``localhost``, not a loopback address)
    that resolves to an address of this machine, where a test server can listen."""
    name = socket.gethostname()
    try:
        address = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        with socket.socket() as probe:
            probe.bind((address, 0))
    except OSError as e:
        pytest.fail(f"this machine's host name {name!r} does not resolve to an address of its own: {e}")
    assert not is_loopback(name), name
    return name


class Site:
    """A small HTTP(S) server on ``host`` answering with ``route(method, path, authorization)``
    and recording ``(method, path, authorization)`` of every request."""

    def __init__(self, route: Route, *, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                authorization = self.headers.get("Authorization")
                site.requests.append((self.command, self.path, authorization))
                status, headers, body = route(self.command, self.path, authorization)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def spec_error(status: int, code: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
    return status, [("Content-Type", "application/json"), *(headers or [])], body


def credentials_args(password: str = PASSWORD) -> tuple[list[str], str]:
    return ["-u", USERNAME, "--password-stdin"], password


# -- a) Authorization stays on the registry's own origin ----------------------------------------------


@pytest.mark.registry
def test_an_upload_location_on_another_host_name_gets_no_credentials(tmp_path):
    """distribution's ``http.host`` makes its upload Locations name ``localhost`` while the client
    talks to ``127.0.0.1``: the same registry under another origin. The client does not send the
    credentials there (docker does not either), so the registry refuses the PATCH; under the name
    its Locations use, the same push succeeds."""
    port = free_port()
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USERNAME: PASSWORD})
    config = RegistryConfig(auth=Htpasswd(htpasswd), public_url=f"http://localhost:{port}")
    registry = LocalRegistry(config=config, port=port).start()
    try:
        args, password = credentials_args()
        elsewhere = regload("push", SYNTHETIC, f"127.0.0.1:{port}/e2e/elsewhere:v1", *args, stdin=password)
        assert_clean_failure(elsewhere, 1, "PATCH /v2/<name>/blobs/uploads/<session>: HTTP 401 UNAUTHORIZED")
        same = regload("push", SYNTHETIC, f"localhost:{port}/e2e/elsewhere:v1", *args, stdin=password)
        assert same.code == 0, same.output
    finally:
        registry.stop()
    assert_secret_absent([PASSWORD, basic(USERNAME, PASSWORD)], [("push", elsewhere.output), ("push", same.output)])


# -- c) never in clear to a host that is not loopback, unless plain HTTP was asked for ---------------


@pytest.mark.registry
def test_an_upload_location_from_https_to_plain_http_gets_no_credentials(tmp_path):
    """A registry on HTTPS whose upload Locations send the client to plain HTTP on a host that is
    not loopback: the PATCH goes there without Authorization."""
    recorder = Site(lambda method, path, auth: spec_error(401, "UNAUTHORIZED"), host=this_machine())
    pki = make_server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USERNAME: PASSWORD})
    config = RegistryConfig(auth=Htpasswd(htpasswd), tls=(pki.server_cert, pki.server_key), public_url=recorder.url)
    registry = LocalRegistry(config=config).start()
    try:
        args, password = credentials_args()
        connection = ["--registry", registry.url, "--registry-ca-cert", str(pki.ca_cert), *args]
        run = regload("push", SYNTHETIC, "e2e/downgrade:v1", *connection, stdin=password)
    finally:
        registry.stop()
        recorder.stop()
    assert_clean_failure(run, 1, "PATCH /v2/<name>/blobs/uploads/<session>: HTTP 401")
    assert [method for method, _, _ in recorder.requests] == ["PATCH"], recorder.requests
    assert all(auth is None for _, _, auth in recorder.requests), recorder.requests
    assert_secret_absent([PASSWORD, basic(USERNAME, PASSWORD)], [("push", run.output)])


@pytest.mark.flows
def test_a_redirect_from_https_to_plain_http_gets_no_credentials(tmp_path, tiny_image: OciImage):
    """Blob GETs answered 307 to a plain-HTTP store on a host that is not loopback (the shape of a
    registry handing blobs to object storage): the store gets no Authorization, the pull works."""
    blobs = {d.digest: tiny_image.blob(d) for d in (tiny_image.config, *tiny_image.layers)}
    store = Site(
        lambda method, path, auth: (200, [], blobs[path.rsplit("/", 1)[1]]) if method == "GET" else (405, [], b""),
        host=this_machine(),
    )
    manifest = tiny_image.blob(tiny_image.manifest)
    expected = "Basic " + basic(USERNAME, PASSWORD)

    def front_route(method: str, path: str, auth: str | None) -> Reply:
        if auth != expected:
            return spec_error(401, "UNAUTHORIZED", [("WWW-Authenticate", 'Basic realm="front"')])
        if path == "/v2/":
            return 200, [("Content-Type", "application/json")], b"{}"
        if path == "/v2/app/manifests/v1":
            headers = [("Content-Type", tiny_image.manifest.media_type)]
            return 200, [*headers, ("Docker-Content-Digest", tiny_image.manifest.digest)], manifest
        if path.startswith("/v2/app/blobs/"):
            return 307, [("Location", f"{store.url}/storage/{path.rsplit('/', 1)[1]}")], b""
        return spec_error(404, "NAME_UNKNOWN")

    pki = make_server_pki(tmp_path / "pki")
    front = Site(front_route, tls=(pki.server_cert, pki.server_key))
    try:
        args, password = credentials_args()
        run = regload(
            "pull",
            "app:v1",
            "--registry",
            front.url,
            "--registry-ca-cert",
            str(pki.ca_cert),
            "--json",
            *args,
            stdin=password,
        )
    finally:
        front.stop()
        store.stop()
    assert run.code == 0, run.output
    assert run.json["manifest_digest"] == tiny_image.manifest.digest
    assert sorted(path for _, path, _ in store.requests) == sorted(f"/storage/{d}" for d in blobs)
    assert all(auth is None for _, _, auth in store.requests), store.requests
    assert [auth == expected for _, path, auth in front.requests if path.startswith("/v2/app/blobs/")] == [True] * 3
    assert_secret_absent([PASSWORD, basic(USERNAME, PASSWORD)], [("pull", run.output)])


@pytest.fixture(scope="module")
def remote_realm(tmp_path_factory) -> Iterator[tuple[TokenServer, LocalRegistry, LocalRegistry, Path]]:
    """A token server on this machine's host name (plain HTTP, "not loopback"), and two registries
    sending clients there: one on HTTPS, one on plain HTTP. Yields (server, https registry, http
    registry, CA file of the HTTPS one)."""
    workdir = tmp_path_factory.mktemp("remote-realm")
    signer = make_token_signer(workdir / "signer")
    server = TokenServer(signer, service=SERVICE, issuer=ISSUER, users={USERNAME: PASSWORD}, host=this_machine())
    server.start()
    auth = Token(realm=server.realm, service=SERVICE, issuer=ISSUER, rootcertbundle=signer.cert)
    pki = make_server_pki(workdir / "pki")
    started: list[LocalRegistry] = []
    try:
        started.append(LocalRegistry(auth=auth, tls=(pki.server_cert, pki.server_key)).start())
        started.append(LocalRegistry(auth=auth).start())
        yield server, started[0], started[1], pki.ca_cert
    finally:
        for registry in started:
            registry.stop()
        server.stop()


@pytest.mark.registry
def test_credentials_are_not_sent_to_a_plain_http_realm_for_an_https_registry(remote_realm):
    server, https_registry, _, ca_cert = remote_realm
    args, password = credentials_args()
    before = (len(server.requests), len(server.refused))
    run = regload(
        "pull",
        "e2e/realm:v1",
        "--registry",
        https_registry.url,
        "--registry-ca-cert",
        str(ca_cert),
        *args,
        stdin=password,
    )
    assert_clean_failure(run, 1, "GET token: the token server http://", "plain HTTP")
    assert (len(server.requests), len(server.refused)) == before  # nothing reached it
    assert_secret_absent([PASSWORD, basic(USERNAME, PASSWORD)], [("pull", run.output)])


@pytest.mark.registry
def test_a_plain_http_realm_gets_the_credentials_only_when_plain_http_was_asked_for(remote_realm):
    """A loopback registry is plain HTTP by default: that is not asking for plain HTTP elsewhere.
    ``--plain-http`` or an ``http://`` base URL is, and then the token flow goes through (the
    image is missing: the registry answers 404 once the token is accepted)."""
    server, _, http_registry, _ = remote_realm
    args, password = credentials_args()
    before = len(server.requests)
    default = regload("inspect", f"{http_registry.host}/e2e/realm:v1", *args, stdin=password)
    assert_clean_failure(default, 1, "GET token", "plain HTTP")
    assert len(server.requests) == before
    asked = [
        regload("inspect", "--plain-http", f"{http_registry.host}/e2e/realm:v1", *args, stdin=password),
        regload("inspect", "--registry", http_registry.url, "e2e/realm:v1", *args, stdin=password),
    ]
    for run in asked:
        assert_clean_failure(run, 1, "HTTP 404 MANIFEST_UNKNOWN")
    assert [user for _, user in server.requests[before:]] == [USERNAME, USERNAME]
    texts = [("inspect", run.output) for run in (default, *asked)]
    assert_secret_absent([PASSWORD, basic(USERNAME, PASSWORD), *token_forms(server.issued)], texts)


# -- d) TLS: verified by default, and a failure says how to trust the registry ------------------------


@pytest.mark.registry
@pytest.mark.parametrize(
    "command",
    [
        ["pull", "e2e/none:v1"],
        ["pull", "e2e/none:v1", "--registry-http2"],
        ["push", SYNTHETIC, "e2e/none:v1"],
        ["tags", "e2e/none"],
        ["inspect", "e2e/none:v1", "--json"],
    ],
)
def test_an_untrusted_certificate_is_one_line_naming_ca_cert_and_insecure(registry_tls, command):
    run = regload(*command, "--registry", registry_tls.url)
    assert_clean_failure(run, 1, "TLS certificate verification failed", "--registry-ca-cert", "--registry-insecure")
    assert run.stdout == ""


@pytest.mark.registry
def test_verify_of_an_untrusted_registry_names_ca_cert_and_insecure(registry_tls, tmp_path):
    audit = tmp_path / "audit.jsonl"
    entry = {"reference": f"{registry_tls.host}/e2e/none:v1", "digest": "sha256:" + "ab" * 32}
    entry |= {"registry": registry_tls.url, "repository": "e2e/none", "tag": "v1"}
    audit.write_text(json.dumps(entry) + "\n")
    run = regload("verify", str(audit))
    assert_clean_failure(run, 1, "TLS certificate verification failed", "--registry-ca-cert", "--registry-insecure")


@pytest.mark.registry
def test_a_self_signed_registry_fails_the_same_way_and_insecure_reaches_it(tmp_path):
    signer = make_token_signer(tmp_path / "self-signed")  # a self-signed certificate and its key
    registry = LocalRegistry(tls=(signer.cert, signer.key)).start()
    try:
        run = regload("inspect", "e2e/none:v1", "--registry", registry.url)
        insecure = regload("inspect", "e2e/none:v1", "--registry", registry.url, "--registry-insecure")
    finally:
        registry.stop()
    assert_clean_failure(run, 1, "self-signed certificate", "--registry-ca-cert", "--registry-insecure")
    assert_clean_failure(insecure, 1, "HTTP 404 MANIFEST_UNKNOWN")
    assert "--registry-insecure" not in insecure.stderr  # the hint is for certificate failures only


@pytest.mark.locust_run
def test_locust_against_an_untrusted_registry_fails_with_a_short_cause_and_one_hint(registry_tls, tmp_path):
    args = ["PullUser", "PushUser"]
    result = run_locust(
        headless(registry_tls.url, tmp_path / "untrusted", *args, users=3, run_time="3s"),
        tmp_path,
        name="untrusted",
        timeout=60,
    )
    assert result.code == 1, result.output[-6000:]
    assert "Traceback" not in result.output, result.output[-6000:]
    requests = [r for r in result.failures() if r["Method"] not in ("PULL", "PUSH")]
    assert requests and {r["Error"] for r in requests} == {TLS_FAILURE}, result.failures()
    pushes = [r for r in result.failures() if r["Method"] == "PUSH"]
    assert pushes and {r["Error"] for r in pushes} == {TLS_FAILURE}, result.failures()
    hints = [line for line in result.stderr.splitlines() if "--registry-ca-cert" in line]
    assert len(hints) == 1 and "--registry-insecure" in hints[0], result.stderr[-4000:]

    trusted = run_locust(
        headless(registry_tls.url, tmp_path / "trusted", "--registry-ca-cert", str(registry_tls.ca_cert), *args),
        tmp_path,
        name="trusted",
        timeout=60,
    )
    assert trusted.code == 0 and trusted.total()["Failure Count"] == "0", trusted.output[-6000:]
    assert int(trusted.row("PUSH", "image")["Request Count"]) > 0


# -- e) no secret in any output ---------------------------------------------------------------------------


COMMANDS = ("push", "pull", "tags", "inspect")


def cli_runs(registry: RegistryFixture, repository: str, password: str) -> list[tuple[str, Run]]:
    """Each command, in human and --json mode, with the credentials given through stdin."""
    base = ["--registry", registry.url, "-u", USERNAME, "--password-stdin"]
    operands = {
        "push": [SYNTHETIC, f"{repository}:v1"],
        "pull": [f"{repository}:v1"],
        "tags": [repository],
        "inspect": [f"{repository}:v1"],
    }
    runs = []
    for command in COMMANDS:
        for mode in ([], ["--json"]):
            run = regload(command, *operands[command], *base, *mode, stdin=password)
            runs.append((f"{command} {' '.join(mode)}", run))
    return runs


@pytest.mark.registry
@pytest.mark.parametrize(
    ("registry_name", "scenario"),
    [
        ("registry_basic", "accepted"),
        ("registry_basic", "wrong password"),  # the registry answers 401
        ("registry_token", "accepted"),
        ("registry_token", "wrong password"),  # the token server refuses
        ("registry_token", "no access"),  # tokens are issued, the registry refuses them (401)
    ],
)
def test_no_password_or_token_in_any_cli_output(request, registry_name, scenario):
    registry: RegistryFixture = request.getfixturevalue(registry_name)
    server = registry.token_server
    issued_before = len(server.issued) if server else 0
    password = WRONG_PASSWORD if scenario == "wrong password" else PASSWORD
    repository = f"e2e/secrets-{registry.mode}-{scenario.replace(' ', '-')}"
    if scenario == "no access":
        assert server is not None
        policy, server.policy = server.policy, lambda user, scope: ()
    try:
        runs = cli_runs(registry, repository, password)
    finally:
        if scenario == "no access":
            server.policy = policy
    for label, run in runs:
        if scenario == "accepted":
            assert run.code == 0, (label, run.output)
        else:
            assert_clean_failure(run, 1, "401")
    tokens = server.issued[issued_before:] if server else []
    if scenario in ("accepted", "no access") and server is not None:
        assert tokens  # the registry's tokens were in play
    secrets = [PASSWORD, WRONG_PASSWORD, basic(USERNAME, PASSWORD), basic(USERNAME, WRONG_PASSWORD)]
    assert_secret_absent([*secrets, *token_forms(tokens)], [(label, run.output) for label, run in runs])


def fetch(url: str, data: dict[str, str] | None = None) -> tuple[int, str]:
    """GET (or POST a form to) a web UI page: status and text."""
    body = urlencode(data).encode() if data is not None else None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


#: Every page and document the web UI serves (and the report download).
WEB_UI_PAGES = (
    "/",
    "/stats/requests",
    "/stats/report",
    "/stats/report?download=1",
    "/stats/requests/csv",
    "/stats/requests_full_history/csv",
    "/stats/failures/csv",
    "/exceptions",
    "/exceptions/csv",
    "/tasks",
    "/logs",
    "/worker-count",
)


def wait_for_push(url: str, *, failed: bool, timeout: float = 40) -> dict[str, Any]:
    """Poll ``/stats/requests`` until a ``PUSH image`` succeeded (or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        status, text = fetch(f"{url}/stats/requests")
        rows = {(r["method"], r["name"]): r for r in json.loads(text)["stats"]} if status == 200 else {}
        push = rows.get(("PUSH", "image"))
        if push and (push["num_failures"] if failed else push["num_requests"] - push["num_failures"]) > 0:
            return push
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.5)


@pytest.mark.locust_run
def test_web_ui_serves_no_password_and_the_users_still_get_it(registry_basic, tmp_path):
    """The password on the master's command line is in no page of the web UI; a run started from
    the form (whose password field comes back empty) still authenticates, on a worker process
    too; a password typed into the form replaces it."""
    port = free_port()
    args = [
        *("--host", registry_basic.url, "--web-host", "127.0.0.1", "--web-port", str(port), "--processes", "1"),
        *("--registry-username", USERNAME, "--registry-password", PASSWORD),
        *("--csv", str(tmp_path / "ui"), "--json-file", str(tmp_path / "ui")),
        *("--loglevel", "DEBUG", "--logfile", str(tmp_path / "ui.log")),
        *SMALL_IMAGES,
        "PushUser",
    ]
    locust = Locust(args, tmp_path, name="ui")
    url = f"http://127.0.0.1:{port}"
    pages: list[tuple[str, str]] = []
    try:
        locust.wait_for_web_ui(port)
        status, index = fetch(url + "/")
        assert status == 200 and "registry_password" in index and "is_secret" in index, index[-2000:]
        assert '"default_value": "regload"' in index.replace('":"', '": "')  # other values are there
        assert_secret_absent([PASSWORD], [("/ (before any run)", index)])
        form = {"user_count": "2", "spawn_rate": "2", "host": registry_basic.url, "registry_password": ""}
        form |= {"registry_username": USERNAME}
        assert json.loads(fetch(url + "/swarm", form)[1])["success"]
        push = wait_for_push(url, failed=False)
        assert push["num_failures"] == 0, push  # the worker had the password from the command line
        pages += [(f"{page} (accepted)", fetch(url + page)[1]) for page in WEB_UI_PAGES]

        fetch(url + "/stop", {})
        assert json.loads(fetch(url + "/swarm", form | {"registry_password": WRONG_PASSWORD})[1])["success"]
        wait_for_push(url, failed=True)  # the typed password replaced it: 401s now
        pages += [(f"{page} (refused)", fetch(url + page)[1]) for page in WEB_UI_PAGES]
        locust.terminate()  # writes the reports; its exit code tells of the 401s, which were wanted
    finally:
        locust.kill()
    refused = json.loads(dict(pages)["/stats/requests (refused)"])
    assert any("HTTP 401" in e["error"] for e in refused["errors"]), refused["errors"]
    files = [(str(p), p.read_text(errors="replace")) for p in tmp_path.iterdir() if p.is_file()]
    assert {"ui.log", "ui_stats.csv", "ui_failures.csv"} <= {Path(p).name for p, _ in files}, files
    secrets = [PASSWORD, WRONG_PASSWORD, basic(USERNAME, PASSWORD), basic(USERNAME, WRONG_PASSWORD)]
    assert_secret_absent(secrets, [*pages, *files, ("stdout", locust.stdout), ("stderr", locust.stderr)])
