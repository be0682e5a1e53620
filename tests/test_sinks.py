"""Pull sinks: rootfs extraction (against ``umoci unpack``), hostile layers, OCI layout and
docker-archive outputs (read back with skopeo and umoci), and the staging/rename rules."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from regload import mediatypes as mt
from regload import ustar
from regload.blobstore import BlobStore
from regload.digest import Digest
from regload.errors import DigestMismatch, OutputError, ProtocolError, UnsafeLayer, UsageError
from regload.manifest import Descriptor, Schema1Manifest, parse_manifest
from regload.sinks import DiscardSink, DockerArchiveSink, OciLayoutSink, RootfsSink, make_sink
from regload.sinks.base import PulledImage, Sink
from regload.sinks.extract import Extractor
from regload.sinks.safetree import Refused, split_name, symlink_escapes
from tests.support.images import layer_tar
from tests.support.layers import (
    MTIME,
    Entry,
    device,
    directory,
    file,
    hardlink,
    opaque,
    pulled_image,
    stage_blobs,
    symlink,
    umoci_rootfs,
    whiteout,
    write_layout,
)
from tests.support.treecompare import assert_same_tree, snapshot_tree

AS_ROOT = os.geteuid() == 0
BIG = os.urandom(3 * 1024 * 1024 + 17)  # more than one read chunk

# Three layers exercising every rule of OCI image-spec layer.md that an extractor must get right.
BASE: list[Entry] = [
    directory("./", mode=0o755, mtime=MTIME - 50),
    directory("etc", mtime=MTIME - 10),
    file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    file("etc/shadow", b"root:*:1::::::\n", mode=0o640, gid=42),
    file("etc/recreated", b"lower\n"),
    file("etc/motd", b"lower motd\n"),
    directory("bin"),
    file("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o4755),
    file("bin/sgid", b"sgid\n", mode=0o2711, gid=50),
    symlink("bin/sh", "tool"),
    hardlink("bin/tool-link", "bin/tool"),
    symlink("abs-link", "/etc/passwd"),
    symlink("dangling", "../nowhere/at/all"),
    directory("tmp", mode=0o1777),
    directory("usr"),
    directory("usr/lib", mtime=MTIME - 20),
    file("usr/lib/libc.so", b"\x7fELF", mode=0o755),
    symlink("lib", "usr/lib"),
    directory("var"),
    directory("var/cache"),
    file("var/cache/a", b"a"),
    directory("var/cache/sub"),
    directory("var/partly"),
    file("var/partly/old", b"old"),
    symlink("dirlink", "usr"),
    file("var/cache/sub/deep", b"deep"),
    directory("opt"),
    file("opt/old", b"old"),
    directory("home", mode=0o755),
    directory("home/user", mode=0o700, uid=1000, gid=1000),
    file("home/user/.profile", b"export X=1\n", mode=0o600, uid=1000, gid=1000),
    file("was-file", b"becomes a directory"),
    directory("was-dir"),
    file("was-dir/child", b"x"),
    symlink("was-link", "etc"),
    directory("ro", mode=0o555),
    file("ro/readonly", b"r", mode=0o444),
    file("xattr-file", b"x", xattrs={"user.regload": b"value\x00\xff"}),
    file("big", BIG, mode=0o600),
    file("subsecond", b"t", mtime=MTIME + 0.5),
    device("run-fifo", "fifo", mode=0o620),
    directory("dev"),
    device("dev/null", "char", 1, 3),
    device("dev/loop0", "block", 7, 0, mode=0o660),
]

UPPER: list[Entry] = [
    # A whiteout deletes the lower entry; a same-layer entry survives the marker, before or after.
    whiteout("etc/shadow"),
    file("etc/recreated", b"upper\n"),
    whiteout("etc/recreated"),
    whiteout("etc/motd"),
    file("etc/motd", b"upper motd\n"),
    # Opaque directories: marker after a sibling of this layer, and before one.
    file("var/cache/new-before-marker", b"kept"),
    opaque("var/cache"),
    opaque("opt"),
    file("opt/new-after-marker", b"kept too"),
    # Written through an in-tree relative symlink (lib -> usr/lib), as umoci and docker do.
    file("lib/libm.so", b"\x7fELF m"),
    # Type changes (layer.md "Changeset over existing files"): remove, then create.
    file("bin/sh", b"#!/bin/busybox sh\n", mode=0o755),
    directory("was-file", mode=0o750),
    symlink("was-dir", "var"),
    file("was-link", b"no longer a link"),
    whiteout("home/user"),
    hardlink("bin/lower-link", "bin/tool"),
    # A whiteout of a directory this layer already wrote into: only the lower children go.
    file("var/partly/new", b"new"),
    whiteout("var/partly"),
    # A directory entry over a symlink to a directory replaces the link (no --keep-dirlinks).
    directory("dirlink", mode=0o700),
    file("dirlink/inside", b"i"),
]

TOP: list[Entry] = [
    directory("etc", mode=0o711, mtime=MTIME + 100),
    file("etc/added-in-top", b"top"),
    directory("home/user", mode=0o755, uid=1001, gid=1001),
    hardlink("home/user/motd", "etc/motd"),
    file("tmp/.keep", b""),
]


def build(
    tmp_path: Path,
    layers: list[list[Entry]] | None = None,
    compression: str | list[str] = "gzip",
    docker_types: bool = False,
    diff_ids: list[str] | None = None,
) -> Path:
    """A layout in ``tmp_path/layout``; by default the three test layers (the middle one plain tar)."""
    layout = tmp_path / "layout"
    if layers is None:
        layers, compression = [BASE, UPPER, TOP], ["gzip", "none", "gzip"]
    write_layout(layout, layers, compression=compression, docker_types=docker_types, diff_ids=diff_ids)
    return layout


def assert_matches_umoci(ours: Path, theirs: Path) -> None:
    """Directory mtimes included, except where umoci leaves "now": it restores the times of an
    entry's parent only, so a directory whose lower children a whiteout purged keeps the
    purge's time (ours keeps the directory's own mtime from its tar entry).

    Not as root, umoci --rootless writes devices as empty files and records owners in a
    ``user.rootlesscontainers`` xattr; we skip devices (with a note) and leave owners alone.
    """
    a, b = snapshot_tree(ours, dir_mtimes=True), snapshot_tree(theirs, dir_mtimes=True)
    for snap in (a, b):
        snap.get("var/partly", {}).pop("mtime_ns", None)
    if not AS_ROOT:
        for path in ("dev/null", "dev/loop0"):
            b.pop(path, None)
        for entry in b.values():
            entry.get("xattrs", {}).pop("user.rootlesscontainers", None)
            if entry.get("xattrs") == {}:
                del entry["xattrs"]
    assert_same_tree(a, b)


def extract(layout: Path, out: Path) -> RootfsSink:
    sink = RootfsSink(out)
    image = stage_blobs(layout, pulled_image(layout), sink.blob_store())
    sink.finish(image)
    return sink


# -- rootfs against umoci -------------------------------------------------------------------


@pytest.mark.registry
def test_rootfs_matches_umoci(tmp_path: Path) -> None:
    layout = build(tmp_path)
    ours = tmp_path / "ours"
    sink = extract(layout, ours)
    theirs = umoci_rootfs(f"{layout}:latest", tmp_path / "bundle")
    assert_matches_umoci(ours, theirs)
    if not AS_ROOT:
        assert any("dev/null" in n for n in sink.notes)


@pytest.mark.registry
def test_implicit_parents_match_umoci(tmp_path: Path) -> None:
    # A tar may omit parent entries: both make them 0755; their mtimes are "now" (not compared).
    layout = build(tmp_path, [[file("a/b/c", b"c", mode=0o600)], [directory("x"), file("x/y/z", b"z")]])
    ours = tmp_path / "ours"
    extract(layout, ours)
    assert stat_mode(ours / "a/b") == 0o755
    assert_same_tree(ours, umoci_rootfs(f"{layout}:latest", tmp_path / "bundle"))


@pytest.mark.unit
def test_rootfs_applies_the_layer_rules(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(build(tmp_path), out)
    snap = snapshot_tree(out)
    assert "etc/shadow" not in snap
    assert (out / "etc/recreated").read_bytes() == b"upper\n"
    assert (out / "etc/motd").read_bytes() == b"upper motd\n"
    assert sorted(os.listdir(out / "var/cache")) == ["new-before-marker"]
    assert sorted(os.listdir(out / "opt")) == ["new-after-marker"]
    assert sorted(os.listdir(out / "var/partly")) == ["new"]
    assert snap["dirlink"]["type"] == "dir" and not (out / "usr/inside").exists()
    assert (out / "usr/lib/libm.so").read_bytes() == b"\x7fELF m"
    assert snap["lib"] == {**snap["lib"], "type": "symlink", "target": "usr/lib"}
    assert snap["bin/sh"]["type"] == "file" and snap["was-file"]["type"] == "dir"
    assert snap["was-dir"]["target"] == "var" and snap["was-link"]["type"] == "file"
    assert snap["abs-link"]["target"] == "/etc/passwd"
    assert snap["bin/tool"]["mode"] == "0o4755" and snap["tmp"]["mode"] == "0o1777"
    assert set(snap["bin/tool"]["hardlinks"]) == {"bin/tool", "bin/tool-link", "bin/lower-link"}
    assert set(snap["etc/motd"]["hardlinks"]) == {"etc/motd", "home/user/motd"}
    assert not any(".wh." in p for p in snap)
    assert (out / "big").read_bytes() == BIG
    assert (out / "subsecond").stat().st_mtime_ns == (MTIME * 10**9) + 500_000_000
    assert snap["etc"]["mode"] == "0o711" and (out / "etc").stat().st_mtime == MTIME + 100
    assert snap["xattr-file"]["xattrs"] == {"user.regload": b"value\x00\xff"}
    assert snap["run-fifo"]["type"] == "fifo"
    if AS_ROOT:
        assert snap["home/user"]["uid"] == 1001 and snap["bin/sgid"]["gid"] == 50
        assert snap["dev/null"]["rdev"] == (1, 3) and snap["dev/loop0"]["type"] == "block"
    assert not list(tmp_path.glob(".out.regload-*")), "staging directory left behind"


@pytest.mark.unit
def test_docker_typed_and_uncompressed_layers(tmp_path: Path) -> None:
    layout = build(
        tmp_path, [[directory("d"), file("d/f", b"1")], [whiteout("d/f")]], compression="none", docker_types=True
    )
    out = tmp_path / "out"
    extract(layout, out)
    assert sorted(snapshot_tree(out)) == [".", "d"]


# -- hostile layers -------------------------------------------------------------------------

HOSTILE = {
    "dotdot": lambda s: [[file("../evil", b"x")]],
    "absolute": lambda s: [[file(f"{s}/evil", b"x")]],
    "dotdot-inside": lambda s: [[directory("a"), file("a/../../evil", b"x")]],
    "abs-symlink-then-write": lambda s: [[symlink("link", str(s)), file("link/payload", b"x")]],
    "rel-symlink-then-write": lambda s: [[symlink("link", "../../.."), file("link/x", b"x")]],
    "symlink-chain": lambda s: [[symlink("a", "b"), symlink("b", str(s)), file("a/x", b"x")]],
    "symlink-in-lower-layer": lambda s: [[symlink("link", str(s))], [file("link/payload", b"x")]],
    "dir-through-symlink": lambda s: [[symlink("link", str(s)), directory("link/newdir")]],
    "symlink-through-symlink": lambda s: [[symlink("link", str(s)), symlink("link/new", "/x")]],
    "whiteout-through-symlink": lambda s: [[symlink("link", str(s))], [whiteout("link/keep")]],
    "opaque-through-symlink": lambda s: [[symlink("link", str(s))], [opaque("link")]],
    "hardlink-dotdot": lambda s: [[hardlink("h", "../../etc/passwd")]],
    "hardlink-absolute": lambda s: [[hardlink("h", f"{s}/keep")]],
    "hardlink-through-symlinked-dir": lambda s: [[symlink("d", str(s)), hardlink("h", "d/keep")]],
    "hardlink-to-escaping-symlink": lambda s: [[symlink("s", "../../../etc/passwd"), hardlink("h", "s")]],
    "root-becomes-symlink": lambda s: [[symlink("./", str(s))]],
}


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(tmp_path: Path, case: str) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("precious")
    layout = tmp_path / "layout"
    write_layout(layout, HOSTILE[case](sentinel))
    outdir = tmp_path / "deep" / "er"  # so that "../../.." from the rootfs is still in tmp_path
    outdir.mkdir(parents=True)
    before = snapshot_tree(tmp_path)
    sink = RootfsSink(outdir / "out")
    image = stage_blobs(layout, pulled_image(layout), sink.blob_store())
    with pytest.raises(UnsafeLayer) as err:
        sink.finish(image)
    sink.abort()
    message = str(err.value)
    assert "\n" not in message and "layer sha256:" in message and "refusing entry" in message
    assert_same_tree(snapshot_tree(tmp_path), before)  # nothing written, nothing left behind
    assert (sentinel / "keep").stat().st_nlink == 1
    for parent in (tmp_path.parent, tmp_path.parent.parent):
        assert not (parent / "evil").exists() and not (parent / "x").exists()


@pytest.mark.unit
def test_escaping_symlinks_are_created_as_links(tmp_path: Path) -> None:
    layout = build(tmp_path, [[symlink("up", "../../../etc"), symlink("abs", "/etc/shadow")]])
    out = tmp_path / "out"
    extract(layout, out)
    assert os.readlink(out / "up") == "../../../etc" and os.readlink(out / "abs") == "/etc/shadow"


@pytest.mark.unit
def test_split_name() -> None:
    assert split_name("./a//b/") == ["a", "b"]
    assert split_name("a/../b") == ["b"]
    assert split_name(".") == []
    for bad in ("/a", "..", "a/../../b", "//x"):
        with pytest.raises(Refused):
            split_name(bad)
    assert symlink_escapes(["a"], "../b") is False
    assert symlink_escapes(["a"], "../../b") is True
    assert symlink_escapes([], "/etc") is True


@pytest.mark.unit
@pytest.mark.parametrize(
    ("entries", "text"),
    [
        ([symlink("a", "b"), symlink("b", "a"), file("a/x", b"x")], "too many levels of symbolic links"),
        ([file("f", b"f"), file("f/x", b"x")], "'f' is not a directory"),
        ([hardlink("h", "missing")], "hard link target 'missing' does not exist"),
        ([directory("d"), hardlink("h", "d")], "hard link target 'd' is a directory"),
        ([file(".wh.", b"")], "whiteout does not name an entry"),
    ],
)
def test_malformed_layers(tmp_path: Path, entries: list[Entry], text: str) -> None:
    sink = RootfsSink(tmp_path / "out")
    layout = build(tmp_path, [entries])
    with pytest.raises(ProtocolError, match=text) as err:
        sink.finish(stage_blobs(layout, pulled_image(layout), sink.blob_store()))
    assert not isinstance(err.value, UnsafeLayer)
    assert sorted(os.listdir(tmp_path)) == ["layout"]


@pytest.mark.unit
def test_a_skipped_device_still_replaces_what_a_lower_layer_had(tmp_path: Path) -> None:
    """Without root, a device entry is skipped with a note, and the lower layer's file at its
    name is gone all the same: the entry replaces it."""
    device = io.BytesIO()
    with tarfile.open(fileobj=device, mode="w") as tar:
        info = tarfile.TarInfo("dev/console")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 5, 1
        tar.addfile(info)
    root = tmp_path / "rootfs"
    root.mkdir()
    extractor = Extractor(str(root))
    extractor.as_root = False  # as an unprivileged user, whoever runs the test
    for layer in (layer_tar({"dev/console": b"a file of the lower layer"}), device.getvalue()):
        extractor.apply_layer(io.BytesIO(layer), "test")
    extractor.finish()
    extractor.close()
    assert not os.path.lexists(root / "dev" / "console")
    assert any(note.startswith("skipped device 'dev/console'") for note in extractor.notes), extractor.notes


@pytest.mark.unit
def test_aufs_metadata_is_skipped(tmp_path: Path) -> None:
    entries = [
        directory(".wh..wh.plnk"),
        file(".wh..wh.plnk/123.456", b"x"),
        file(".wh..wh.aufs", b""),
        file("real", b"r"),
    ]
    out = tmp_path / "out"
    extract(build(tmp_path, [entries]), out)
    assert sorted(os.listdir(out)) == ["real"]


# -- rootfs errors and output rules ---------------------------------------------------------


def _broken_layer_image(
    tmp_path: Path, blob: bytes, media_type: str = mt.OCI_LAYER_GZIP
) -> tuple[RootfsSink, PulledImage]:
    layout = build(tmp_path, [[file("a", b"a")]])
    image = pulled_image(layout)
    digest = Digest.of(blob)
    (layout / "blobs" / "sha256" / digest.hex).write_bytes(blob)
    layer = Descriptor(media_type, digest, len(blob))
    image = PulledImage(
        "t",
        "latest",
        image.manifest,
        None,
        image.config,
        image.config_descriptor,
        (layer,),
        BlobStore(layout / "blobs"),
    )
    return RootfsSink(tmp_path / "out"), image


@pytest.mark.unit
@pytest.mark.parametrize(
    ("blob", "error", "text"),
    [
        (b"\x28\xb5\x2f\xfd" + bytes(100), ProtocolError, "zstd layers are not supported"),
        (gzip.compress(b"x" * 5000)[:-30], ProtocolError, "corrupt compressed stream"),
        (b"not a tar at all" * 40, ProtocolError, "not a valid tar stream"),
        (gzip.compress(bytes(1024)), DigestMismatch, "diff_id"),
    ],
)
def test_bad_layers_fail_cleanly(tmp_path: Path, blob: bytes, error: type[Exception], text: str) -> None:
    sink, image = _broken_layer_image(tmp_path, blob)
    with pytest.raises(error, match=text):
        sink.finish(image)
    sink.abort()
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.regload-*"))


@pytest.mark.unit
def test_output_rules(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").touch()
    with pytest.raises(OutputError, match="not empty"):
        RootfsSink(busy)
    with pytest.raises(OutputError, match="does not exist"):
        RootfsSink(tmp_path / "missing" / "out")
    (tmp_path / "a-file").touch()
    with pytest.raises(OutputError, match="not a directory"):
        OciLayoutSink(tmp_path / "a-file", None)
    with pytest.raises(OutputError, match="is a directory"):
        DockerArchiveSink(busy, "r:t")
    empty = tmp_path / "empty"
    empty.mkdir()
    layout = build(tmp_path, [[file("f", b"1")]])
    extract(layout, empty)
    assert sorted(os.listdir(empty)) == ["f"]


@pytest.mark.unit
def test_output_appears_only_at_the_end(tmp_path: Path) -> None:
    # The read-only directories make the cleanup work for it when not root.
    layout = build(
        tmp_path, [[directory("ro", mode=0o500), directory("ro/sub", mode=0o000), file("ro/sub/f", b"1", mode=0o400)]]
    )
    sink = RootfsSink(tmp_path / "out")
    staging = sink.blob_store().root.parent
    assert staging.parent == tmp_path and staging.name.startswith(".out.regload-")
    assert stat_mode(staging) == 0o700 and not (tmp_path / "out").exists()
    image = stage_blobs(layout, pulled_image(layout), sink.blob_store())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "intruder").touch()  # appeared while pulling
    with pytest.raises(OutputError):
        sink.finish(image)
    assert not staging.exists() and os.listdir(tmp_path / "out") == ["intruder"]


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


@pytest.mark.unit
def test_abort_removes_staging(tmp_path: Path) -> None:
    for sink in (
        RootfsSink(tmp_path / "r"),
        OciLayoutSink(tmp_path / "o", "t"),
        DockerArchiveSink(tmp_path / "d.tar", "r:t"),
    ):
        (sink.blob_store().root / "sha256").mkdir(parents=True)
        sink.abort()
        sink.abort()
    assert sorted(os.listdir(tmp_path)) == []


# -- OCI layout sink ------------------------------------------------------------------------


def skopeo(*args: str) -> bytes:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=120).stdout


@pytest.mark.registry
def test_oci_layout_sink(tmp_path: Path) -> None:
    layout = build(tmp_path)
    source = pulled_image(layout)
    sink = OciLayoutSink(tmp_path / "oci", "v1")
    image = stage_blobs(layout, source, sink.blob_store())
    staged = [image.blob_path(d.digest) for d in image.layers]
    inodes = [p.stat().st_ino for p in staged]
    sink.finish(image)
    out = tmp_path / "oci"
    assert json.loads((out / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    (entry,) = json.loads((out / "index.json").read_text())["manifests"]
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert entry["digest"] == str(source.manifest.digest) and entry["mediaType"] == mt.OCI_MANIFEST
    assert (out / "blobs/sha256" / source.manifest.digest.hex).read_bytes() == source.manifest.raw
    assert (out / "blobs/sha256" / source.config_descriptor.digest.hex).read_bytes() == source.config
    moved = [out / "blobs/sha256" / d.digest.hex for d in image.layers]
    assert [p.stat().st_ino for p in moved] == inodes, "layers must be moved, not copied"
    assert stat_mode(out) == 0o755
    inspected = json.loads(skopeo("inspect", f"oci:{out}:v1"))
    assert inspected["Digest"] == str(source.manifest.digest) and len(inspected["Layers"]) == 3
    ours = tmp_path / "rootfs"
    extract(layout, ours)
    assert_matches_umoci(ours, umoci_rootfs(f"{out}:v1", tmp_path / "bundle"))


@pytest.mark.registry
def test_oci_layout_converts_docker_manifests(tmp_path: Path) -> None:
    # skopeo and umoci only read OCI manifests from index.json: Docker ones become OCI, same blobs.
    layout = build(tmp_path, [BASE, UPPER, TOP], compression=["gzip", "none", "gzip"], docker_types=True)
    source = pulled_image(layout)
    sink = OciLayoutSink(tmp_path / "oci", None)
    sink.finish(stage_blobs(layout, source, sink.blob_store()))
    out = tmp_path / "oci"
    (entry,) = json.loads((out / "index.json").read_text())["manifests"]
    assert (
        entry["mediaType"] == mt.OCI_MANIFEST and entry["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    )
    manifest = json.loads((out / "blobs/sha256" / entry["digest"].split(":")[1]).read_bytes())
    assert manifest["config"] == {
        "mediaType": mt.OCI_CONFIG,
        "digest": str(source.config_descriptor.digest),
        "size": len(source.config),
    }
    assert [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]] == [
        (mt.OCI_LAYER_GZIP if d.media_type == mt.DOCKER_LAYER_GZIP else mt.OCI_LAYER_TAR, str(d.digest), d.size)
        for d in source.layers
    ]
    assert json.loads(skopeo("inspect", f"oci:{out}:latest"))["Digest"] == entry["digest"]
    ours = tmp_path / "rootfs"
    extract(layout, ours)
    assert_matches_umoci(ours, umoci_rootfs(f"{out}:latest", tmp_path / "bundle"))


@pytest.mark.registry
def test_oci_layout_converts_schema1(tmp_path: Path) -> None:
    layout = build(tmp_path, [[file("a", b"a")], [file("b", b"b")]])
    source = pulled_image(layout)
    blobsums = [{"blobSum": str(d.digest)} for d in reversed(source.layers)]
    history = [{"v1Compatibility": json.dumps({"id": str(i)})} for i in range(2)]
    raw = json.dumps(
        {"schemaVersion": 1, "name": "t", "tag": "1", "architecture": "amd64", "fsLayers": blobsums, "history": history}
    ).encode()
    schema1 = parse_manifest(raw, mt.DOCKER_SCHEMA1)
    assert isinstance(schema1, Schema1Manifest)
    config_desc = Descriptor(mt.DOCKER_CONFIG, Digest.of(source.config), len(source.config))
    image = PulledImage(
        "t", "1", schema1, None, source.config, config_desc, schema1.layers, BlobStore(layout / "blobs")
    )
    sink = OciLayoutSink(tmp_path / "oci", "1")
    sink.finish(stage_blobs(layout, image, sink.blob_store()))
    out = tmp_path / "oci"
    (entry,) = json.loads((out / "index.json").read_text())["manifests"]
    manifest = json.loads((out / "blobs/sha256" / entry["digest"].split(":")[1]).read_bytes())
    assert manifest["mediaType"] == mt.OCI_MANIFEST and manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert [d["size"] for d in manifest["layers"]] == [d.size for d in source.layers]
    rootfs = umoci_rootfs(f"{out}:1", tmp_path / "bundle")
    assert sorted(os.listdir(rootfs)) == ["a", "b"]


@pytest.mark.unit
@pytest.mark.parametrize(
    "make", [lambda p: OciLayoutSink(p / "out", "t"), lambda p: DockerArchiveSink(p / "out", "r:t")]
)
def test_config_must_match_its_descriptor(tmp_path: Path, make: Callable[[Path], Sink]) -> None:
    layout = build(tmp_path, [[file("f", b"1")]])
    sink = make(tmp_path)
    image = stage_blobs(layout, pulled_image(layout), sink.blob_store())
    with pytest.raises(DigestMismatch, match="config"):
        sink.finish(dataclasses.replace(image, config=image.config + b" "))
    assert sorted(os.listdir(tmp_path)) == ["layout"]


# -- docker-archive sink --------------------------------------------------------------------


@pytest.mark.registry
def test_docker_archive_sink(tmp_path: Path) -> None:
    layout = build(tmp_path)
    source = pulled_image(layout)
    sink = DockerArchiveSink(tmp_path / "image.tar", "example.com/test/image:v1")
    sink.finish(stage_blobs(layout, source, sink.blob_store()))
    archive = tmp_path / "image.tar"
    diff_ids = json.loads(source.config)["rootfs"]["diff_ids"]
    with tarfile.open(archive) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert entry == {
            "Config": f"{source.config_descriptor.digest.hex}.json",
            "RepoTags": ["example.com/test/image:v1"],
            "Layers": [f"{d.split(':')[1]}/layer.tar" for d in diff_ids],
        }
        assert json.load(tar.extractfile("repositories")) == {
            "example.com/test/image": {"v1": diff_ids[-1].split(":")[1]}
        }  # type: ignore[arg-type]
        assert tar.extractfile(entry["Config"]).read() == source.config  # type: ignore[union-attr]
        for path, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            assert str(Digest.of(tar.extractfile(path).read())) == diff_id  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".image.tar.regload-*"))
    skopeo("copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'copied'}:v1")
    ours = tmp_path / "rootfs"
    extract(layout, ours)
    assert_matches_umoci(ours, umoci_rootfs(f"{tmp_path / 'copied'}:v1", tmp_path / "bundle"))


@pytest.mark.registry
def test_docker_archive_repeated_layer_and_no_tag(tmp_path: Path) -> None:
    same = [file("same", b"s")]
    layout = build(tmp_path, [same, [file("other", b"o")], same])
    sink = DockerArchiveSink(tmp_path / "a.tar", None)
    sink.finish(stage_blobs(layout, pulled_image(layout), sink.blob_store()))
    with tarfile.open(tmp_path / "a.tar") as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert entry["RepoTags"] == [] and entry["Layers"][0] == entry["Layers"][2]
        assert tar.getnames().count(entry["Layers"][0]) == 1 and "repositories" not in tar.getnames()
    skopeo("inspect", f"docker-archive:{tmp_path / 'a.tar'}")


@pytest.mark.unit
def test_docker_archive_diff_id_mismatch(tmp_path: Path) -> None:
    layout = build(tmp_path, [[file("f", b"1")]], diff_ids=["sha256:" + "0" * 64])
    sink = DockerArchiveSink(tmp_path / "a.tar", "r:t")
    with pytest.raises(DigestMismatch, match="diff_id"):
        sink.finish(stage_blobs(layout, pulled_image(layout), sink.blob_store()))
    sink.abort()
    assert sorted(os.listdir(tmp_path)) == ["layout"]


@pytest.mark.unit
def test_tar_writer_sizes_beyond_8_gib() -> None:
    block = ustar.header("0" * 64 + "/layer.tar", size=10 << 30)  # what TarWriter writes
    assert len(block) == tarfile.BLOCKSIZE
    assert tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape").size == 10 << 30


# -- make_sink and discard ------------------------------------------------------------------


@pytest.mark.unit
def test_make_sink(tmp_path: Path) -> None:
    assert isinstance(make_sink("oci", None, "r", "t"), DiscardSink)
    assert isinstance(make_sink(None, str(tmp_path / "a"), "r", "t"), RootfsSink)
    assert isinstance(make_sink("rootfs", str(tmp_path / "b"), "r", None), RootfsSink)
    oci = make_sink("oci", str(tmp_path / "c"), "r", None)
    assert isinstance(oci, OciLayoutSink) and oci.tag == "latest"
    archive = make_sink("docker-archive", str(tmp_path / "d.tar"), "library/busybox", "1.36")
    assert isinstance(archive, DockerArchiveSink) and archive.repo_tag == "library/busybox:1.36"
    with pytest.raises(UsageError):
        make_sink("squashfs", str(tmp_path / "e"), "r", "t")
    discard = DiscardSink()
    assert discard.blob_store() is None
    discard.abort()
    assert os.listdir(tmp_path) == []
