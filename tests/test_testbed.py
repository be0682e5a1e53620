"""The test bed itself, proven against real peers: docker-registry, skopeo and umoci."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from regload.local_registry import (
    LocalRegistry,
    RegistryBinaryNotFound,
    RegistryConfig,
    RegistryStartError,
    find_registry_binary,
)
from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    Dir,
    File,
    Hardlink,
    Layer,
    OciImage,
    Symlink,
    make_oci_index_layout,
    make_oci_layout,
    sha256_digest,
    umoci_unpack,
)
from tests.support.registries import RegistryFixture, http_request
from tests.support.skopeo import skopeo_copy, skopeo_inspect, skopeo_manifest
from tests.support.token_server import decode_jwt_claims

OCI_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


@pytest.mark.registry
def test_push_and_read_back(any_registry: RegistryFixture, tiny_image: OciImage) -> None:
    reg = any_registry
    ref = reg.docker_ref(f"testbed/{reg.mode}", "v1")
    skopeo_copy(tiny_image.ref, ref, registry=reg)

    # Same manifest bytes as the layout's: skopeo pushed it without conversion.
    served = skopeo_manifest(ref, registry=reg)
    assert sha256_digest(served) == tiny_image.manifest.digest
    assert skopeo_inspect(ref, registry=reg)["Digest"] == tiny_image.manifest.digest

    if reg.mode in ("anon", "tls", "prefix"):
        # Without skopeo: read it over the fixture's own URL (in prefix mode, the prefixed one).
        url = f"{reg.url}/v2/testbed/{reg.mode}/manifests/v1"
        context = reg.ssl_context() if reg.tls else None
        resp = http_request(url, headers={"Accept": OCI_ACCEPT}, context=context)
        assert resp.status == 200
        assert resp.body == served
        assert resp.headers["Docker-Content-Digest"] == tiny_image.manifest.digest


@pytest.mark.registry
def test_read_back_to_layout(registry_basic: RegistryFixture, tiny_image: OciImage, tmp_path: Path) -> None:
    ref = registry_basic.docker_ref("testbed/roundtrip")
    skopeo_copy(tiny_image.ref, ref, registry=registry_basic)
    skopeo_copy(ref, f"oci:{tmp_path / 'back'}:copy", registry=registry_basic)
    blobs = {p.name for p in (tmp_path / "back" / "blobs" / "sha256").iterdir()}
    assert {d.digest.split(":")[1] for d in tiny_image.layers} <= blobs


@pytest.mark.registry
@pytest.mark.parametrize("mode", ["basic", "token"])
def test_anonymous_access_refused(mode: str, request: pytest.FixtureRequest) -> None:
    reg: RegistryFixture = request.getfixturevalue(f"registry_{mode}")
    resp = http_request(reg.api_url)
    assert resp.status == 401
    challenge = resp.headers["WWW-Authenticate"]
    if mode == "basic":
        assert challenge.startswith("Basic ")
        assert http_request(reg.api_url, headers={"Authorization": reg.basic_auth() or ""}).status == 200
    else:
        assert reg.token_server is not None
        assert challenge.startswith("Bearer ")
        assert f'realm="{reg.token_server.realm}"' in challenge
        # Basic credentials are for the token server only: the registry wants a Bearer token.
        assert http_request(reg.api_url, headers={"Authorization": reg.basic_auth() or ""}).status == 401


@pytest.mark.registry
def test_token_server_called(registry_token: RegistryFixture, tiny_image: OciImage) -> None:
    server = registry_token.token_server
    assert server is not None
    before = len(server.requests)
    ref = registry_token.docker_ref("testbed/token-count")
    skopeo_copy(tiny_image.ref, ref, registry=registry_token)
    issued = server.requests[before:]
    assert issued, "skopeo pushed without asking the token server"
    assert all(user == "regload" for _, user in issued)
    assert any("repository:testbed/token-count:pull,push" in scopes for scopes, _ in issued)


@pytest.mark.registry
def test_token_server_issues_spec_tokens(registry_token: RegistryFixture) -> None:
    server = registry_token.token_server
    assert server is not None
    scope = "repository:testbed/direct:pull,push"
    url = f"{server.realm}?service={server.service}&scope={scope}"
    assert http_request(url).status == 401
    wrong = "Basic " + base64.b64encode(b"regload:wrong").decode()
    assert http_request(url, headers={"Authorization": wrong}).status == 401

    resp = http_request(url, headers={"Authorization": registry_token.basic_auth() or ""})
    assert resp.status == 200
    answer = json.loads(resp.body)
    assert answer["token"] == answer["access_token"]
    assert answer["expires_in"] == server.expires_in
    claims = decode_jwt_claims(answer["token"])
    assert claims["aud"] == server.service
    assert claims["iss"] == server.issuer
    assert claims["access"] == [{"type": "repository", "name": "testbed/direct", "actions": ["pull", "push"]}]

    # The registry accepts it: an upload session starts.
    bearer = {"Authorization": f"Bearer {answer['token']}"}
    post = http_request(f"{registry_token.url}/v2/testbed/direct/blobs/uploads/", method="POST", headers=bearer)
    assert post.status == 202


@pytest.mark.registry
def test_tls_registry_negotiates_http2(registry_tls: RegistryFixture) -> None:
    assert registry_tls.ca_cert is not None
    context = registry_tls.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    host, port = registry_tls.host.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"

    # And a real HTTP/2 request, verified against the test CA (IP SAN this time).
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "--cacert",
            str(registry_tls.ca_cert),
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            registry_tls.api_url,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert out.stdout == "2 200"

    # Without the CA, verification fails: the registry is not accidentally trusted.
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.registry
def test_prefix_registry_serves_only_under_prefix(registry_prefix: RegistryFixture) -> None:
    assert registry_prefix.prefix == "/some/prefix/"
    assert registry_prefix.url.endswith("/some/prefix")
    assert http_request(registry_prefix.api_url).status == 200
    assert http_request(f"http://{registry_prefix.host}/v2/").status == 404
    post = http_request(f"{registry_prefix.url}/v2/testbed/p/blobs/uploads/", method="POST")
    assert post.status == 202
    assert "/some/prefix/v2/testbed/p/blobs/uploads/" in post.headers["Location"]


def _push_blob(url: str, repo: str, data: bytes) -> str:
    """Monolithic upload with urllib: POST then PUT ?digest=."""
    digest = sha256_digest(data)
    post = http_request(f"{url}/v2/{repo}/blobs/uploads/", method="POST")
    assert post.status == 202, post
    location = post.headers["Location"]
    put = http_request(
        f"{location}&digest={digest}",
        method="PUT",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status == 201, put
    return digest


@pytest.mark.registry
def test_local_registry_restart_keeps_port_and_content() -> None:
    with LocalRegistry() as registry:
        url, pid = registry.url, registry.pid
        digest = _push_blob(url, "restart/me", b"kept across restarts")
        registry.restart()
        assert registry.url == url
        assert registry.pid != pid
        assert http_request(f"{url}/v2/restart/me/blobs/{digest}", method="HEAD").status == 200
        workdir = registry.workdir
        process_pid = registry.pid
    assert not workdir.exists()
    assert process_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(process_pid, 0)


@pytest.mark.registry
def test_local_registry_start_failure_shows_log(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    registry = LocalRegistry(tls=(missing, missing), start_timeout=10)
    with pytest.raises(RegistryStartError) as err:
        registry.start()
    assert "missing.pem" in str(err.value)  # the registry's own complaint, from its log
    assert not registry.is_running()
    registry.stop()


@pytest.mark.unit
def test_find_registry_binary_explains_install(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Path(find_registry_binary()).exists()
    monkeypatch.setenv("REGLOAD_REGISTRY_BINARY", "/nonexistent/registry")
    with pytest.raises(RegistryBinaryNotFound, match="apt-get install docker-registry"):
        find_registry_binary()
    monkeypatch.delenv("REGLOAD_REGISTRY_BINARY")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RegistryBinaryNotFound, match="apt-get install docker-registry"):
        find_registry_binary()


@pytest.mark.unit
def test_registry_config_yaml_quotes_values(tmp_path: Path) -> None:
    config = RegistryConfig(prefix="/a: b/", relative_urls=True)
    text = config.to_yaml(addr="127.0.0.1:1", storage_dir=tmp_path / 'we"ird', secret="s")
    assert 'prefix: "/a: b/"' in text
    assert "relativeurls: true" in text
    assert '\\"ird' in text
    with pytest.raises(ValueError, match="prefix"):
        RegistryConfig(prefix="no/slashes")


@pytest.mark.registry
def test_umoci_unpacks_multi_layer_layout(tmp_path: Path) -> None:
    image = make_oci_layout(
        tmp_path / "oci",
        [
            {
                "etc/config": File(b"v1\n", mode=0o600),
                "bin/tool": File(b"#!/bin/sh\n", mode=0o755),
                "bin/alias": Symlink("tool"),
                "bin/copy": Hardlink("bin/tool"),
                "var/cache/old": b"stale",
                "gone": b"deleted later",
                "empty": Dir(mode=0o700),
            },
            {
                "gone": WHITEOUT,
                "var/cache": OPAQUE,
                "var/cache/new": b"fresh",
                "etc/config": b"v2\n",
            },
        ],
        tag="multi",
    )
    rootfs = umoci_unpack(image, tmp_path / "bundle")
    assert (rootfs / "etc/config").read_bytes() == b"v2\n"
    assert stat.S_IMODE((rootfs / "bin/tool").stat().st_mode) == 0o755
    assert os.readlink(rootfs / "bin/alias") == "tool"
    assert (rootfs / "bin/copy").stat().st_ino == (rootfs / "bin/tool").stat().st_ino
    assert not (rootfs / "gone").exists()
    assert sorted(p.name for p in (rootfs / "var/cache").iterdir()) == ["new"]
    assert stat.S_IMODE((rootfs / "empty").stat().st_mode) == 0o700


@pytest.mark.unit
def test_layouts_are_reproducible(tmp_path: Path) -> None:
    layers: list[Layer] = [{"a/b": b"x", "a/c": Symlink("b")}, {"a/b": WHITEOUT}]
    first = make_oci_layout(tmp_path / "one", layers)
    second = make_oci_layout(tmp_path / "two", layers)
    assert first.manifest == second.manifest
    assert len(first.layers) == 2
    assert len(first.diff_ids) == 2


@pytest.mark.registry
def test_multi_platform_index_pushes(registry_anon: RegistryFixture, tmp_path: Path) -> None:
    index = make_oci_index_layout(
        tmp_path / "multi",
        {"linux/amd64": [{"arch": b"amd64"}], "linux/arm64/v8": [{"arch": b"arm64"}]},
    )
    ref = registry_anon.docker_ref("testbed/multi")
    skopeo_copy(index.ref, ref, registry=registry_anon, extra=["--all"])
    assert sha256_digest(skopeo_manifest(ref, registry=registry_anon)) == index.index.digest


@pytest.mark.registry
def test_registry_token_expiry_has_60s_leeway(registry_token: RegistryFixture) -> None:
    """distribution 2.8 accepts a token until ``exp`` + 60 s (token.Leeway): a test of token
    renewal must count token requests; only a token issued already ~2 min expired is refused."""
    server = registry_token.token_server
    assert server is not None
    scope = "repository:testbed/expiry:pull,push"
    url = f"{server.realm}?service={server.service}&scope={scope}"
    upload = f"{registry_token.url}/v2/testbed/expiry/blobs/uploads/"
    saved = server.expires_in
    statuses = []
    try:
        for expires_in in (-30, -120):
            server.expires_in = expires_in
            token = json.loads(http_request(url, headers={"Authorization": registry_token.basic_auth() or ""}).body)
            bearer = {"Authorization": f"Bearer {token['token']}"}
            statuses.append(http_request(upload, method="POST", headers=bearer).status)
    finally:
        server.expires_in = saved
    assert statuses == [202, 401]
