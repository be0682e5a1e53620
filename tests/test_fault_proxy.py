"""The fault-injecting proxy (``tests.support.fault_proxy``), and regload under its faults.

1. The proxy does what each fault says, seen with ``http.client`` through it to the real
   registry; without a fault it forwards faithfully.
2. ``regload pull`` / ``regload push`` through the proxy, one fault at a time on one endpoint:
   exit 1, one clear line naming the cause, no traceback, nothing half-written.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from regload.local_registry import LocalRegistry, RegistryConfig
from tests.support.cli import Run, assert_clean_failure, regload
from tests.support.fault_proxy import Fault, FaultProxy, endpoint_kind
from tests.support.registries import RegistryFixture, http_request
from tests.support.waiting import wait_until

MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Pushed:
    """An image pushed straight to a registry (not through a proxy)."""

    repo: str
    tag: str
    manifest_digest: str
    config: str
    layers: list[str]


def push_direct(registry: RegistryFixture, repo: str, seed: int) -> Pushed:
    run = regload(
        "push", f"synthetic:layers=2,size=256KiB,seed={seed}", f"{registry.host}/{repo}:v1", "--json", registry=registry
    )
    assert run.code == 0, run.output
    blobs = [b["digest"] for b in run.json["blobs"]]
    return Pushed(repo, "v1", run.json["manifest_digest"], blobs[-1], blobs[:-1])


@pytest.fixture(scope="module")
def image(registry_anon: RegistryFixture) -> Pushed:
    return push_direct(registry_anon, "faults/image", 4711)


@pytest.fixture
def proxy(registry_anon: RegistryFixture) -> Iterator[FaultProxy]:
    running = FaultProxy(registry_anon.url, seed=3, timeout=10).start()
    try:
        yield running
    finally:
        assert running.stop() == 0  # every thread ended


def connect(proxy: FaultProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)


def get(
    proxy: FaultProxy, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = connect(proxy)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def direct(registry: RegistryFixture, path: str, **kwargs) -> tuple[int, bytes]:
    answer = http_request(registry.url + path, **kwargs)
    return answer.status, answer.body


def blob_path(image: Pushed, digest: str) -> str:
    return f"/v2/{image.repo}/blobs/{digest}"


def manifest_path(image: Pushed, reference: str | None = None) -> str:
    return f"/v2/{image.repo}/manifests/{reference or image.tag}"


BLOB_GET = {"method": "GET", "path": r"/blobs/sha256:"}


# -- 1. the proxy itself ---------------------------------------------------------------------------


@pytest.mark.registry
def test_without_faults_answers_are_forwarded_as_they_are_on_one_kept_alive_connection(proxy, image, registry_anon):
    conn = connect(proxy)
    try:
        conn.request("GET", manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})
        manifest = conn.getresponse()
        raw = manifest.read()
        conn.request("GET", blob_path(image, image.layers[0]))
        blob = conn.getresponse()
        data = blob.read()
    finally:
        conn.close()
    status, direct_raw = direct(registry_anon, manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})
    assert (manifest.status, raw) == (status, direct_raw)
    assert manifest.getheader("Docker-Content-Digest") == image.manifest_digest
    assert manifest.getheader("Content-Type") == "application/vnd.oci.image.manifest.v1+json"
    assert blob.status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == image.layers[0]
    counters = proxy.counters()
    assert counters.connections == 1
    assert counters.requests_by_endpoint == {"GET manifest": 1, "GET blob": 1}
    assert counters.injected == {}


@pytest.mark.registry
def test_a_chunked_upload_of_tens_of_mib_streams_through_and_locations_point_at_the_proxy(proxy, registry_anon):
    data = bytes(range(256)) * (96 * 1024)  # 24 MiB
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn = connect(proxy)
    try:
        conn.request("POST", "/v2/faults/upload/blobs/uploads/", body=b"")
        started = conn.getresponse()
        started.read()
        location = started.getheader("Location")
        # distribution answers absolute Locations built from the Host it was sent: the upstream.
        assert location.startswith(proxy.url + "/v2/faults/upload/blobs/uploads/"), location
        chunks = (data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20))
        conn.request("PATCH", location, body=chunks, encode_chunked=True)
        patched = conn.getresponse()
        patched.read()
        assert patched.status == 202 and patched.getheader("Range") == f"0-{len(data) - 1}"
        conn.request("PUT", patched.getheader("Location") + "&digest=" + digest, body=b"")
        committed = conn.getresponse()
        committed.read()
    finally:
        conn.close()
    assert committed.status == 201, committed.status
    assert committed.getheader("Docker-Content-Digest") == digest
    assert committed.getheader("Location") == f"{proxy.url}/v2/faults/upload/blobs/{digest}"
    head = http_request(f"{registry_anon.url}/v2/faults/upload/blobs/{digest}", method="HEAD")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(data))


@pytest.mark.registry
def test_an_early_error_to_a_large_upload_reaches_the_client(proxy):
    """distribution answers a PATCH to an unknown session without reading its 8 MiB body."""
    conn = connect(proxy)
    try:
        unknown = "/v2/faults/early/blobs/uploads/6d1e5b1c-0000-4000-8000-000000000000"
        conn.request("PATCH", unknown, body=bytes(8 << 20))
        refused = conn.getresponse()
        body = refused.read()
        conn.request("GET", "/v2/")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert refused.status == 404 and json.loads(body)["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"


class _UnsizedHandler(BaseHTTPRequestHandler):
    """Answers ``/chunked`` in chunked coding and ``/close`` delimited by the connection's end."""

    protocol_version = "HTTP/1.1"
    payload = bytes(range(256)) * 1024

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(self.payload), 10_000):
                piece = self.payload[i : i + 10_000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(self.payload)
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.unit
def test_unsized_upstream_bodies_are_relayed_chunked_and_can_be_faulted():
    """distribution sizes its bodies; other upstreams (a registry behind nginx) may not."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _UnsizedHandler)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    try:
        with FaultProxy(f"http://127.0.0.1:{server.server_address[1]}") as proxy:
            conn = connect(proxy)
            try:
                for path in ("/chunked", "/close", "/chunked"):  # one kept-alive connection
                    conn.request("GET", path)
                    response = conn.getresponse()
                    assert response.getheader("Transfer-Encoding") == "chunked"
                    assert response.read() == _UnsizedHandler.payload
            finally:
                conn.close()
            assert proxy.counters().connections == 1
            proxy.set_faults([Fault("corrupt", path="/chunked"), Fault("close_mid_body", keep=5000, path="/close")])
            corrupted = get(proxy, "/chunked")[1]
            assert len(corrupted) == len(_UnsizedHandler.payload) and corrupted != _UnsizedHandler.payload
            with pytest.raises(http.client.IncompleteRead) as cut:
                get(proxy, "/close")
            assert len(cut.value.partial) == 5000
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)


@pytest.mark.registry
def test_relative_locations_are_left_alone():
    with LocalRegistry(config=RegistryConfig(relative_urls=True)) as registry, FaultProxy(registry.url) as proxy:
        response, _ = get(proxy, "/v2/faults/relative/blobs/uploads/", method="POST")
        assert response.status == 202
        assert response.getheader("Location").startswith("/v2/faults/relative/blobs/uploads/")


@pytest.mark.registry
def test_authorization_and_challenges_are_forwarded(registry_basic):
    with FaultProxy(registry_basic.url) as proxy:
        refused, _ = get(proxy, "/v2/")
        accepted, _ = get(proxy, "/v2/", {"Authorization": registry_basic.basic_auth() or ""})
    assert refused.status == 401
    assert refused.getheader("WWW-Authenticate", "").startswith("Basic realm=")
    assert accepted.status == 200


@pytest.mark.registry
def test_reset_answers_nothing_and_resets_the_connection(proxy, image):
    proxy.set_faults([Fault("reset", **BLOB_GET)])
    with pytest.raises(ConnectionResetError):
        get(proxy, blob_path(image, image.layers[0]))
    manifest, _ = get(proxy, manifest_path(image), {"Accept": MANIFEST_ACCEPT})  # outside the filter
    assert manifest.status == 200
    counters = proxy.counters()
    assert counters.faults("reset") == counters.faults("reset", "GET blob") == 1


@pytest.mark.registry
def test_reset_during_an_upload_body(proxy):
    proxy.set_faults([Fault("reset", method="PATCH", after_request_bytes=64 * 1024)])
    conn = connect(proxy)
    try:
        conn.request("POST", "/v2/faults/reset/blobs/uploads/", body=b"")
        started = conn.getresponse()
        started.read()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            conn.request("PATCH", started.getheader("Location"), body=bytes(4 << 20))
            conn.getresponse()
    finally:
        conn.close()
    assert proxy.counters().faults("reset", "PATCH upload") == 1


@pytest.mark.registry
@pytest.mark.parametrize(("kind", "kept"), [("close_mid_body", lambda n: n // 2), ("truncate", lambda n: n - 1)])
def test_body_cut_short_after_announcing_the_full_length(proxy, image, kind, kept):
    proxy.set_faults([Fault(kind, **BLOB_GET)])
    with pytest.raises(http.client.IncompleteRead) as cut:
        get(proxy, blob_path(image, image.layers[0]))
    size = len(cut.value.partial) + cut.value.expected
    assert size > 256 * 1024  # the announced Content-Length is the blob's
    assert len(cut.value.partial) == kept(size)
    assert proxy.counters().faults(kind, "GET blob") == 1


@pytest.mark.registry
def test_corrupt_flips_one_byte_and_keeps_the_length(proxy, image, registry_anon):
    proxy.set_faults([Fault("corrupt", **BLOB_GET)])
    response, data = get(proxy, blob_path(image, image.layers[0]))
    _, original = direct(registry_anon, blob_path(image, image.layers[0]))
    assert response.status == 200 and len(data) == len(original)
    assert [i for i, (a, b) in enumerate(zip(data, original, strict=True)) if a != b] == [len(original) // 2]
    assert proxy.counters().faults("corrupt", "GET blob") == 1


@pytest.mark.registry
def test_delay_waits_before_answering(proxy, image):
    proxy.set_faults([Fault("delay", seconds=0.4, **BLOB_GET)])
    started = time.monotonic()
    response, _ = get(proxy, blob_path(image, image.config))
    assert response.status == 200
    assert time.monotonic() - started >= 0.4
    assert proxy.counters().faults("delay", "GET blob") == 1


@pytest.mark.registry
@pytest.mark.parametrize(
    ("kind", "status", "content_type"),
    [
        ("status_500", 500, "application/json"),
        ("status_502", 502, "text/html"),
        ("status_503", 503, "text/plain"),
        ("status_429", 429, "application/json"),
    ],
)
def test_status_faults_answer_without_forwarding(proxy, image, registry_anon, kind, status, content_type):
    proxy.set_faults([Fault(kind, method="PUT", retry_after=7)])
    _, raw = direct(registry_anon, manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})
    tag = f"never-{status}"
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    conn = connect(proxy)
    try:
        conn.request("PUT", manifest_path(image, tag), body=raw, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.request("GET", "/v2/")  # the connection stays usable
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert response.status == status and response.getheader("Content-Type") == content_type and body
    if status == 429:
        assert response.getheader("Retry-After") == "7"
        assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
    # The registry never got the PUT: the tag does not exist.
    assert direct(registry_anon, manifest_path(image, tag), headers={"Accept": MANIFEST_ACCEPT})[0] == 404
    assert proxy.counters().faults(kind, "PUT manifest") == 1


@pytest.mark.registry
def test_wrong_digest_replaces_docker_content_digest_and_keeps_the_body(proxy, image, registry_anon):
    proxy.set_faults([Fault("wrong_digest", method="GET", path="/manifests/")])
    response, raw = get(proxy, manifest_path(image), {"Accept": MANIFEST_ACCEPT})
    said = response.getheader("Docker-Content-Digest")
    assert SHA256.match(said) and said != image.manifest_digest
    assert raw == direct(registry_anon, manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})[1]
    assert proxy.counters().faults("wrong_digest", "GET manifest") == 1


@pytest.mark.registry
def test_redirect_blob_sends_blob_gets_to_storage_on_another_host(proxy, image):
    proxy.set_faults([Fault("redirect_blob", path="/blobs/")])
    head, _ = get(proxy, blob_path(image, image.config), method="HEAD")  # only GETs are redirected
    assert head.status == 200
    redirect, _ = get(proxy, blob_path(image, image.config))
    assert redirect.status == 307
    location = urlsplit(redirect.getheader("Location"))
    assert location.hostname in ("127.0.0.2", "localhost") and location.hostname != urlsplit(proxy.url).hostname
    for headers in ({}, {"Authorization": "Basic bm90OnNlbnQ="}):
        conn = http.client.HTTPConnection(location.hostname, location.port, timeout=10)
        try:
            conn.request("GET", f"{location.path}?{location.query}", headers=headers)
            served = conn.getresponse()
            data = served.read()
        finally:
            conn.close()
        assert served.status == 200 and "sha256:" + hashlib.sha256(data).hexdigest() == image.config
        assert served.getheader("Docker-Content-Digest") is None  # object storage, not a registry
    assert [(hit.authorization, hit.status) for hit in proxy.storage_hits(at_least=2)] == [(False, 200), (True, 200)]
    counters = proxy.counters()
    assert counters.faults("redirect_blob", "GET blob") == 1 and counters.skipped == {"redirect_blob": 1}


def faulted_pattern(registry: RegistryFixture, image: Pushed, seed: int, faults: list[Fault], count: int) -> list[int]:
    """Statuses of ``count`` manifest GETs on one connection through a new proxy."""
    statuses = []
    with FaultProxy(registry.url, seed=seed, faults=faults) as proxy:
        conn = connect(proxy)
        try:
            for _ in range(count):
                conn.request("GET", manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
        finally:
            conn.close()
        assert proxy.counters().faults("status_503") == statuses.count(503)
    return statuses


@pytest.mark.registry
def test_fractions_are_drawn_from_a_seeded_rng_and_limits_hold(registry_anon, image):
    half = [Fault("status_503", 0.5, method="GET", path="/manifests/")]
    first = faulted_pattern(registry_anon, image, 11, half, 40)
    assert 8 <= first.count(503) <= 32 and set(first) == {200, 503}
    assert faulted_pattern(registry_anon, image, 11, half, 40) == first  # same seed, same requests
    assert faulted_pattern(registry_anon, image, 12, half, 40) != first
    limited = [Fault("status_503", 1.0, method="GET", limit=2)]
    assert faulted_pattern(registry_anon, image, 11, limited, 5) == [503, 503, 200, 200, 200]


@pytest.mark.registry
def test_faults_are_replaced_at_runtime_while_requests_run(proxy, image):
    statuses: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def client() -> None:
        try:
            conn = connect(proxy)
            while not done.is_set():
                conn.request("GET", manifest_path(image), headers={"Accept": MANIFEST_ACCEPT})
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            conn.close()
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        # 20 switches, every 503 on, every other off, while 4 clients send requests without a
        # pause. Each mix stays until the proxy has drawn a request with it (a request counted
        # after set_faults returned was drawn from the new mix): both mixes meet requests.
        for i in range(20):
            proxy.set_faults([Fault("status_503", 1.0)] if i % 2 else [])
            drawn = proxy.counters().requests
            wait_until(
                lambda drawn=drawn: errors or proxy.counters().requests > drawn,
                timeout=30,
                message=f"no request reached the proxy after switch {i}",
            )
    finally:
        done.set()
        for thread in threads:
            thread.join(30)
    assert not errors and set(statuses) == {200, 503}
    counters = proxy.counters()
    assert counters.requests == len(statuses) and counters.connections == 4
    # The fault was applied (at least once per "on" mix), and to exactly the requests answered 503.
    assert counters.faults("status_503") == statuses.count(503) >= 10
    assert statuses.count(200) >= 10


@pytest.mark.registry
def test_stop_closes_connections_cuts_delays_short_and_joins_threads(registry_anon, image):
    proxy = FaultProxy(registry_anon.url).start()
    idle = connect(proxy)
    idle.request("GET", "/v2/")
    idle.getresponse().read()
    proxy.set_faults([Fault("delay", seconds=30)])
    waiting = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    waiting.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(  # the request is in its delay now
        lambda: proxy.counters().faults("delay") == 1, timeout=10, message="the delayed request never reached the proxy"
    )
    # Every thread ended within stop()'s 5 s: the delayed one too, 25 s before its delay was over.
    assert proxy.stop(timeout=5) == 0
    assert waiting.recv(100) == b""  # closed without an answer
    assert [e.endpoint for e in proxy.events()] == ["GET ping"]  # the idle connection's: nothing was forwarded
    waiting.close()
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


@pytest.mark.unit
def test_an_unreachable_upstream_is_a_502():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]  # bound, never listening: connections are refused
        with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
            response, body = get(proxy, "/v2/")
            assert response.status == 502 and b"upstream unreachable" in body
            assert proxy.counters().upstream_errors == 1


@pytest.mark.unit
def test_endpoint_kinds():
    assert endpoint_kind("GET", "/v2/") == "GET ping"
    assert endpoint_kind("GET", "/some/prefix/v2/a/b/blobs/sha256:00") == "GET blob"
    assert endpoint_kind("POST", "/v2/a/blobs/uploads/") == "POST upload"
    assert endpoint_kind("PUT", "/v2/a/blobs/uploads/u-1?_state=x&digest=sha256:0") == "PUT upload"
    assert endpoint_kind("HEAD", "/v2/a/manifests/latest") == "HEAD manifest"
    assert endpoint_kind("GET", "/v2/a/tags/list?n=1") == "GET tags"
    assert endpoint_kind("GET", "/favicon.ico") == "GET other"


# -- 2. regload through the proxy --------------------------------------------------------------------


def pull(proxy: FaultProxy, image: Pushed, *args: str, registry: RegistryFixture | None = None) -> Run:
    return regload("pull", f"{proxy.host}/{image.repo}:{image.tag}", *args, registry=registry, timeout=60)


def assert_nothing_left(parent: Path) -> None:
    assert list(parent.iterdir()) == [], "the output or a staging directory was left behind"


@pytest.mark.registry
def test_pull_and_push_through_the_proxy_without_faults(proxy, image, tmp_path):
    out = tmp_path / "rootfs"
    pulled = pull(proxy, image, "--output", str(out), "--json")
    assert pulled.code == 0, pulled.output
    assert pulled.json["manifest_digest"] == image.manifest_digest and out.is_dir()
    pushed = regload("push", "synthetic:layers=2,size=64KiB,seed=90", f"{proxy.host}/faults/clean:v1")
    assert pushed.code == 0, pushed.output
    assert proxy.counters().requests_by_endpoint["PATCH upload"] == 3


def last_layer(image: Pushed, **extra: object) -> dict[str, object]:
    """A filter for the GET of the image's last layer: the other blobs arrive and are written."""
    return {"method": "GET", "path": f"/blobs/{image.layers[-1]}$", **extra}


PULL_FAULTS = [
    ("corrupt", "GET blob", "content has digest"),
    ("truncate", "GET blob", "connection closed with 1 body bytes missing"),
    ("close_mid_body", "GET blob", "connection closed with"),
    ("reset", "GET blob", "connection reset"),
    ("status_500", "GET blob", "HTTP 500"),
    ("status_502", "GET blob", "HTTP 502"),
    ("status_503", "GET blob", "HTTP 503"),
    ("status_429", "GET blob", "HTTP 429"),
    ("wrong_digest", "GET manifest", "Docker-Content-Digest"),
]


@pytest.mark.registry
@pytest.mark.parametrize(("kind", "endpoint", "needle"), PULL_FAULTS, ids=[f[0] for f in PULL_FAULTS])
def test_pull_fails_cleanly_under_each_fault(proxy, image, tmp_path, kind, endpoint, needle):
    """``regload pull`` (verify only) and ``regload pull --output``, side by side to save time."""
    if endpoint == "GET manifest":
        proxy.set_faults([Fault(kind, method="GET", path=f"/manifests/{image.tag}$")])
    else:
        proxy.set_faults([Fault(kind, **last_layer(image))])
    parent = tmp_path / "out"
    parent.mkdir()
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda args: pull(proxy, image, *args), [[], ["--output", str(parent / "image")]]))
    for run in runs:
        assert_clean_failure(run, 1, needle)
    assert proxy.counters().faults(kind, endpoint) == 2
    assert_nothing_left(parent)


