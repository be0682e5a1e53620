"""Client profiles, piece by piece, on the in-memory registry: the HEAD fallback, the config among
the layers, what a given option overrides, and the Locust settings. The profiles against real
clients' traffic: tests/test_client_profiles.py."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from regload import endpoints
from regload import mediatypes as mt
from regload.cli.main import main
from regload.concurrency import SequentialRunner
from regload.errors import UsageError
from regload.flows.pull import pull
from regload.flows.push import push
from regload.locust.options import settings_from
from regload.profiles import CONTAINERD, DOCKER, PODMAN, PROFILES, REGLOAD, profile
from regload.sinks.discard import DiscardSink
from regload.sources.base import BytesBlob, SourceImage
from tests.support.fake_registry import FakeRegistry

pytestmark = pytest.mark.flows

LAYERS = [b"layer one" * 100, b"layer two" * 100]


def names(fake: FakeRegistry) -> list[str]:
    return [r.name for r in fake.requests]


def test_a_head_refused_with_405_is_followed_by_a_get_of_the_tag():
    fake = FakeRegistry()
    fake.add_image("app", "1", LAYERS)
    fake.intercept = lambda request, body: (405, (), b"") if request.method == "HEAD" else None

    result = pull(fake.client(), fake.ref("app:1"), DiscardSink(), SequentialRunner(), CONTAINERD.pull)

    assert names(fake)[:2] == [endpoints.HEAD_MANIFEST, endpoints.GET_MANIFEST]
    assert fake.requests[1].url.endswith("/manifests/1")
    assert result.bytes == sum(map(len, LAYERS)) + len(b'{"architecture":"amd64","os":"linux"}')


def test_a_head_without_a_digest_is_followed_by_a_get_of_the_tag():
    fake = FakeRegistry(manifest_digest_header=None)
    fake.add_image("app", "1", LAYERS)

    pull(fake.client(), fake.ref("app:1"), DiscardSink(), SequentialRunner(), DOCKER.pull)

    assert names(fake)[:3] == [endpoints.PING, endpoints.HEAD_MANIFEST, endpoints.GET_MANIFEST]
    assert fake.requests[2].url.endswith("/manifests/1")


def test_a_head_answered_with_a_digest_gets_the_manifest_by_that_digest():
    fake = FakeRegistry()
    raw = fake.add_image("app", "1", LAYERS)

    result = pull(fake.client(), fake.ref("app:1"), DiscardSink(), SequentialRunner(), DOCKER.pull)

    assert fake.requests[2].url.endswith(f"/manifests/{result.manifest_digest}")
    assert result.manifest.raw == raw


@pytest.mark.parametrize("order", ["alongside", "last"])
def test_the_config_alongside_or_after_the_layers_is_fetched_once_and_counted_once(order):
    first, other = FakeRegistry(), FakeRegistry()
    for fake in (first, other):
        fake.add_image("app", "1", LAYERS)
    one = pull(first.client(), first.ref("app:1"), DiscardSink(), SequentialRunner(), REGLOAD.pull)
    options = replace(REGLOAD.pull, config_order=order)
    two = pull(other.client(), other.ref("app:1"), DiscardSink(), SequentialRunner(), options)

    assert one.bytes == two.bytes and {"config", "layers"} <= set(two.timings)
    gets = [r.url.rsplit("/", 1)[1] for r in other.requests if r.name == endpoints.GET_BLOB]
    assert len(gets) == 3 and (gets[-1] if order == "last" else gets[0]) == str(one.config_desc.digest)


def test_containerd_asks_for_each_blob_by_its_media_type():
    fake = FakeRegistry()
    fake.add_image("app", "1", LAYERS)
    pull(fake.client(), fake.ref("app:1"), DiscardSink(), SequentialRunner(), CONTAINERD.pull)
    accepts = [r.headers.get("Accept") for r in fake.requests if r.name == endpoints.GET_BLOB]
    assert accepts == [
        "application/vnd.oci.image.config.v1+json, */*",
        "application/vnd.oci.image.layer.v1.tar+gzip, */*",
        "application/vnd.oci.image.layer.v1.tar+gzip, */*",
    ]


def test_each_manifest_type_of_the_podman_profile_is_a_field_of_its_own():
    fake = FakeRegistry()
    fake.add_image("app", "1", LAYERS)
    pull(fake.client(), fake.ref("app:1"), DiscardSink(), SequentialRunner(), PODMAN.pull)
    assert fake.requests[1].headers.get_all("Accept") == list(PODMAN.pull.manifest_accept)
    assert len(PODMAN.pull.manifest_accept) == 6


def test_the_containerd_push_sends_no_ping_and_the_config_with_the_layers():
    fake = FakeRegistry()
    layers: list = [BytesBlob(mt.OCI_LAYER_GZIP, data) for data in LAYERS]
    image = SourceImage(mt.OCI_MANIFEST, BytesBlob(mt.OCI_CONFIG, b"{}"), layers)
    push(fake.client(), fake.ref("app:1"), image, SequentialRunner(), CONTAINERD.push)

    assert endpoints.PING not in names(fake)
    assert endpoints.PATCH_UPLOAD not in names(fake)
    puts = [r for r in fake.requests if r.name == endpoints.PUT_UPLOAD]
    assert sorted(len(r.body) for r in puts) == sorted([2, *map(len, LAYERS)])
    assert names(fake)[-2:] == [endpoints.HEAD_MANIFEST, endpoints.PUT_MANIFEST]


def test_the_containerd_push_puts_no_manifest_the_registry_holds_under_the_tag():
    fake = FakeRegistry()
    layers: list = [BytesBlob(mt.OCI_LAYER_GZIP, data) for data in LAYERS]
    image = SourceImage(mt.OCI_MANIFEST, BytesBlob(mt.OCI_CONFIG, b"{}"), layers)
    push(fake.client(), fake.ref("app:1"), image, SequentialRunner(), CONTAINERD.push)
    fake.requests.clear()
    push(fake.client(), fake.ref("app:1"), image, SequentialRunner(), CONTAINERD.push)
    assert endpoints.PUT_MANIFEST not in names(fake) and names(fake)[-1] == endpoints.HEAD_MANIFEST
    assert names(fake).count(endpoints.POST_UPLOAD) == 0  # every blob found by its HEAD


def test_options_given_replace_the_profiles_and_none_keeps_them():
    options = PODMAN.pull_options(jobs=2, verify=None)
    assert (options.jobs, options.verify, options.manifest_accept) == (2, True, PODMAN.pull.manifest_accept)
    assert CONTAINERD.push_options(upload_mode="chunked", jobs=None).upload_mode == "chunked"
    assert CONTAINERD.push_options(upload_mode=None).jobs == 3


def test_a_profile_is_named_in_any_case_and_an_unknown_one_is_refused_with_the_choices():
    assert profile("Docker") is DOCKER
    assert profile(None) is profile("") is REGLOAD
    with pytest.raises(UsageError, match="unknown client profile 'kubelet': choose one of regload, docker"):
        profile("kubelet")


def test_each_profile_names_a_user_agent_of_its_client():
    prefixes = {"regload": "regload/", "docker": "docker/", "containerd": "containerd/", "podman": "containers/"}
    prefixes["crane"] = "crane/"
    assert {name: p.user_agent.split("/")[0] + "/" for name, p in PROFILES.items()} == prefixes


def test_locust_settings_take_the_profile_unless_an_option_is_given():
    s = settings_from(SimpleNamespace(client_profile="containerd"))
    assert (s.pull.jobs, s.push.jobs, s.push.upload_mode, s.pull.head_first) == (3, 3, "monolithic", True)
    assert s.client.user_agent == CONTAINERD.user_agent
    assert s.pull.typed_accept and not s.push.ping

    # The web UI posts an empty field for an option left alone.
    s = settings_from(SimpleNamespace(client_profile="podman", pull_jobs="", push_jobs="2", upload_mode="chunked"))
    assert (s.pull.jobs, s.push.jobs, s.push.upload_mode) == (6, 2, "chunked")

    s = settings_from(SimpleNamespace(client_profile="docker", user_agent="fleet/1", no_check_existing=True))
    assert s.client.user_agent == "fleet/1" and not s.push.check_existing
    assert settings_from(None).profile is REGLOAD
    with pytest.raises(UsageError, match="--push-jobs"):
        settings_from(SimpleNamespace(push_jobs="0"))


def test_a_user_agent_of_two_lines_is_refused_before_anything_is_sent(capsys):
    code = main(["pull", "127.0.0.1:9/app:1", "--user-agent", "a\r\nX-Injected: 1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "regload: error: --user-agent must be one non-empty line"
