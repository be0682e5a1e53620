"""Client profiles against the real clients' traffic.

A recording proxy sits in front of the real docker-registry and keeps every request. The real
``podman pull``, ``podman push`` and ``skopeo copy`` run through it, then regload with the
matching ``--client-profile`` on the same image; the two recordings must have the same requests
as (method, path template), the same first and last request, the same manifest ``Accept``
fields, a ``containers/…`` User-Agent and the same peak concurrency. Each blob transfer is
slowed by the proxy (0.2 s) so that concurrency shows. docker, containerd and crane cannot run
here: their profiles are checked against the sequences their sources give
(``regload/profiles.py`` cites them).

podman keeps a blob-info cache (which repositories of a registry hold a blob) and mounts from
them on push. It is kept out by content: every image here is new (a random word in every
file), so no cache knows its blobs, and podman pushes to the proxy by another host name
(``localhost:PORT``) than the one it pulled from, so its cache has no candidate there.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from tests.support import traffic
from tests.support.cli import regload
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.images import File, OciImage, make_oci_layout
from tests.support.locust_run import Locust, Result, assert_clean, headless, run_locust
from tests.support.podman import Podman
from tests.support.skopeo import run_skopeo

PING = ("GET", "/v2/")
HEAD_TAG = ("HEAD", "/v2/<name>/manifests/<tag>")
GET_TAG = ("GET", "/v2/<name>/manifests/<tag>")
GET_DIGEST = ("GET", "/v2/<name>/manifests/<digest>")
PUT_TAG = ("PUT", "/v2/<name>/manifests/<tag>")
CONTAINERD_UA = "containerd/v1.7.34"
CONTAINERS_UA = re.compile(r"^containers/\d+\.\d+\.\d+ \(github\.com/containers/image\)$")


@pytest.fixture
def proxy(registry_anon):
    with FaultProxy(registry_anon.url, record=True) as recording:
        recording.set_faults([Fault("delay", 1.0, method="GET|PATCH|PUT", path=r"/blobs/", seconds=0.2)])
        yield recording


@pytest.fixture
def podman(tmp_path):
    client = Podman(tmp_path / "podman")
    yield client
    client.close()


def new_image(tmp_path: Path, layers: int) -> OciImage:
    """An image of ``layers`` gzip layers no client has seen: every file holds a new word."""
    word = uuid.uuid4().hex
    files = [{f"layer{i}/data": File(f"{word} {i}\n".encode() * 4000)} for i in range(layers)]
    return make_oci_layout(tmp_path / f"layout-{word}", files, tag="v1")


def seed(registry, image: OciImage, repository: str) -> None:
    """Push ``image`` to ``repository:v1`` straight to the registry (not through the proxy)."""
    run = regload("push", f"{image.layout}:v1", f"{registry.host}/{repository}:v1", "--plain-http")
    assert run.code == 0, run.output


def recorded(proxy: FaultProxy) -> list:
    exchanges = proxy.exchanges()
    proxy.reset_counters()
    return exchanges


def regload_json(*args: str) -> dict:
    run = regload(*args, "--plain-http", "--json")
    assert run.code == 0, run.output
    return run.json


@pytest.mark.registry
@pytest.mark.parametrize("layers", [2, 8])
def test_the_podman_profile_pulls_as_podman_pull_does(registry_anon, proxy, podman, tmp_path, layers):
    image = new_image(tmp_path, layers)
    repository = f"profiles/pull-{uuid.uuid4().hex[:8]}"
    seed(registry_anon, image, repository)

    podman.pull(f"{proxy.host}/{repository}:v1")
    real = recorded(proxy)
    out = regload_json("pull", f"{proxy.host}/{repository}:v1", "--client-profile", "podman")
    ours = recorded(proxy)

    assert out["client_profile"] == "podman"
    assert traffic.request_counts(ours) == traffic.request_counts(real)
    assert (
        traffic.requests(ours)[:3]
        == traffic.requests(real)[:3]
        == [
            PING,
            GET_TAG,
            ("GET", "/v2/<name>/blobs/<digest>"),  # the config, before any layer
        ]
    )
    assert traffic.requests(ours)[-1] == traffic.requests(real)[-1]
    assert traffic.manifest_accept(ours) == traffic.manifest_accept(real)
    assert len(traffic.manifest_accept(real)) == 6  # podman sends a field per type
    for agents in (traffic.user_agents(real), traffic.user_agents(ours)):
        assert len(agents) == 1 and CONTAINERS_UA.match(agents.pop())
    for exchanges in (real, ours):
        assert {e.get("Docker-Distribution-API-Version") for e in exchanges} == {"registry/2.0"}
    peak = traffic.peak_concurrency(real, traffic.blob_gets)
    assert traffic.peak_concurrency(ours, traffic.blob_gets) == peak == min(layers, 6)

    if layers > 3:  # regload's own flow is docker's concurrency: a different load
        regload_json("pull", f"{proxy.host}/{repository}:v1")
        assert traffic.peak_concurrency(recorded(proxy), traffic.blob_gets) == 3


@pytest.mark.registry
def test_the_podman_profile_pushes_as_podman_push_does(registry_anon, proxy, podman, tmp_path):
    image = new_image(tmp_path, 2)
    word = uuid.uuid4().hex[:8]
    seed(registry_anon, image, f"profiles/src-{word}")
    podman.pull(f"{proxy.host}/profiles/src-{word}:v1")
    recorded(proxy)

    # Another host name for the same proxy: podman's blob-info cache has no mount candidate there.
    podman.push(f"{proxy.host}/profiles/src-{word}:v1", f"localhost:{proxy.port}/profiles/podman-{word}:v1")
    real = recorded(proxy)
    regload_json("push", f"{image.layout}:v1", f"{proxy.host}/profiles/ours-{word}:v1", "--client-profile", "podman")
    ours = recorded(proxy)

    counts = traffic.request_counts(real)
    assert counts == {
        PING: 1,
        ("HEAD", "/v2/<name>/blobs/<digest>"): 3,
        ("POST", "/v2/<name>/blobs/uploads/"): 3,
        ("PATCH", "/v2/<name>/blobs/uploads/<session>"): 3,
        ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>"): 3,
        PUT_TAG: 1,
    }
    assert traffic.request_counts(ours) == counts
    assert traffic.requests(ours)[0] == traffic.requests(real)[0] == PING
    assert traffic.requests(ours)[-1] == traffic.requests(real)[-1] == PUT_TAG
    for agents in (traffic.user_agents(real), traffic.user_agents(ours)):
        assert len(agents) == 1 and CONTAINERS_UA.match(agents.pop())
    # Both layers at once, then the config alone.
    assert traffic.peak_concurrency(ours, traffic.uploads) == traffic.peak_concurrency(real, traffic.uploads) == 2


@pytest.mark.registry
def test_skopeo_copy_reads_what_the_podman_profile_reads(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 2)
    repository = f"profiles/skopeo-{uuid.uuid4().hex[:8]}"
    seed(registry_anon, image, repository)

    run_skopeo("copy", "--src-tls-verify=false", f"docker://{proxy.host}/{repository}:v1", f"oci:{tmp_path / 'out'}:v1")
    real = recorded(proxy)
    regload_json("pull", f"{proxy.host}/{repository}:v1", "--client-profile", "podman")
    ours = recorded(proxy)

    # The same requests; skopeo, writing no containers-storage, reads the config after the layers.
    assert traffic.request_counts(ours) == traffic.request_counts(real)
    assert traffic.requests(ours)[:2] == traffic.requests(real)[:2] == [PING, GET_TAG]
    assert traffic.manifest_accept(ours) == traffic.manifest_accept(real)
    assert traffic.peak_concurrency(ours, traffic.blob_gets) == traffic.peak_concurrency(real, traffic.blob_gets)
    assert all(agent.startswith("skopeo/") for agent in traffic.user_agents(real))


@pytest.mark.registry
def test_the_docker_profile_heads_the_tag_then_gets_the_manifest_by_digest(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 8)
    repository = f"profiles/docker-{uuid.uuid4().hex[:8]}"
    seed(registry_anon, image, repository)

    out = regload_json("pull", f"{proxy.host}/{repository}:v1", "--client-profile", "docker")
    connections = proxy.counters().connections
    ours = recorded(proxy)

    assert out["client_profile"] == "docker"
    assert traffic.requests(ours)[:3] == [PING, HEAD_TAG, GET_DIGEST]
    assert ours[2].target.endswith(out["manifest_digest"])
    accept = traffic.manifest_accept(ours)
    assert sorted(accept) == sorted(
        [
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
        ]
    )
    assert ours[2].get_all("Accept") == accept
    (agent,) = traffic.user_agents(ours)
    assert re.match(r"^docker/\S+ go/\S+ git-commit/\S+ kernel/\S+ os/linux arch/amd64 UpstreamClient\(", agent)
    assert traffic.request_counts(ours)[("GET", "/v2/<name>/blobs/<digest>")] == 9  # the config and 8 layers
    # 3 layers at once, and the config alongside them.
    assert traffic.peak_concurrency(ours, traffic.blob_gets) == 4
    # dockerd turns keep-alive off: a connection of its own for every request.
    assert {e.get("Connection") for e in ours} == {"close"}
    assert connections == len(ours)


@pytest.mark.registry
def test_the_docker_profile_pushes_a_new_layer_without_a_head_first_and_heads_it_once_committed(
    registry_anon, proxy, tmp_path
):
    image = new_image(tmp_path, 2)
    word = uuid.uuid4().hex[:8]

    regload_json("push", f"{image.layout}:v1", f"{proxy.host}/profiles/dkr-{word}:v1", "--client-profile", "docker")
    ours = recorded(proxy)

    head, post, patch = (
        ("HEAD", "/v2/<name>/blobs/<digest>"),
        ("POST", "/v2/<name>/blobs/uploads/"),
        ("PATCH", "/v2/<name>/blobs/uploads/<session>"),
    )
    commit = ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>")
    sent = traffic.requests(ours)
    assert sent[0] == PING and sent[-1] == PUT_TAG
    layers, config = sent[1:-6], sent[-6:-1]
    assert sorted(layers) == sorted([post, patch, commit, head] * 2)
    assert layers.index(post) < layers.index(head)  # no HEAD before a layer's upload
    assert config == [head, post, patch, commit, head]  # the manifest builder's Stat, then the upload
    patches = [e for e in ours if traffic.template(e) == patch]
    assert all(e.get("Transfer-Encoding") == "chunked" and e.get("Content-Length") is None for e in patches)


@pytest.mark.registry
def test_the_containerd_profile_pushes_each_blob_with_a_post_and_one_put(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 2)
    word = uuid.uuid4().hex[:8]

    out = regload_json(
        "push", f"{image.layout}:v1", f"{proxy.host}/profiles/ctr-{word}:v1", "--client-profile", "containerd"
    )
    ours = recorded(proxy)

    assert out["client_profile"] == "containerd"
    assert traffic.request_counts(ours) == {
        ("HEAD", "/v2/<name>/blobs/<digest>"): 3,
        ("POST", "/v2/<name>/blobs/uploads/"): 3,
        ("PUT", "/v2/<name>/blobs/uploads/<session>?digest=<digest>"): 3,
        HEAD_TAG: 1,
        PUT_TAG: 1,
    }  # no ping, no PATCH
    assert traffic.requests(ours)[-2:] == [HEAD_TAG, PUT_TAG]
    heads = [e for e in ours if traffic.template(e)[0] == "HEAD"]
    assert all((e.get("Accept") or "").endswith(", */*") for e in heads)
    sizes = sorted(b["size"] for b in out["blobs"])
    puts = [e for e in ours if traffic.template(e)[1].endswith("?digest=<digest>")]
    assert sorted(int(e.get("Content-Length") or -1) for e in puts) == sizes  # the whole body in the PUT
    assert traffic.requests(ours)[-1] == PUT_TAG
    assert traffic.user_agents(ours) == {CONTAINERD_UA}
    # The config goes with the layers: three blobs at once.
    assert traffic.peak_concurrency(ours, traffic.uploads) == 3


@pytest.mark.registry
def test_the_containerd_profile_pulls_without_a_ping_and_asks_for_each_blob_by_type(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 2)
    repository = f"profiles/ctr-pull-{uuid.uuid4().hex[:8]}"
    seed(registry_anon, image, repository)

    regload_json("pull", f"{proxy.host}/{repository}:v1", "--client-profile", "containerd")
    ours = recorded(proxy)

    assert traffic.requests(ours)[:2] == [HEAD_TAG, GET_DIGEST]
    assert ours[1].get("Accept") == "application/vnd.oci.image.manifest.v1+json, */*"  # the type the HEAD gave
    assert PING not in traffic.requests(ours)
    assert traffic.manifest_accept(ours) == [
        "application/vnd.docker.distribution.manifest.v2+json, "
        "application/vnd.docker.distribution.manifest.list.v2+json, "
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*"
    ]
    blobs = [e for e in ours if traffic.blob_gets(traffic.template(e))]
    wanted = {image.config.digest: image.config.media_type} | {d.digest: d.media_type for d in image.layers}
    assert {e.target.rsplit("/", 1)[1]: e.get("Accept") for e in blobs} == {
        digest: f"{media_type}, */*" for digest, media_type in wanted.items()
    }
    # The config first (the unpacker waits for it), then both layers.
    assert traffic.requests(ours)[2] == ("GET", "/v2/<name>/blobs/<digest>")
    assert ours[2].target.endswith(image.config.digest)
    assert traffic.peak_concurrency(ours, traffic.blob_gets) == 2


@pytest.mark.registry
def test_the_crane_profile_uploads_the_config_with_the_layers(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 2)
    word = uuid.uuid4().hex[:8]

    regload_json("push", f"{image.layout}:v1", f"{proxy.host}/profiles/crane-{word}:v1", "--client-profile", "crane")
    crane = recorded(proxy)
    regload_json("push", f"{image.layout}:v1", f"{proxy.host}/profiles/own-{word}:v1")
    own = recorded(proxy)

    # HEAD, POST, one PATCH, PUT for each blob, as regload's own, and the manifest HEADed first.
    assert traffic.requests(crane)[:2] == [PING, HEAD_TAG]
    assert traffic.request_counts(crane) == {**traffic.request_counts(own), HEAD_TAG: 1}
    assert traffic.peak_concurrency(crane, traffic.uploads) == 3
    assert traffic.peak_concurrency(own, traffic.uploads) == 2  # regload: the config after the layers
    (agent,) = traffic.user_agents(crane)
    assert re.match(r"^crane/\S+ go-containerregistry/\S+$", agent)

    # A second push of the same image: the manifest HEAD finds it, nothing else is sent.
    regload_json("push", f"{image.layout}:v1", f"{proxy.host}/profiles/crane-{word}:v1", "--client-profile", "crane")
    assert traffic.requests(recorded(proxy)) == [PING, HEAD_TAG]

    # crane pull writes a tarball: the config, then one layer at a time.
    regload_json("pull", f"{proxy.host}/profiles/crane-{word}:v1", "--client-profile", "crane")
    pulled = recorded(proxy)
    assert traffic.requests(pulled)[:2] == [PING, GET_TAG] and pulled[2].target.endswith(image.config.digest)
    assert traffic.peak_concurrency(pulled, traffic.blob_gets) == 1


@pytest.mark.registry
def test_options_given_override_the_profile(registry_anon, proxy, tmp_path):
    image = new_image(tmp_path, 8)
    repository = f"profiles/override-{uuid.uuid4().hex[:8]}"
    seed(registry_anon, image, repository)

    out = regload_json(
        "pull",
        f"{proxy.host}/{repository}:v1",
        "--client-profile",
        "podman",
        "--pull-jobs",
        "2",
        "--user-agent",
        "fleet-node/7",
    )
    ours = recorded(proxy)

    assert out["client_profile"] == "podman"
    assert traffic.user_agents(ours) == {"fleet-node/7"}
    assert traffic.peak_concurrency(ours, traffic.blob_gets) == 2
    assert len(traffic.manifest_accept(ours)) == 6  # the rest is still podman's


@pytest.mark.locust_run
def test_locust_users_send_what_their_client_profile_sends(registry_anon, tmp_path):
    """PullUser and PushUser with ``--client-profile containerd``: every request carries its
    User-Agent, pulls HEAD the tag first, pushes send no PATCH, and no user pings."""
    with FaultProxy(registry_anon.url, record=True, max_connections=512, timeout=10) as proxy:
        repos = f"profiles/locust-{uuid.uuid4().hex[:8]}"
        args = ["--client-profile", "containerd", "--repo-prefix", repos, "PullUser", "PushUser"]
        locust = Locust(headless(proxy.url, tmp_path / "run", *args, users=2, run_time="4s"), tmp_path, name="run")
        try:
            code = locust.wait(timeout=60)
        finally:
            locust.kill()
        exchanges = proxy.exchanges()
    result = Result(code, locust.stdout, locust.stderr, tmp_path / "run")
    assert code == 0, result.output
    stats = result.json_stats()
    assert stats[("PULL", "image")]["num_requests"] > 0 and stats[("PUSH", "image")]["num_requests"] > 0
    assert all(row["num_failures"] == 0 for row in stats.values()), stats
    assert ("HEAD", "/v2/<name>/manifests/<reference>") in stats
    assert ("PATCH", "/v2/<name>/blobs/uploads/<session>") not in stats
    assert ("GET", "/v2/") not in stats
    assert "regload client profile: containerd (containerd 1.7 (CRI, kubelet))" in result.output
    assert traffic.user_agents(exchanges) == {CONTAINERD_UA}
    blob_accepts = {e.get("Accept") for e in exchanges if traffic.blob_gets(traffic.template(e))}
    assert blob_accepts and all(value.endswith(", */*") for value in blob_accepts)


@pytest.mark.locust_run
def test_the_docker_profile_through_a_proxy_that_closes_without_saying_so(registry_anon, tmp_path):
    """docker sends ``Connection: close`` on every request. A proxy that honours it without
    echoing it in the answer (as many load balancers do) must see a new connection per request,
    and no request may meet a connection it already closed (RFC 9112 §9.6)."""
    with FaultProxy(registry_anon.url, echo_close=False, max_connections=512, timeout=10) as proxy:
        repos = f"profiles/close-{uuid.uuid4().hex[:8]}"
        args = ["--client-profile", "docker", "--repo-prefix", repos, "PullUser", "PushUser"]
        result = run_locust(
            headless(proxy.url, tmp_path / "run", *args, users=2, run_time="4s"), tmp_path, timeout=60, name="run"
        )
        counters = proxy.counters()
    assert_clean(result)
    stats = result.json_stats()
    assert stats[("PULL", "image")]["num_requests"] > 0 and stats[("PUSH", "image")]["num_requests"] > 0
    # A connection per request (one may open as the run stops, with no request sent on it).
    assert counters.requests > 100 and counters.requests <= counters.connections <= counters.requests + 4