PUSH_FAULTS = [
    ("status_500", "PATCH", "/blobs/uploads/", "PATCH upload", "HTTP 500"),
    ("status_500", "PUT", "/blobs/uploads/", "PUT upload", "HTTP 500"),
    ("reset", "PATCH", "/blobs/uploads/", "PATCH upload", "connection"),
    ("wrong_digest", "PUT", "/blobs/uploads/", "PUT upload", "blob commit: registry stored sha256:"),
    ("wrong_digest", "PUT", "/manifests/", "PUT manifest", "manifest PUT: registry says sha256:"),
]


@pytest.mark.registry
@pytest.mark.parametrize(
    ("kind", "method", "path", "endpoint", "needle"),
    PUSH_FAULTS,
    ids=["patch-500", "commit-500", "patch-reset", "commit-digest", "manifest-digest"],
)
def test_push_fails_cleanly_under_each_fault(proxy, kind, method, path, endpoint, needle):
    proxy.set_faults([Fault(kind, method=method, path=path, after_request_bytes=32 * 1024)])
    seed = 100 + PUSH_FAULTS.index((kind, method, path, endpoint, needle))
    run = regload("push", f"synthetic:layers=2,size=256KiB,seed={seed}", f"{proxy.host}/faults/push:{seed}")
    assert_clean_failure(run, 1, needle)
    if kind == "reset":
        assert re.search(r"connection (reset|closed)", run.stderr), run.stderr
    assert proxy.counters().faults(kind, endpoint) >= 1


