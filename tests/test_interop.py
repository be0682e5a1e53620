"""Interop both ways with real peers: skopeo writes, regload reads (and the reverse), and the
extracted trees match what umoci unpacks, byte for byte."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import assert_clean_failure, image_ref, regload
from tests.support.images import OPAQUE, WHITEOUT, Dir, File, Hardlink, OciImage, Symlink, make_oci_layout, umoci_unpack
from tests.support.skopeo import skopeo_copy
from tests.support.treecompare import assert_same_tree, snapshot_tree

pytestmark = pytest.mark.registry

RICH_LAYERS = [
    {
        "bin/tool": File(b"#!/bin/sh\necho hi\n", mode=0o755),
        "bin/alias": Symlink("tool"),
        "bin/abs": Symlink("/bin/tool"),
        "bin/hard": Hardlink("bin/tool"),
        "etc/hostname": b"bed\n",
        "etc/secret": File(b"s3cret\n", mode=0o600),
        "usr/share/doc/README": b"readme\n" * 100,
        "var/cache/old/a": b"a",
        "var/cache/old/b": b"b",
        "tmp": Dir(mode=0o1777),
        "setuid": File(b"x", mode=0o4755),
        "big.bin": File(bytes(range(256)) * 4096),
    },
    {
        "etc/hostname": WHITEOUT,
        "var/cache": OPAQUE,
        "var/cache/new": b"fresh\n",
        "bin/alias": Symlink("../etc/secret"),
        "usr/share/doc/README": b"replaced\n",
        "opt/link-dir": Symlink("/usr/share"),
    },
    {
        "etc/extra": File(b"extra\n", mode=0o640),
        "usr/share/doc": WHITEOUT,
    },
]


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """``umoci unpack`` of a layout written by skopeo; returns the rootfs."""
    done = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return bundle / "rootfs"


@pytest.fixture(scope="module")
def rich_image(tmp_path_factory) -> OciImage:
    return make_oci_layout(tmp_path_factory.mktemp("rich") / "layout", RICH_LAYERS, tag="v1")


@pytest.fixture(scope="module")
def rich_tree(rich_image, tmp_path_factory):
    return snapshot_tree(umoci_unpack(rich_image, tmp_path_factory.mktemp("umoci") / "bundle"))


def test_skopeo_pushed_oci_image_extracts_like_umoci(any_registry, rich_image, rich_tree, tmp_path):
    skopeo_copy(rich_image.ref, any_registry.docker_ref("interop/rich", "v1"), registry=any_registry)
    out = tmp_path / "rootfs"
    run = regload("pull", image_ref(any_registry, "interop/rich", "v1"), "-o", str(out), registry=any_registry)
    assert run.code == 0, run.output
    assert_same_tree(rich_tree, snapshot_tree(out))


def test_skopeo_docker_archive_pushed_by_regload(registry_anon, rich_image, rich_tree, tmp_path):
    """docker-archive written by skopeo → regload push (gzip on the way) → skopeo copy back."""
    archive = tmp_path / "image.tar"
    skopeo_copy(rich_image.ref, f"docker-archive:{archive}:interop/archive:v1")
    ref = image_ref(registry_anon, "interop/archive", "v1")
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    push = regload("push", str(archive), ref, "--json", env=cache)
    assert push.code == 0, push.output
    layers = push.json["blobs"][:-1]
    assert all(b["mediaType"].endswith("gzip") for b in layers)
    # No digest was known: each layer was compressed while it uploaded, and what it compressed
    # to is remembered, so that a second push asks the registry first and skips every layer.
    assert [b["action"] for b in layers] == ["uploaded"] * len(layers)
    remembered = json.loads((tmp_path / "cache" / "regload" / "gzip-digests.json").read_text())
    assert sorted(d for d, _ in remembered.values()) == sorted(b["digest"] for b in layers)
    again = regload("push", str(archive), image_ref(registry_anon, "interop/archive", "v2"), "--json", env=cache)
    assert again.code == 0, again.output
    assert [b["action"] for b in again.json["blobs"]] == ["exists"] * len(push.json["blobs"])
    assert again.json["manifest_digest"] == push.json["manifest_digest"]
    back = tmp_path / "back"
    skopeo_copy(registry_anon.docker_ref("interop/archive", "v1"), f"oci:{back}:v1", registry=registry_anon)
    unpacked = unpack(back, "v1", tmp_path / "bundle")
    assert_same_tree(rich_tree, snapshot_tree(unpacked))


@pytest.mark.parametrize("mode", ["monolithic", "streamed", "chunked", "single-post"])
def test_regload_pushed_oci_layout_is_read_by_skopeo(registry_token, rich_image, rich_tree, tmp_path, mode):
    repo = f"interop/oci-{mode}"
    push = regload(
        "push",
        f"{rich_image.layout}:v1",
        image_ref(registry_token, repo, "v1"),
        "--upload-mode",
        mode,
        "--chunk-size",
        "4KiB",
        "--json",
        registry=registry_token,
    )
    assert push.code == 0, push.output
    assert push.json["manifest_digest"] == rich_image.manifest.digest  # pushed unchanged
    back = tmp_path / "back"
    skopeo_copy(registry_token.docker_ref(repo, "v1"), f"oci:{back}:v1", registry=registry_token)
    unpacked = unpack(back, "v1", tmp_path / "bundle")
    assert_same_tree(rich_tree, snapshot_tree(unpacked))


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_regload_outputs_are_read_by_skopeo_and_umoci(registry_anon, rich_image, rich_tree, tmp_path, fmt):
    skopeo_copy(rich_image.ref, registry_anon.docker_ref("interop/out", "v1"), registry=registry_anon)
    out = tmp_path / ("image.tar" if fmt == "docker-archive" else "layout")
    run = regload("pull", image_ref(registry_anon, "interop/out", "v1"), "-o", str(out), "--format", fmt)
    assert run.code == 0, run.output
    back = tmp_path / "back"
    source = f"docker-archive:{out}" if fmt == "docker-archive" else f"oci:{out}:v1"
    skopeo_copy(source, f"oci:{back}:v1")
    unpacked = unpack(back, "v1", tmp_path / "bundle")
    assert_same_tree(rich_tree, snapshot_tree(unpacked))


def test_synthetic_image_is_unpacked_by_umoci(registry_anon, tmp_path):
    ref = image_ref(registry_anon, "interop/synthetic", "v1")
    assert regload("push", "synthetic:layers=2,size=100KiB,seed=11", ref).code == 0
    back = tmp_path / "back"
    skopeo_copy(registry_anon.docker_ref("interop/synthetic", "v1"), f"oci:{back}:v1", registry=registry_anon)
    unpacked = unpack(back, "v1", tmp_path / "bundle")
    out = tmp_path / "rootfs"
    assert regload("pull", ref, "-o", str(out)).code == 0
    assert_same_tree(snapshot_tree(unpacked), snapshot_tree(out))
    sizes = sorted(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert sizes == [100 * 1024, 100 * 1024]


HOSTILE = {
    "dotdot": {"../evil": b"owned\n"},
    "dotdot-inside": {"a/../../evil": b"owned\n"},
    "absolute": {"/tmp/regload-evil-abs": b"owned\n"},
    "symlink-escape": {"link": Symlink("../../.."), "link/evil": b"owned\n"},
    "absolute-symlink-escape": {"link": Symlink("/tmp"), "link/regload-evil-abs": b"owned\n"},
    "hardlink-escape": {"evil": Hardlink("../../etc/passwd")},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_traversal_layers_are_refused(registry_anon, tmp_path, case):
    image = make_oci_layout(tmp_path / "layout", [HOSTILE[case]], tag="v1", auto_parents=False)
    ref = image_ref(registry_anon, f"interop/hostile-{case}", "v1")
    push = regload("push", f"{image.layout}:v1", ref)
    assert push.code == 0, push.output
    work = tmp_path / "work"
    work.mkdir()
    out = work / "rootfs"
    run = regload("pull", ref, "-o", str(out))
    assert_clean_failure(run, 1, "evil")
    assert list(work.iterdir()) == []  # nothing half-written, no staging left behind
    assert not Path("/tmp/regload-evil-abs").exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
