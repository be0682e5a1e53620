"""End to end: the ``regload`` command against the real registry in every mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import assert_clean_failure, image_ref, regload
from tests.support.skopeo import registry_flags, run_skopeo

UPLOAD_MODES = ("monolithic", "streamed", "chunked", "single-post")


@pytest.mark.registry
@pytest.mark.parametrize("mode", UPLOAD_MODES)
def test_push_then_pull_in_every_upload_mode(any_registry, mode, tmp_path):
    registry = any_registry
    repo = f"e2e/{mode}"
    seed = UPLOAD_MODES.index(mode) + 10 * len(registry.mode)
    spec = f"synthetic:layers=3,size=300KiB,seed={seed}"
    push = regload(
        "push",
        spec,
        image_ref(registry, repo, "v1"),
        "--upload-mode",
        mode,
        "--chunk-size",
        "100KiB",
        "--json",
        registry=registry,
    )
    assert push.code == 0, push.output
    pushed = push.json
    assert [b["action"] for b in pushed["blobs"]] == ["uploaded"] * 4
    assert pushed["bytes"] > 3 * 300 * 1024

    # The registry serves exactly what was pushed: skopeo reads the manifest digest back.
    inspect = json.loads(run_skopeo("inspect", *registry_flags(registry), registry.docker_ref(repo, "v1")))
    assert inspect["Digest"] == pushed["manifest_digest"]
    assert len(inspect["Layers"]) == 3

    pull = regload("pull", image_ref(registry, repo, "v1"), "--json", registry=registry)
    assert pull.code == 0, pull.output
    assert pull.json["manifest_digest"] == pushed["manifest_digest"]
    assert pull.json["bytes"] == pushed["bytes"] - len_manifest(registry, repo)

    # A second push finds every blob present and skips it after a HEAD.
    again = regload("push", spec, image_ref(registry, repo, "v2"), "--upload-mode", mode, "--json", registry=registry)
    assert again.code == 0, again.output
    assert [b["action"] for b in again.json["blobs"]] == ["exists"] * 4
    assert again.json["manifest_digest"] == pushed["manifest_digest"]


def len_manifest(registry, repo) -> int:
    raw = run_skopeo("inspect", "--raw", *registry_flags(registry), registry.docker_ref(repo, "v1"))
    return len(raw)


@pytest.mark.registry
def test_http2_is_negotiated_with_tls(registry_tls):
    ref = image_ref(registry_tls, "e2e/h2", "v1")
    push = regload(
        "push", "synthetic:layers=1,size=64KiB,seed=3", ref, "--registry-http2", "--json", registry=registry_tls
    )
    assert push.code == 0, push.output
    assert push.json["http"] == ["HTTP/2"]
    pull = regload("pull", ref, "--registry-http2", "--json", registry=registry_tls)
    assert pull.code == 0, pull.output
    assert pull.json["http"] == ["HTTP/2"]
    default = regload("pull", ref, "--json", registry=registry_tls)
    assert default.json["http"] == ["HTTP/1.1"]


@pytest.mark.registry
def test_tls_is_verified_by_default(registry_tls):
    run = regload("pull", "--registry", registry_tls.url, "e2e/none:v1")
    assert_clean_failure(run, 1, "certificate")
    insecure = regload("inspect", "--registry", registry_tls.url, "--registry-insecure", "e2e/none:v1")
    assert_clean_failure(insecure, 1, "404", "MANIFEST_UNKNOWN")


@pytest.mark.registry
def test_token_cache_and_scopes(registry_token):
    server = registry_token.token_server
    before = len(server.requests)
    ref = image_ref(registry_token, "e2e/token", "v1")
    push = regload("push", "synthetic:layers=4,size=32KiB,seed=99", ref, "--json", registry=registry_token)
    assert push.code == 0, push.output
    scopes = [scopes for scopes, _user in server.requests[before:]]
    # One token for the whole push (pull,push on the repository), not one per request.
    assert len(scopes) == 1, scopes
    assert any("repository:e2e/token:pull,push" in s for s in scopes[0])


@pytest.mark.registry
@pytest.mark.parametrize("registry_name", ["registry_basic", "registry_token"])
def test_wrong_password_is_refused_without_leaking_it(request, registry_name):
    registry = request.getfixturevalue(registry_name)
    secret = "wrong-Secret-5150"
    run = regload("pull", f"{registry.host}/e2e/x", "-u", registry.username, "--password-stdin", stdin=secret)
    assert_clean_failure(run, 1, "401")
    assert secret not in run.output


@pytest.mark.registry
def test_credentials_from_environment_and_docker_config(registry_basic, tmp_path):
    ref = f"{registry_basic.host}/e2e/envcreds:v1"
    env = {"REGLOAD_USERNAME": registry_basic.username, "REGLOAD_PASSWORD": registry_basic.password}
    push = regload("push", "synthetic:layers=1,size=1KiB,seed=5", ref, env=env)
    assert push.code == 0, push.output
    assert registry_basic.password not in push.output

    import base64

    auth = base64.b64encode(f"{registry_basic.username}:{registry_basic.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
    pull = regload("pull", ref, env={"DOCKER_CONFIG": str(tmp_path)})
    assert pull.code == 0, pull.output
    anonymous = regload("pull", ref, env={"DOCKER_CONFIG": str(tmp_path / "none")})
    assert_clean_failure(anonymous, 1, "401", "-u USER", "REGLOAD_USERNAME", "config.json")


@pytest.mark.registry
@pytest.mark.parametrize("registry_name", ["registry_basic", "registry_token"])
def test_credentials_asked_for_and_none_given_names_the_options_that_give_them(request, registry_name, tmp_path):
    registry = request.getfixturevalue(registry_name)
    run = regload("pull", f"{registry.host}/e2e/x:v1", env={"DOCKER_CONFIG": str(tmp_path)})
    assert_clean_failure(run, 1, "401", "(give them with -u USER and --password-stdin, REGLOAD_USERNAME")


@pytest.mark.registry
def test_https_to_a_plain_http_registry_says_so_and_how_to_ask_for_plain_http(registry_anon):
    run = regload("pull", "--registry", f"https://{registry_anon.host}", "e2e/x:v1")
    assert_clean_failure(run, 1, "the registry answered in plain HTTP, not TLS", "--plain-http")
    assert "WRONG_VERSION_NUMBER" not in run.output


@pytest.mark.registry
def test_tags_follow_pagination(registry_anon):
    for i in range(5):
        run = regload(
            "push",
            "synthetic:layers=1,size=1KiB,seed=1",
            image_ref(registry_anon, "e2e/tags", f"t{i}"),
            registry=registry_anon,
        )
        assert run.code == 0, run.output
    run = regload("tags", f"{registry_anon.host}/e2e/tags", "--page-size", "2", "--json")
    assert run.code == 0, run.output
    assert sorted(run.json["tags"]) == [f"t{i}" for i in range(5)]


@pytest.mark.registry
def test_push_by_digest_and_cross_repo_mount(registry_anon):
    spec = "synthetic:layers=2,size=16KiB,seed=77"
    first = regload("push", spec, image_ref(registry_anon, "e2e/mount-src", "v1"), "--json")
    assert first.code == 0, first.output
    digest = first.json["manifest_digest"]
    mounted = regload(
        "push",
        spec,
        image_ref(registry_anon, "e2e/mount-dst", digest),
        "--mount-from",
        "e2e/mount-src",
        "--no-check-existing",
        "--json",
    )
    assert mounted.code == 0, mounted.output
    assert [b["action"] for b in mounted.json["blobs"]] == ["mounted"] * 3
    wrong = regload("push", "synthetic:layers=2,size=16KiB,seed=78", image_ref(registry_anon, "e2e/mount-dst", digest))
    assert_clean_failure(wrong, 2, "digest")


@pytest.mark.registry
def test_inspect_and_pull_platform_from_index(registry_anon, tmp_path):
    from tests.support.images import make_oci_index_layout
    from tests.support.skopeo import skopeo_copy

    index = make_oci_index_layout(
        tmp_path / "multi",
        {
            "linux/amd64": [{"arch": b"amd64\n"}],
            "linux/arm64/v8": [{"arch": b"arm64\n"}],
        },
    )
    skopeo_copy(index.ref, registry_anon.docker_ref("e2e/multi", "v1"), registry=registry_anon, extra=["--all"])
    ref = image_ref(registry_anon, "e2e/multi", "v1")
    run = regload("inspect", ref, "--json")
    assert run.code == 0, run.output
    assert {m["platform"] for m in run.json["manifests"]} == {"linux/amd64", "linux/arm64/v8"}
    out = tmp_path / "rootfs"
    pull = regload("pull", ref, "--pull-platform", "linux/arm64", "-o", str(out), "--json")
    assert pull.code == 0, pull.output
    assert (out / "arch").read_bytes() == b"arm64\n"
    assert pull.json["index_digest"] == index.index.digest
    missing = regload("pull", ref, "--pull-platform", "linux/s390x")
    assert_clean_failure(missing, 1, "linux/s390x")


@pytest.mark.registry
@pytest.mark.parametrize("text", ["localhost:5000/UPPER/case", "bad:tag:x", "x@sha256:1234", "", "a//b"])
def test_malformed_references_exit_2(text, registry_anon):
    run = regload("pull", text)
    assert_clean_failure(run, 2, "invalid reference")


@pytest.mark.registry
def test_missing_image_names_the_spec_error(registry_anon, tmp_path):
    out = tmp_path / "out"
    run = regload("pull", image_ref(registry_anon, "e2e/absent", "nope"), "-o", str(out))
    assert_clean_failure(run, 1, "404", "MANIFEST_UNKNOWN")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.registry
def test_wrong_bytes_served_are_refused(registry_anon, tmp_path):
    ref = image_ref(registry_anon, "e2e/corrupt", "v1")
    push = regload("push", "synthetic:layers=1,size=64KiB,seed=4242", ref, "--json")
    assert push.code == 0, push.output
    layer = next(b for b in push.json["blobs"] if b["mediaType"].endswith("tar"))
    hexdigest = layer["digest"].split(":")[1]
    data = Path(registry_anon.registry.storage_dir, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")
    content = bytearray(data.read_bytes())
    content[1000] ^= 0xFF  # same size, other bytes
    data.write_bytes(bytes(content))
    out = tmp_path / "out"
    for args in ([], ["-o", str(out)], ["-o", str(out), "--format", "oci"]):
        run = regload("pull", ref, *args)
        assert_clean_failure(run, 1, "digest")
        assert not out.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.registry
def test_bad_sources_exit_2(registry_anon, tmp_path):
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"this is not a tarball at all" * 100)
    for source, needle in [
        (str(broken), "broken.tar"),
        (str(tmp_path / "absent.tar"), "absent.tar"),
        ("synthetic:layers=x", "layers"),
        ("synthetic:colour=blue", "colour"),
    ]:
        run = regload("push", source, image_ref(registry_anon, "e2e/bad", "v1"))
        assert_clean_failure(run, 2, needle)


@pytest.mark.registry
def test_bad_usage_exit_2(registry_anon):
    run = regload("push", "synthetic:layers=1", image_ref(registry_anon, "e2e/bad", "v1"), "--upload-mode", "telepathy")
    assert run.code == 2 and "Traceback" not in run.output
    run = regload("pull", image_ref(registry_anon, "e2e/bad", "v1"), "-H", "no colon here")
    assert_clean_failure(run, 2, "header")
    run = regload("pull", image_ref(registry_anon, "e2e/bad", "v1"), "--pull-jobs", "0")
    assert_clean_failure(run, 2, "--pull-jobs")


@pytest.mark.flows
def test_connection_refused_is_a_clean_error():
    run = regload("pull", "127.0.0.1:1/e2e/x:v1")
    assert_clean_failure(run, 1, "127.0.0.1:1")