@pytest.mark.registry
def test_a_delay_shorter_than_the_timeout_is_waited_for(proxy, image):
    proxy.set_faults([Fault("delay", seconds=0.3, **BLOB_GET)])
    run = pull(proxy, image, "--registry-timeout", "5")
    assert run.code == 0, run.output
    assert proxy.counters().faults("delay", "GET blob") == 3  # the config and both layers


@pytest.mark.registry
def test_a_delay_longer_than_the_timeout_fails_naming_the_timeout(proxy, image, tmp_path):
    # 30 s: a pull that waited the delay out would get the manifest and succeed (within the 60 s
    # the command may take); stopping the proxy fixture cuts the delay short.
    proxy.set_faults([Fault("delay", seconds=30, method="GET", path="/manifests/")])
    run = pull(proxy, image, "--registry-timeout", "0.5", "--output", str(tmp_path / "image"))
    assert_clean_failure(run, 1, "GET /v2/<name>/manifests/<reference>", "timed out after 0.5s")
    # The pull gave up while the proxy held its request in the delay: nothing had answered it.
    assert proxy.counters().faults("delay", "GET manifest") == 1
    assert [e for e in proxy.events() if e.endpoint == "GET manifest"] == []
    assert_nothing_left(tmp_path)


@pytest.mark.registry
def test_blob_redirects_to_another_host_carry_no_authorization(registry_basic, tmp_path):
    image = push_direct(registry_basic, "faults/redirect", 4712)
    # The registry wants credentials for a blob: storage can only serve it with the credentials
    # of the redirected request, which the proxy forwarded.
    assert direct(registry_basic, blob_path(image, image.layers[0]))[0] == 401
    with FaultProxy(registry_basic.url, seed=5, faults=[Fault("redirect_blob", **BLOB_GET)]) as proxy:
        run = pull(proxy, image, "--output", str(tmp_path / "image"), "--json", registry=registry_basic)
        assert run.code == 0, run.output
        assert run.json["manifest_digest"] == image.manifest_digest
        hits = proxy.storage_hits(at_least=3)
        assert proxy.counters().faults("redirect_blob", "GET blob") == 3
    assert len(hits) == 3 and {hit.status for hit in hits} == {200}
    assert [hit for hit in hits if hit.authorization] == []
