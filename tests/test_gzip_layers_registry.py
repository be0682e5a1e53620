"""Synthetic gzip layers against the real docker-registry and real peers: distribution accepts
the image, regload pulls and verifies it (blob digests and diff_ids), its rootfs and OCI sinks
unpack it, and skopeo copies it to an OCI layout that umoci unpacks to the same tree."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from regload import mediatypes as mt
from tests.support.cli import image_ref, regload
from tests.support.skopeo import skopeo_copy, skopeo_inspect
from tests.support.treecompare import assert_same_tree, snapshot_tree

pytestmark = pytest.mark.registry

SPEC = "synthetic:layers=3,size=1200KiB,seed=21,gzip=2.6"


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    done = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return bundle / "rootfs"


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


@pytest.fixture(scope="module")
def pushed(registry_anon, tmp_path_factory) -> tuple[str, dict, Path]:
    """The gzip synthetic image pushed by regload (with an audit line); (ref, push JSON, audit file)."""
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    ref = image_ref(registry_anon, "gzip/synthetic", "v1")
    run = regload("push", SPEC, ref, "--json", "--audit-file", str(audit))
    assert run.code == 0, run.output
    return ref, run.json, audit


def test_registry_accepts_the_image_and_regload_verifies_it(registry_anon, pushed) -> None:
    ref, result, audit = pushed
    layers = [b for b in result["blobs"] if b["action"] == "uploaded"]
    assert len(layers) == 4  # three layers and the config
    raw = skopeo_inspect(registry_anon.docker_ref("gzip/synthetic", "v1"), registry=registry_anon)
    assert len(raw["Layers"]) == 3
    pull = regload("pull", ref, "--json")  # verify and discard: every digest and size checked
    assert pull.code == 0, pull.output
    verify = regload("verify", str(audit), "--json")
    assert verify.code == 0, verify.output
    assert verify.json["summary"]["verified"] == 1 and verify.json["ok"]


def test_rootfs_and_oci_sinks_unpack_it_like_skopeo_and_umoci(registry_anon, pushed, tmp_path) -> None:
    ref, _, _ = pushed
    rootfs = tmp_path / "rootfs"
    run = regload("pull", ref, "-o", str(rootfs))  # the rootfs sink gunzips and checks each diff_id
    assert run.code == 0, run.output
    files = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*") if p.is_file())
    assert "regload/c/000000" in files and "regload/f" in files
    assert [f for f in files if f.startswith("regload/layer-")] == [
        f"regload/layer-{i}-{21:016x}.bin" for i in (1, 2, 3)
    ]

    # skopeo: registry -> OCI layout, blobs kept as they are; umoci unpacks them (Go's gzip reader)
    back = tmp_path / "skopeo"
    skopeo_copy(registry_anon.docker_ref("gzip/synthetic", "v1"), f"oci:{back}:v1", registry=registry_anon)
    index = json.loads((back / "index.json").read_text())
    manifest = json.loads(blob(back, index["manifests"][0]["digest"]))
    config = json.loads(blob(back, manifest["config"]["digest"]))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 3
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        data = blob(back, layer["digest"])
        assert len(data) == layer["size"] and abs(layer["size"] - 1200 * 1024) <= 1024
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
        raw = gzip.decompress(data)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
        assert len(raw) / len(data) == pytest.approx(2.6, rel=0.1)
    unpacked = umoci_unpack(back, "v1", tmp_path / "bundle")
    assert_same_tree(snapshot_tree(unpacked), snapshot_tree(rootfs))

    # regload's OCI sink writes the same blobs, which umoci unpacks too
    layout = tmp_path / "layout"
    run = regload("pull", ref, "--format", "oci", "-o", str(layout))
    assert run.code == 0, run.output
    for layer in manifest["layers"]:
        assert blob(layout, layer["digest"]) == blob(back, layer["digest"])
    tags = json.loads((layout / "index.json").read_text())["manifests"]
    tag = tags[0].get("annotations", {}).get("org.opencontainers.image.ref.name", "v1")
    again = umoci_unpack(layout, tag, tmp_path / "bundle2")
    assert_same_tree(snapshot_tree(again), snapshot_tree(rootfs))
