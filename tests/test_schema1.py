"""End to end: ``regload pull`` of a signed Docker schema 1 image from the real registry, into
every output, checked against umoci's unpacking of the same layers and read back by skopeo.

The image has two real layers and two throwaway ones (the canonical empty tar), as
``docker build`` made them: the throwaway layers must be left out of the rootfs and of the
config's diff_ids, and the digest is over the signed payload, not over the bytes served.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from regload.local_registry import LocalRegistry, RegistryConfig
from regload.manifest import Schema1Manifest, parse_manifest
from tests.support.cli import assert_clean_failure, image_ref, regload
from tests.support.images import (
    OPAQUE,
    WHITEOUT,
    Dir,
    File,
    Layer,
    Symlink,
    make_oci_layout,
    pseudo_random_bytes,
    umoci_unpack,
)
from tests.support.layers import umoci_rootfs
from tests.support.registries import RegistryFixture, http_request
from tests.support.schema1 import (
    EMPTY_LAYER_DIGEST,
    MEDIA_TYPE,
    Schema1Image,
    V1Layer,
    make_image,
    push_image,
    put_manifest,
    unsign,
)
from tests.support.skopeo import skopeo_copy, skopeo_inspect
from tests.support.treecompare import assert_same_tree, snapshot_tree

pytestmark = pytest.mark.registry

REPO, TAG = "schema1/app", "v1"
BASE: Layer = {
    "bin/tool": File(b"#!/bin/sh\necho schema1\n", mode=0o755),
    "bin/alias": Symlink("tool"),
    "etc/hostname": b"base\n",
    "etc/motd": b"welcome\n",
    "var/cache/old": b"old\n",
    "tmp": Dir(mode=0o1777),
}
TOP: Layer = {
    "etc/motd": WHITEOUT,
    "etc/hostname": b"schema1\n",
    "var/cache": OPAQUE,
    "var/cache/new": b"new\n",
    "usr/lib/tool": Symlink("/bin/tool"),
}
CONFIG = {"Env": ["PATH=/bin", "GREETING=hello"], "Cmd": ["/bin/tool"]}
STEPS = [
    V1Layer.files(BASE, "#(nop) ADD file:base in /"),
    V1Layer.empty("#(nop) ENV GREETING=hello"),
    V1Layer.files(TOP, "rm /etc/motd && echo schema1 > /etc/hostname"),
    V1Layer.empty('#(nop) CMD ["/bin/tool"]'),
]


@pytest.fixture(scope="module")
def registry() -> Iterator[RegistryFixture]:
    bed = RegistryFixture("anon", LocalRegistry(config=RegistryConfig(schema1=True)).start())
    yield bed
    bed.close()


@pytest.fixture(scope="module")
def image(registry) -> Schema1Image:
    image = make_image(REPO, TAG, STEPS, CONFIG)
    push_image(registry, REPO, TAG, image)
    return image


@pytest.fixture(scope="module")
def expected_tree(tmp_path_factory):
    """umoci's unpacking of the two real layers, written as an ordinary OCI image."""
    work = tmp_path_factory.mktemp("schema1-expected")
    return snapshot_tree(umoci_unpack(make_oci_layout(work / "layout", [BASE, TOP]), work / "bundle"))


def ref(registry, reference: str = TAG) -> str:
    return image_ref(registry, REPO, reference)


