"""Real-world trees, end to end against the real registry and compared with umoci.

Small images hide descriptor leaks: every pull and push here runs with the child's open-files
limit lowered (256 or 512), far below the tens of thousands of directories it handles, so a
descriptor kept open per entry fails at once. gevent ≥ 25.8.1's patched ``os.close`` (the CLI
and Locust patch the standard library) defers closing directories to the event loop, which
bulk file work never lets run: see ``regload.fds``.

- A generated distribution-sized image (``tests.support.bigtree``): >20,000 entries and >5,000
  directories, merged-/usr symlinks, hard links across directories, whiteouts (of a whole tree
  among them) and opaque directories in later layers, files written through the symlinks.
- A real Debian bookworm minbase rootfs made by debootstrap, as a two-layer image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from tests.support import debian
from tests.support.bigtree import make_big_image
from tests.support.cli import assert_clean_failure, regload
from tests.support.images import OciImage, umoci_unpack, with_diff_ids
from tests.support.locust_run import TEST_LOCUSTFILES, Locust
from tests.support.registries import RegistryFixture
from tests.support.skopeo import skopeo_copy
from tests.support.treecompare import Snapshot, assert_same_tree, snapshot_tree

LIMIT = 256  # open files for each regload child: a few dozen are in use before any entry
REPOSITORY = "trees/big"
MIN_ENTRIES, MIN_DIRS = 20_000, 5_000


@pytest.fixture(scope="module")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    return make_big_image(tmp_path_factory.mktemp("big") / "layout")


@pytest.fixture(scope="module")
def big_tree(big_image: OciImage, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """What umoci unpacks, the reference; the size the tests promise is checked here."""
    tree = snapshot_tree(umoci_unpack(big_image, tmp_path_factory.mktemp("umoci") / "bundle", timeout=600))
    dirs = sum(1 for entry in tree.values() if entry["type"] == "dir")
    assert len(tree) >= MIN_ENTRIES and dirs >= MIN_DIRS, (len(tree), dirs)
    assert {tree[link].get("target") for link in ("bin", "sbin", "lib", "lib64")} == {
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
    }
    assert any("hardlinks" in entry for entry in tree.values())
    return tree


@pytest.fixture(scope="module")
def big_pushed(big_image: OciImage, registry_anon: RegistryFixture) -> str:
    """The big image in the registry, pushed by skopeo; returns ``host/repository:tag``."""
    skopeo_copy(big_image.ref, registry_anon.docker_ref(REPOSITORY, "v1"), registry=registry_anon)
    return f"{registry_anon.host}/{REPOSITORY}:v1"


def only_entry(parent: Path) -> Path:
    """The one entry in ``parent``: nothing else (no staging directory) was left beside it."""
    entries = list(parent.iterdir())
    assert len(entries) == 1, entries
    return entries[0]


@pytest.mark.registry
def test_big_image_pulls_to_a_rootfs_like_umoci_within_256_descriptors(big_pushed, big_tree, tmp_path):
    out = tmp_path / "rootfs"
    run = regload("pull", big_pushed, "--output", str(out), max_open_files=LIMIT, timeout=600)
    assert run.code == 0, run.output
    assert only_entry(tmp_path) == out
    assert_same_tree(big_tree, snapshot_tree(out))


@pytest.mark.registry
def test_big_image_pulls_to_oci_and_docker_archive_within_256_descriptors(
    big_image, big_pushed, big_tree, registry_anon, tmp_path
):
    """The layout and archive writers under the same limit; the archive then goes back through
    regload push (the docker-save source) and comes out as the same rootfs."""
    layout = tmp_path / "oci" / "layout"
    layout.parent.mkdir()
    run = regload("pull", big_pushed, "--format", "oci", "--output", str(layout), max_open_files=LIMIT, timeout=600)
    assert run.code == 0, run.output
    assert only_entry(layout.parent) == layout
    for layer in big_image.layers:  # the blobs, byte for byte
        assert _sha256(layout / "blobs" / "sha256" / layer.digest.split(":")[1]) == layer.digest

    archive = tmp_path / "archive" / "big.tar"
    archive.parent.mkdir()
    args = ["--format", "docker-archive", "--output", str(archive)]
    run = regload("pull", big_pushed, *args, max_open_files=LIMIT, timeout=600)
    assert run.code == 0, run.output
    assert only_entry(archive.parent) == archive
    with tarfile.open(archive) as tar:
        entry = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        assert [_sha256_of(tar, name) for name in entry["Layers"]] == list(big_image.diff_ids)

    # As it is, and gzip-compressed (the default: compressed while it uploads).
    for compression in ("none", "gzip"):
        again = f"{registry_anon.host}/{REPOSITORY}-again-{compression}:v1"
        run = regload("push", str(archive), again, "--compression", compression, max_open_files=LIMIT, timeout=600)
        assert run.code == 0, run.output
        out = tmp_path / f"rootfs-{compression}"
        run = regload("pull", again, "--output", str(out), max_open_files=LIMIT, timeout=600)
        assert run.code == 0, run.output
        assert_same_tree(big_tree, snapshot_tree(out))


@pytest.mark.registry
def test_big_layout_pushes_unchanged_within_256_descriptors(big_image, registry_anon):
    ref = f"{registry_anon.host}/{REPOSITORY}-pushed:v1"
    run = regload("push", str(big_image.layout) + ":big", ref, "--json", max_open_files=LIMIT, timeout=600)
    assert run.code == 0, run.output
    assert run.json["manifest_digest"] == big_image.manifest.digest  # the layout's manifest, byte for byte


@pytest.mark.registry
def test_a_big_pull_that_fails_at_its_last_layer_leaves_nothing(big_image, registry_anon, tmp_path):
    """Two layers of tens of thousands of entries extracted, then the last one does not match
    its diff_id: the error names it, and the whole staging tree is removed, within the limit."""
    wrong = "sha256:" + "0" * 64
    broken = with_diff_ids(big_image, [*big_image.diff_ids[:-1], wrong], tag="broken")
    skopeo_copy(broken.ref, registry_anon.docker_ref(REPOSITORY, "broken"), registry=registry_anon)
    out = tmp_path / "rootfs"
    ref = f"{registry_anon.host}/{REPOSITORY}:broken"
    run = regload("pull", ref, "--output", str(out), max_open_files=LIMIT, timeout=600)
    assert_clean_failure(run, 1, "diff_id", "sha256:000000000000")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.locust_run
def test_a_locust_process_pulls_the_big_image_to_rootfs_and_cleans_its_registry_within_256_descriptors(
    big_image, big_tree, tmp_path
):
    """Inside Locust (which patches the standard library itself): a user unpacks the big image
    twice while PullUsers pull a pool of 150 images, and at the end the embedded registry's
    storage (thousands of directories) is removed."""
    out = tmp_path / "out"
    out.mkdir()
    args = ["--headless", "-u", "2", "-r", "2", "-t", "240s", "--json-file", str(tmp_path / "run")]
    args += ["--pull-pool-size", "150", "--pull-pool-layers", "1", "--pull-pool-layer-size", "1KiB"]
    env = {"REGLOAD_TEST_LAYOUT": f"{big_image.layout}:big", "REGLOAD_TEST_OUT": str(out), "REGLOAD_TEST_PULLS": "2"}
    locust = Locust(
        [*args, "RootfsPuller", "PullUser"],
        tmp_path,
        name="locust",
        env=env,
        locustfile=TEST_LOCUSTFILES / "rootfs_pull.py",
        max_open_files=LIMIT,
    )
    try:
        code = locust.wait(300)
    finally:
        locust.kill()
    assert f"System open file limit '{LIMIT}'" in locust.stderr, locust.output[-4000:]  # it held
    assert "pull pool ready: 150 images" in locust.stderr, locust.output[-4000:]
    assert code == 0, locust.output[-6000:]
    assert "Traceback" not in locust.output, locust.output[-6000:]
    stats = {(e["method"], e["name"]): e for e in json.loads((tmp_path / "run.json").read_text())}
    assert all(e["num_failures"] == 0 for e in stats.values()), stats
    assert stats[("PULL", "image")]["num_requests"] >= 2
    assert sorted(p.name for p in out.iterdir()) == ["rootfs-0", "rootfs-1"]
    for rootfs in out.iterdir():
        assert_same_tree(big_tree, snapshot_tree(rootfs))
    storage = Path(re.search(r"\(storage (\S+)\)", locust.stderr)[1])  # type: ignore[index]
    assert not storage.parent.exists(), "the embedded registry's files are left behind"


@pytest.fixture(scope="module")
def debian_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root (CI runs the suite as root)")
    rootfs = debian.debootstrap(tmp_path_factory.mktemp("debian") / "rootfs")
    return debian.debian_image(tmp_path_factory.mktemp("debian-image") / "layout", rootfs)


@pytest.mark.registry
def test_debian_minbase_pulls_to_a_rootfs_like_umoci_within_512_descriptors(debian_image, registry_anon, tmp_path):
    skopeo_copy(debian_image.ref, registry_anon.docker_ref("acc/debian", "v2"), registry=registry_anon)
    out = tmp_path / "pulled" / "rootfs"
    out.parent.mkdir()
    ref = f"{registry_anon.host}/acc/debian:v2"
    run = regload("pull", ref, "--output", str(out), max_open_files=512, timeout=600)
    assert run.code == 0, run.output
    assert only_entry(out.parent) == out
    theirs = snapshot_tree(umoci_unpack(debian_image, tmp_path / "umoci", timeout=600))
    ours = snapshot_tree(out)
    assert len(ours) > 5_000 and ours["lib"]["target"] == "usr/lib" and "usr/share/doc" not in ours
    assert ours["usr/local/sbin/suid-tool"]["mode"] == "0o4755"
    assert ours["usr/local/bin/ls"]["hardlinks"] == ("usr/bin/ls", "usr/local/bin/ls")
    assert_same_tree(theirs, ours)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _sha256_of(tar: tarfile.TarFile, name: str) -> str:
    h = hashlib.sha256()
    f = tar.extractfile(name)
    assert f is not None
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return "sha256:" + h.hexdigest()
