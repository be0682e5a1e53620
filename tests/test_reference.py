import pytest

from regload.errors import InvalidReference
from regload.reference import Registry, is_loopback, parse_reference, parse_repository

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text, base, repo, tag, digest",
    [
        ("busybox", "https://registry-1.docker.io", "library/busybox", "latest", None),
        ("busybox:1.36", "https://registry-1.docker.io", "library/busybox", "1.36", None),
        ("user/app", "https://registry-1.docker.io", "user/app", "latest", None),
        ("docker.io/library/alpine:3", "https://registry-1.docker.io", "library/alpine", "3", None),
        ("localhost:5000/a/b:c", "http://localhost:5000", "a/b", "c", None),
        ("127.0.0.1:5000/x", "http://127.0.0.1:5000", "x", "latest", None),
        ("[::1]:5000/x:t", "http://[::1]:5000", "x", "t", None),
        ("quay.io/org/app@" + DIGEST, "https://quay.io", "org/app", None, DIGEST),
        ("ghcr.io/o/a:v1@" + DIGEST, "https://ghcr.io", "o/a", "v1", DIGEST),
        ("localhost/app", "http://localhost", "app", "latest", None),
        ("registry.example.com:443/a.b/c-d__e", "https://registry.example.com:443", "a.b/c-d__e", "latest", None),
    ],
)
def test_parse(text, base, repo, tag, digest):
    ref = parse_reference(text)
    assert ref.registry.base_url == base
    assert ref.repository == repo
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest


@pytest.mark.parametrize(
    "text",
    [
        "",
        " busybox",
        "Busybox",
        "busybox:",
        "busybox:-bad",
        "a//b",
        "a/b/",
        "host:5000/",
        "x@sha256:abc",
        "x@md5:" + "a" * 32,
        "x@sha256:" + "A" * 64,
        "repo/-x",
        "x:" + "t" * 129,
        "bad_host!:5000/x",
        "a/" + "b" * 300,
    ],
)
def test_invalid(text):
    with pytest.raises(InvalidReference) as e:
        parse_reference(text)
    assert "\n" not in str(e.value)


def test_plain_http_and_manifest_urls():
    ref = parse_reference("registry.example.com/app:1", plain_http=True)
    assert ref.registry.base_url == "http://registry.example.com"
    assert ref.manifest_url() == "http://registry.example.com/v2/app/manifests/1"
    assert ref.with_reference(DIGEST).manifest_url() == f"http://registry.example.com/v2/app/manifests/{DIGEST}"


def test_registry_url_with_prefix():
    registry = Registry.from_url("http://nexus:8081/repository/docker/")
    ref = parse_reference("team/app:2", registry=registry)
    assert ref.manifest_url() == "http://nexus:8081/repository/docker/v2/team/app/manifests/2"
    assert Registry.from_url("http://h:1/p/v2/").base_url == "http://h:1/p"
    # With an explicit registry, a first component with a dot is part of the repository.
    assert parse_reference("my.team/app", registry=registry).repository == "my.team/app"
    for bad in ("ftp://x", "nexus:8081", "http://user:pw@h/"):
        with pytest.raises(InvalidReference) as e:
            Registry.from_url(bad)
        assert "pw" not in str(e.value)


def test_repository_only():
    assert parse_repository("localhost:5000/a/b").repository == "a/b"
    with pytest.raises(InvalidReference):
        parse_repository("localhost:5000/a/b:tag")


@pytest.mark.parametrize(
    "host, loop",
    [
        ("localhost", True),
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("[::1]:80", True),
        ("10.0.0.1", False),
        ("example.com:5000", False),
        ("foo.localhost", True),
    ],
)
def test_loopback(host, loop):
    assert is_loopback(host) is loop


def test_familiar_name():
    assert parse_reference("busybox").familiar_name == "busybox"
    assert parse_reference("user/app:1").familiar_name == "user/app"
    assert parse_reference("localhost:5000/team/app").familiar_name == "localhost:5000/team/app"