def test_registry_verifies_our_signature(registry, image):
    """The fixture's PUT succeeded; a broken signature is refused, so that proves it valid."""
    served = http_request(f"{registry.api_url}{REPO}/manifests/{TAG}")
    assert served.headers["Content-Type"] == MEDIA_TYPE
    assert served.headers["Docker-Content-Digest"] == image.digest
    assert unsign(served.body) == image.payload  # signed again by the registry, same payload
    signature = json.loads(image.manifest)["signatures"][0]["signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]  # another r
    forged = image.manifest.replace(signature.encode(), flipped.encode())
    status, _, body = put_manifest(registry, REPO, "forged", forged)
    assert status == 400 and b"MANIFEST_UNVERIFIED" in body, body


def test_digest_and_layers_come_from_the_signed_payload(image):
    """Served bytes past formatLength are not covered by the digest: a second fsLayers put
    there (JSON parsers take the last duplicate key) must not replace the signed one."""
    fake = json.dumps([{"blobSum": "sha256:" + "0" * 64}])
    served = image.manifest.rstrip()[:-1].rstrip() + f',\n   "fsLayers": {fake}\n}}'.encode()
    assert json.loads(served)["fsLayers"] != json.loads(image.payload)["fsLayers"]
    manifest = parse_manifest(served, MEDIA_TYPE)
    assert isinstance(manifest, Schema1Manifest)
    assert str(manifest.digest) == image.digest
    assert [str(d.digest) for d in manifest.layers] == [step.digest for step in STEPS]


def test_pull_verifies_schema1(registry, image):
    run = regload("pull", ref(registry), "--json")
    assert run.code == 0, run.output
    out = run.json
    assert out["media_type"] == MEDIA_TYPE
    assert out["manifest_digest"] == image.digest
    assert out["config_digest"] is None
    real = image.real_layers
    assert [layer["digest"] for layer in out["layers"]] == [layer.digest for layer in real]  # no throwaway layers
    assert out["bytes"] == sum(len(layer.blob) for layer in real)


def test_pull_by_digest(registry, image, tmp_path):
    run = regload("pull", ref(registry, image.digest), "-o", str(tmp_path / "rootfs"), "--json")
    assert run.code == 0, run.output
    assert run.json["manifest_digest"] == image.digest


def test_inspect_lists_every_fs_layer(registry, image):
    run = regload("inspect", ref(registry), "--json")
    assert run.code == 0, run.output
    assert run.json["mediaType"] == MEDIA_TYPE
    assert run.json["digest"] == image.digest
    assert [layer["digest"] for layer in run.json["layers"]] == [step.digest for step in STEPS]
    assert all(layer["size"] == -1 for layer in run.json["layers"])  # schema 1 has no sizes
    human = regload("inspect", ref(registry))
    assert human.code == 0 and human.stdout.count("size unknown") == len(STEPS), human.output


def test_pull_rootfs(registry, image, expected_tree, tmp_path):
    out = tmp_path / "rootfs"
    run = regload("pull", ref(registry), "-o", str(out))
    assert run.code == 0, run.output
    assert_same_tree(expected_tree, snapshot_tree(out))


def test_skopeo_reads_the_same_image(registry, image, expected_tree, tmp_path):
    """The peer's view of the pushed image: the same tree, the same diff_ids."""
    assert skopeo_inspect(registry.docker_ref(REPO, TAG), registry=registry)["Digest"] == image.digest
    skopeo_copy(registry.docker_ref(REPO, TAG), f"oci:{tmp_path / 'layout'}:{TAG}", registry=registry)
    assert_same_tree(expected_tree, snapshot_tree(umoci_rootfs(f"{tmp_path / 'layout'}:{TAG}", tmp_path / "bundle")))
    config = skopeo_inspect(f"oci:{tmp_path / 'layout'}:{TAG}", config=True)
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.real_layers]


def test_pull_oci_layout(registry, image, expected_tree, tmp_path):
    out = tmp_path / "layout"
    run = regload("pull", ref(registry), "-o", str(out), "--format", "oci")
    assert run.code == 0, run.output
    inspected = skopeo_inspect(f"oci:{out}:{TAG}")
    assert inspected["Layers"] == [layer.digest for layer in image.real_layers]
    assert EMPTY_LAYER_DIGEST not in inspected["Layers"]
    config = skopeo_inspect(f"oci:{out}:{TAG}", config=True)
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in image.real_layers]
    assert config["config"]["Cmd"] == CONFIG["Cmd"] and config["config"]["Env"] == CONFIG["Env"]
    assert [bool(h.get("empty_layer")) for h in config["history"]] == [step.throwaway for step in STEPS]
    assert_same_tree(expected_tree, snapshot_tree(umoci_rootfs(f"{out}:{TAG}", tmp_path / "bundle")))


def test_pull_docker_archive(registry, image, expected_tree, tmp_path):
    archive = tmp_path / "image.tar"
    run = regload("pull", ref(registry), "-o", str(archive), "--format", "docker-archive")
    assert run.code == 0, run.output
    with tarfile.open(archive) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))
        config = json.load(tar.extractfile(entry["Config"]))
    assert entry["RepoTags"] == [f"{registry.host}/{REPO}:{TAG}"]
    diff_ids = [layer.diff_id for layer in image.real_layers]
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert entry["Layers"] == [f"{d.split(':')[1]}/layer.tar" for d in diff_ids]
    skopeo_copy(f"docker-archive:{archive}", f"oci:{tmp_path / 'back'}:x")
    assert_same_tree(expected_tree, snapshot_tree(umoci_rootfs(f"{tmp_path / 'back'}:x", tmp_path / "bundle")))


def test_tampered_layer_is_refused(registry, tmp_path):
    repo = "schema1/tampered"
    steps = [
        V1Layer.files({"data": pseudo_random_bytes(64 * 1024, seed=1)}, "ADD data /"),
        V1Layer.empty('#(nop) CMD ["x"]'),
    ]
    push_image(registry, repo, TAG, make_image(repo, TAG, steps, {"Cmd": ["x"]}))
    hexdigest = steps[0].digest.split(":")[1]
    data = Path(registry.registry.storage_dir, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, other bytes
    data.write_bytes(bytes(content))
    work = tmp_path / "work"
    work.mkdir()
    out = str(work / "out")
    for args in ([], ["-o", out], ["-o", out, "--format", "oci"], ["-o", out, "--format", "docker-archive"]):
        run = regload("pull", image_ref(registry, repo, TAG), *args)
        assert_clean_failure(run, 1, "digest")
        assert list(work.iterdir()) == []  # nothing written, no staging left behind
