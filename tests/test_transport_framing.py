"""Response framing as each network transport reads it, through the fault proxy to the real
registry: an answer cut on the wire at every byte, chunked bodies with extensions and trailers in
chunks of any size, bodies cut short, heads of every size. Each case reads the right bytes or
fails with one ``TransportError``, and the transport's next request on the same pool works (no
half-read answer reaches it)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regload.errors import TransportError
from regload.http import Request, Transport, TransportOptions
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.registries import RegistryFixture
from tests.test_transports import TRANSPORTS, _push_blob

pytestmark = pytest.mark.registry

REPO = "framing/blob"
CONFIG_LIKE = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"note":"framing"}'
BIG = bytes(range(256)) * 4096  # 1 MiB: several socket reads, and a body past one read buffer


@pytest.fixture(scope="module")
def blobs(registry_anon: RegistryFixture) -> dict[bytes, str]:
    transport = TRANSPORTS["socket"](TransportOptions())
    try:
        return {data: _push_blob(transport, registry_anon.url, REPO, data) for data in (CONFIG_LIKE, BIG)}
    finally:
        transport.close()


@pytest.fixture(scope="module")
def proxy(registry_anon: RegistryFixture) -> Iterator[FaultProxy]:
    running = FaultProxy(registry_anon.url, seed=5, timeout=10).start()
    try:
        yield running
    finally:
        assert running.stop() == 0


@pytest.fixture(params=sorted(TRANSPORTS))
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    made = TRANSPORTS[request.param](TransportOptions(max_connections_per_host=1, read_timeout=10))
    yield made
    made.close()


def fetch(transport: Transport, proxy: FaultProxy, digest: str, method: str = "GET") -> bytes:
    url = f"{proxy.url}/v2/{REPO}/blobs/{digest}"
    response = transport.send(Request(method, url, f"{method} /v2/<name>/blobs/<digest>"))
    try:
        assert response.status == 200, response.status
        return b"".join(bytes(chunk) for chunk in response.iter_bytes(64 * 1024))
    finally:
        response.close()


def faulted(proxy: FaultProxy, fault: Fault, action: Callable[[], bytes]) -> bytes:
    proxy.reset_counters()
    proxy.set_faults([Fault(fault.kind, keep=fault.keep, method="GET|HEAD", path=r"/blobs/sha256:", limit=1)])
    try:
        return action()
    finally:
        proxy.clear_faults()


def test_an_answer_cut_at_every_byte_is_read_whole(transport, proxy, blobs):
    digest = blobs[CONFIG_LIKE]
    cuts = 0
    for cut in range(1, 4096):
        body = faulted(proxy, Fault("split", keep=cut), lambda: fetch(transport, proxy, digest))
        assert body == CONFIG_LIKE, cut
        counters = proxy.counters()
        if counters.skipped.get("split"):
            break  # the cut is past the end of the answer: every byte has been a cut
        assert counters.faults("split") == 1, cut
        cuts += 1
    assert cuts > len(CONFIG_LIKE) + 100, cuts  # head and body were both cut everywhere


def test_a_head_answer_cut_anywhere_has_no_body(transport, proxy, blobs):
    digest = blobs[BIG]
    applied = 0
    for cut in range(1, 400, 7):
        proxy.reset_counters()
        proxy.set_faults([Fault("split", keep=cut, method="HEAD", limit=1)])
        response = transport.send(Request("HEAD", f"{proxy.url}/v2/{REPO}/blobs/{digest}", "HEAD blob"))
        assert response.status == 200 and response.headers["content-length"] == str(len(BIG))
        assert response.read() == b""
        response.close()
        applied += proxy.counters().faults("split")
    proxy.clear_faults()
    assert applied >= 20, applied  # the head was cut at that many places
    assert fetch(transport, proxy, digest) == BIG


CHUNKING = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@CHUNKING
@given(size=st.integers(min_value=1, max_value=70_000))
def test_chunked_bodies_with_extensions_and_trailers(transport, proxy, blobs, size):
    data = BIG if size > 300 else CONFIG_LIKE
    body = faulted(proxy, Fault("rechunk", keep=size), lambda: fetch(transport, proxy, blobs[data]))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert proxy.counters().faults("rechunk") == 1
    assert fetch(transport, proxy, blobs[CONFIG_LIKE]) == CONFIG_LIKE  # the connection is usable


@pytest.mark.parametrize("kind", ["close_mid_body", "truncate"])
@pytest.mark.parametrize("keep", [0, 1, 65_535, 65_536, 700_000])
def test_a_body_cut_short_is_an_error_and_the_next_request_works(transport, proxy, blobs, kind, keep):
    with pytest.raises(TransportError) as caught:
        faulted(proxy, Fault(kind, keep=keep), lambda: fetch(transport, proxy, blobs[BIG]))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("GET /v2/<name>/blobs/<digest> to ")
    assert proxy.counters().faults(kind) == 1
    assert fetch(transport, proxy, blobs[BIG]) == BIG


@pytest.mark.parametrize("padding", [10, 8_000, 15_000])
def test_heads_of_ordinary_sizes_are_read(transport, proxy, blobs, padding):
    body = faulted(proxy, Fault("huge_head", keep=padding), lambda: fetch(transport, proxy, blobs[CONFIG_LIKE]))
    assert body == CONFIG_LIKE and proxy.counters().faults("huge_head") == 1


def test_an_oversized_head_is_refused(transport, proxy, blobs):
    with pytest.raises(TransportError) as caught:
        faulted(proxy, Fault("huge_head", keep=3 << 20), lambda: fetch(transport, proxy, blobs[CONFIG_LIKE]))
    assert "\n" not in str(caught.value) and "ppp" not in str(caught.value)
    assert proxy.counters().faults("huge_head") == 1
    assert fetch(transport, proxy, blobs[CONFIG_LIKE]) == CONFIG_LIKE
