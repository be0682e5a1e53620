"""Push sources: docker-save tarballs (both layouts), OCI layouts, synthetic images, dispatch."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tracemalloc
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from regload import mediatypes as mt
from regload import ustar
from regload.compression import Gunzip
from regload.digest import Digest
from regload.errors import SourceError
from regload.manifest import Platform, build_manifest
from regload.sources import open_source
from regload.sources.base import CHUNK, BlobSource, SourceImage
from regload.sources.compress import BLOCK, SpooledBlob, gzip_chunks
from regload.sources.digest_cache import DigestCache
from regload.sources.docker_save import open_docker_save
from regload.sources.files import DigestCheck
from regload.sources.noise import noise
from regload.sources.oci_layout import open_oci_layout, parse_layout_arg
from regload.sources.pathref import split_path_ref
from regload.sources.synthetic import MTIME, SyntheticSpec, parse_synthetic, synthetic_image
from regload.streams import StreamCheck
from tests.support.skopeo import INSTALL_HINT, skopeo_copy, skopeo_manifest

T = TypeVar("T")

# --- helpers -------------------------------------------------------------------------------

Member = tuple[str, bytes | None] | tuple[str, str, str]  # (name, data or None for a dir) | (name, "sym"|"lnk", target)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(path: Path, members: Iterable[Member]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            info = tarfile.TarInfo(m[0])
            if len(m) == 3:
                info.type = tarfile.SYMTYPE if m[1] == "sym" else tarfile.LNKTYPE
                info.linkname = m[2]
                tf.addfile(info)
            elif m[1] is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return path


def config_for(layers: list[bytes]) -> bytes:
    rootfs = {"type": "layers", "diff_ids": [sha(x) for x in layers]}
    doc = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": rootfs}
    return json.dumps(doc).encode()


def save_members(
    layout: str, layers: list[bytes], tags: list[str] | None = None, config: bytes | None = None
) -> tuple[list[Member], dict[str, Any]]:
    """Members of a ``docker save`` tarball (``legacy`` or Docker 25+ ``oci``), and its manifest.json entry."""
    config = config if config is not None else config_for(layers)
    tags = ["example/app:1.0"] if tags is None else tags
    members: list[Member] = []
    if layout == "legacy":
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        names = []
        for i, data in enumerate(layers):
            d = hashlib.sha256(b"id%d" % i).hexdigest()
            members += [(d, None), (f"{d}/VERSION", b"1.0"), (f"{d}/json", b"{}"), (f"{d}/layer.tar", data)]
            names.append(f"{d}/layer.tar")
        members.append((config_name, config))
        members.append(("repositories", b"{}"))
    else:
        config_name = "blobs/sha256/" + hashlib.sha256(config).hexdigest()
        names = ["blobs/sha256/" + hashlib.sha256(x).hexdigest() for x in layers]
        members += [("blobs", None), ("blobs/sha256", None), (config_name, config)]
        members += [(n, x) for n, x in zip(names, layers, strict=True)]
        members += [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", b'{"schemaVersion":2,"manifests":[]}'),
        ]
    entry = {"Config": config_name, "RepoTags": tags, "Layers": names}
    return members, entry


def docker_save(tmp_path: Path, layout: str = "legacy", layers: list[bytes] | None = None, **kw: Any) -> Path:
    layers = LAYERS if layers is None else layers
    members, entry = save_members(layout, layers, **kw)
    members.append(("manifest.json", json.dumps([entry]).encode()))
    return write_tar(tmp_path / f"{layout}.tar", members)


LAYERS = [layer_tar({"etc/hello": b"hello\n" * 1000}), layer_tar({"bin/tool": os.urandom(3 * CHUNK // 2)})]


def read_all(blob: BlobSource) -> bytes:
    return b"".join(bytes(c) for c in blob.open())


def assert_one_line_error(fn: Callable[[], Any], *fragments: str) -> str:
    with pytest.raises(SourceError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    for f in fragments:
        assert f in message, message
    return message


# --- gzip ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_gzip_chunks_is_deterministic_and_valid() -> None:
    data = [b"a" * CHUNK, os.urandom(1000), b"b" * 10]
    first = b"".join(gzip_chunks(data, 6))
    second = b"".join(gzip_chunks(iter(data), 6))
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # mtime 0, no file name flag
    assert first[3] == 0
    assert gzip.decompress(first) == b"".join(data)


@pytest.mark.unit
@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 12_345])
def test_isal_blocks_are_the_same_bytes_on_any_number_of_threads(size: int) -> None:
    """The default (ISA-L) gzip: blocks compressed apart, each primed with the 32 KiB before
    it. One thread, a stdlib pool and gevent's native threads give the same bytes, which every
    gzip reader (zlib, gzip, regload's ISA-L reader) decodes to the input, with the pieces of the
    input cut anywhere."""
    from concurrent.futures import ThreadPoolExecutor

    from regload.wiring.gevent_runner import NativeThreads

    data = (os.urandom(size // 2) + b"layer " * (size // 12))[:size]
    pieces = [data[i : i + 70_001] for i in range(0, len(data), 70_001)]
    serial = b"".join(gzip_chunks(pieces))
    with ThreadPoolExecutor(3) as pool:

        class Executor:
            map = pipe = staticmethod(pool.map)

        assert b"".join(gzip_chunks(iter(pieces), threads=Executor())) == serial
    assert b"".join(gzip_chunks(iter(pieces), threads=NativeThreads())) == serial
    assert serial[:4] == b"\x1f\x8b\x08\x00" and serial[4:8] == b"\0\0\0\0"  # no name, mtime 0
    assert gzip.decompress(serial) == data and zlib.decompress(serial, 31) == data
    gunzip = Gunzip(lambda reason: SourceError(reason))
    assert b"".join(gunzip.feed(serial)) == data
    gunzip.finish()
    if size > BLOCK:  # the repeated text compresses, whatever the block cuts
        assert len(serial) < len(data) * 0.75


@pytest.mark.unit
def test_isal_blocks_refer_back_across_a_block_boundary() -> None:
    """Each block is primed with the 32 KiB before it: 16 KiB at the start of a block that repeat
    the end of the one before compress to almost nothing; a control with fresh bytes there does
    not."""
    tail = os.urandom(16 * 1024)
    first = os.urandom(BLOCK - len(tail)) + tail
    rest = os.urandom(BLOCK - len(tail))
    repeated = b"".join(gzip_chunks([first, tail + rest]))
    control = b"".join(gzip_chunks([first, os.urandom(len(tail)) + rest]))
    assert gzip.decompress(repeated) == first + tail + rest
    assert len(repeated) < len(control) - 12 * 1024, (len(repeated), len(control))


@pytest.mark.unit
def test_threaded_compression_raises_a_source_error_to_its_caller(capfd: pytest.CaptureFixture[str]) -> None:
    """A failure reading the input (a diff_id that does not match) reaches the caller as the
    source's own error, with nothing printed by gevent; a caller that stops early stops the
    reading of the input."""
    from regload.wiring.gevent_runner import NativeThreads

    def broken() -> Iterable[bytes]:
        yield b"x" * BLOCK
        yield b"y" * BLOCK
        raise SourceError("layer 1: content has digest sha256:aaa, not its diff_id sha256:bbb")

    with pytest.raises(SourceError, match="not its diff_id"):
        list(gzip_chunks(broken(), threads=NativeThreads()))
    read: list[int] = []
    closed: list[bool] = []

    def endless() -> Iterable[bytes]:
        try:
            while True:
                read.append(1)
                yield os.urandom(BLOCK)
        finally:
            closed.append(True)  # a file source closes its file here

    stream = gzip_chunks(endless(), threads=NativeThreads())
    next(stream), next(stream)  # the header, the first block
    stream.close()
    import gevent

    gevent.sleep(0.05)
    assert closed and len(read) <= 8, read  # a bounded read-ahead; the input closed with the output
    assert capfd.readouterr().err == ""


@pytest.mark.unit
def test_native_threads_raise_a_worker_error_to_the_caller(capfd: pytest.CaptureFixture[str]) -> None:
    """An error raised by the mapped function in a worker thread (a hash beside the compressors
    finding a diff_id too long) reaches the caller, in order, with nothing printed by gevent."""
    from regload.wiring.gevent_runner import NativeThreads

    def hash_piece(n: int) -> int:
        if n == 3:
            raise SourceError("layer 1: 3 bytes, expected 2")
        return n

    for run in (NativeThreads().map, NativeThreads().pipe):
        seen: list[int] = []
        with pytest.raises(SourceError, match="expected 2"):
            seen.extend(run(hash_piece, iter(range(10))))
        assert seen == [0, 1, 2]
    assert capfd.readouterr().err == ""


@pytest.mark.unit
def test_gzip_level_is_checked() -> None:
    assert_one_line_error(lambda: list(gzip_chunks([b"x"], 0)), "gzip level")


@pytest.mark.unit
def test_spooled_blob_compresses_once_and_cleans_up(tmp_path: Path) -> None:
    calls = []

    def content() -> list[bytes]:
        calls.append(1)
        return [b"x" * 5000, b"y" * 5000]

    blob = SpooledBlob(mt.DOCKER_LAYER_GZIP, content, tmpdir=str(tmp_path))
    assert blob.known_descriptor() is None
    desc = blob.descriptor()
    data = read_all(blob)
    assert read_all(blob) == data and len(calls) == 1
    assert desc.size == len(data) and str(desc.digest) == sha(data)
    assert gzip.decompress(data) == b"x" * 5000 + b"y" * 5000
    assert len(list(tmp_path.iterdir())) == 1
    blob.close()
    assert list(tmp_path.iterdir()) == []
    assert read_all(blob) == data  # compresses again, to the same bytes


@pytest.mark.unit
def test_spooled_blob_streams_until_its_digest_is_asked_for_and_remembers_it(tmp_path: Path) -> None:
    """Without a spool, ``open()`` compresses while it is read (no file) and records the digest
    at the end of a complete pass, in the cache too; a blob of the same content in a later run
    finds it there (``likely_descriptor``) before any pass. A pass that fails its check (a
    wrong diff_id) records nothing, in the blob or in the cache."""
    content = [b"x" * 5000, b"y" * 5000]
    diff_id = Digest.of(b"".join(content))
    cache = DigestCache(tmp_path / "cache.json")

    def blob(expected: Digest) -> SpooledBlob:
        def checks() -> list[StreamCheck]:
            return [DigestCheck(expected, None, "layer 1", kind="diff_id")]

        return SpooledBlob(
            mt.DOCKER_LAYER_GZIP,
            lambda: content,
            checks=checks,
            tmpdir=str(tmp_path),
            cache=cache,
            cache_key=str(expected),
        )

    wrong = blob(Digest.of(b"other"))
    assert_one_line_error(lambda: read_all(wrong), "layer 1", "not its diff_id")
    assert wrong.known_descriptor() is None and not (tmp_path / "cache.json").exists()

    first = blob(diff_id)
    assert first.known_descriptor() is None and first.likely_descriptor() is None
    data = read_all(first)
    assert [p.name for p in tmp_path.iterdir()] == ["cache.json"]  # streamed: no spool file
    desc = first.known_descriptor()
    assert desc is not None and str(desc.digest) == sha(data) and desc.size == len(data)
    assert gzip.decompress(data) == b"".join(content)

    later = DigestCache(tmp_path / "cache.json")  # another run reads the file
    again = SpooledBlob(mt.DOCKER_LAYER_GZIP, lambda: content, cache=later, cache_key=str(diff_id))
    assert again.known_descriptor() is None and again.likely_descriptor() == desc
    other_encoder = SpooledBlob(mt.DOCKER_LAYER_GZIP, lambda: content, level=6, cache=later, cache_key=str(diff_id))
    assert other_encoder.likely_descriptor() is None  # zlib's bytes are not ISA-L's


def gunzip(what: str) -> Gunzip:
    return Gunzip(lambda reason: SourceError(f"{what}: {reason}"))


@pytest.mark.unit
def test_gunzip_bounds_output_and_accepts_several_members() -> None:
    bomb = gzip.compress(bytes(64 * CHUNK), mtime=0)  # 64 KiB that expand to 64 MiB
    g = gunzip("bomb")
    pieces = list(g.feed(bomb + gzip.compress(b"tail", mtime=0) + bytes(100)))
    g.finish()
    assert max(len(p) for p in pieces) <= CHUNK
    assert b"".join(pieces) == bytes(64 * CHUNK) + b"tail"


@pytest.mark.unit
def test_gunzip_reports_truncation_and_garbage() -> None:
    data = gzip.compress(os.urandom(5000))
    g = gunzip("layer 1")
    list(g.feed(data[:-10]))
    assert_one_line_error(g.finish, "layer 1", "truncated")
    assert_one_line_error(lambda: list(gunzip("layer 2").feed(b"\x1f\x8bgarbage" * 4)), "layer 2", "invalid gzip")


# --- docker save -----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_docker_save_gzip(tmp_path: Path, layout: str) -> None:
    path = docker_save(tmp_path, layout)
    spool = tmp_path / "spool"
    spool.mkdir()
    image = open_docker_save(str(path), tmpdir=str(spool))
    assert image.manifest is None and image.manifest_media_type == mt.DOCKER_MANIFEST
    assert image.config.media_type == mt.DOCKER_CONFIG and image.config.data == config_for(LAYERS)
    assert "example/app:1.0" in image.description and str(path) in image.description
    assert len(image.layers) == 2
    for blob, original in zip(image.layers, LAYERS, strict=True):
        assert blob.media_type == mt.DOCKER_LAYER_GZIP
        desc = blob.descriptor()
        first, second = read_all(blob), read_all(blob)
        assert first == second
        assert str(desc.digest) == sha(first) and desc.size == len(first)
        assert gzip.decompress(first) == original
        assert all(len(c) <= CHUNK for c in blob.open())
    assert len(list(spool.iterdir())) == 2
    image.close()
    assert list(spool.iterdir()) == []


@pytest.mark.unit
@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_docker_save_uncompressed(tmp_path: Path, layout: str) -> None:
    image = open_docker_save(str(docker_save(tmp_path, layout)), compression="none")
    for blob, original in zip(image.layers, LAYERS, strict=True):
        known = blob.known_descriptor()
        assert known is not None and str(known.digest) == sha(original) and known.size == len(original)
        assert known.media_type == mt.DOCKER_LAYER_TAR
        assert read_all(blob) == original


@pytest.mark.unit
def test_docker_save_compression_is_reproducible(tmp_path: Path) -> None:
    path = str(docker_save(tmp_path))
    a, b = open_docker_save(path, level=1), open_docker_save(path, level=1)
    assert [x.descriptor() for x in a.layers] == [x.descriptor() for x in b.layers]
    a.close()
    b.close()


@pytest.mark.unit
def test_docker_save_gzip_member_is_pushed_as_is(tmp_path: Path) -> None:
    packed = gzip.compress(LAYERS[0], mtime=0)
    members, entry = save_members("legacy", [packed, LAYERS[1]], config=config_for(LAYERS))
    members.append(("manifest.json", json.dumps([entry]).encode()))
    image = open_docker_save(str(write_tar(tmp_path / "x.tar", members)), compression="none")
    blob = image.layers[0]
    assert blob.media_type == mt.DOCKER_LAYER_GZIP and blob.known_descriptor() is None
    assert blob.descriptor().digest == blob.descriptor().digest
    assert str(blob.descriptor().digest) == sha(packed) and read_all(blob) == packed


@pytest.mark.unit
def test_docker_save_gzip_member_with_wrong_diff_id(tmp_path: Path) -> None:
    packed = gzip.compress(b"not the layer", mtime=0)
    members, entry = save_members("legacy", [packed, LAYERS[1]], config=config_for(LAYERS))
    members.append(("manifest.json", json.dumps([entry]).encode()))
    image = open_docker_save(str(write_tar(tmp_path / "x.tar", members)))
    assert_one_line_error(image.layers[0].descriptor, "layer 1 of 2", "diff_id")


@pytest.mark.unit
@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_docker_save_diff_id_mismatch(tmp_path: Path, layout: str) -> None:
    wrong = config_for([LAYERS[0], b"something else"])
    path = str(docker_save(tmp_path, layout, config=wrong))
    image = open_docker_save(path, tmpdir=str(tmp_path))
    image.layers[0].descriptor()
    assert_one_line_error(image.layers[1].descriptor, "layer 2 of 2", "diff_id", LAYERS_NAME[layout])
    image.close()
    assert [p.name for p in tmp_path.iterdir()] == [f"{layout}.tar"]  # the failed spool is gone
    uncompressed = open_docker_save(path, compression="none")
    assert_one_line_error(lambda: read_all(uncompressed.layers[1]), "layer 2 of 2", "diff_id")


LAYERS_NAME = {"legacy": "/layer.tar", "oci": "blobs/sha256/"}


@pytest.mark.unit
def test_docker_save_select_by_tag(tmp_path: Path) -> None:
    m1, e1 = save_members("legacy", LAYERS[:1], tags=["first:1"], config=config_for(LAYERS[:1]))
    m2, e2 = save_members("legacy", LAYERS, tags=["second:latest", "second:2"])
    path = str(write_tar(tmp_path / "two.tar", m1 + m2 + [("manifest.json", json.dumps([e1, e2]).encode())]))
    assert len(open_docker_save(path).layers) == 1
    assert "first:1" in open_docker_save(path).description
    chosen = open_docker_save(path, select="second")
    assert len(chosen.layers) == 2 and "second:latest" in chosen.description
    assert len(open_docker_save(path, select="second:2").layers) == 2
    assert len(open_docker_save(path, select="docker.io/library/second").layers) == 2
    assert_one_line_error(lambda: open_docker_save(path, select="third"), "third", "first:1", "second:2")


@pytest.mark.unit
def test_docker_save_follows_symlinked_layers(tmp_path: Path) -> None:
    members, entry = save_members("legacy", [LAYERS[0], LAYERS[0]])
    second = entry["Layers"][1]
    members = [m for m in members if m[0] != second] + [(second, "sym", "../" + entry["Layers"][0])]
    members.append(("manifest.json", json.dumps([entry]).encode()))
    image = open_docker_save(str(write_tar(tmp_path / "x.tar", members)), compression="none")
    assert read_all(image.layers[1]) == LAYERS[0]


BROKEN_MANIFESTS: list[tuple[str, bytes | None, str]] = [
    ("missing manifest.json", None, "no manifest.json"),
    ("manifest.json not JSON", b"{nope", "manifest.json is not valid JSON"),
    ("manifest.json not a list", b'{"Config": "x"}', "not a non-empty list"),
    ("manifest.json empty list", b"[]", "not a non-empty list"),
    ("entry without Layers", b'[{"Config": "x.json"}]', "lacks a Config name or a Layers list"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("case", "manifest", "message"), BROKEN_MANIFESTS, ids=[c[0] for c in BROKEN_MANIFESTS])
def test_docker_save_broken_manifest(tmp_path: Path, case: str, manifest: bytes | None, message: str) -> None:
    members, _ = save_members("legacy", LAYERS)
    if manifest is not None:
        members.append(("manifest.json", manifest))
    path = str(write_tar(tmp_path / "x.tar", members))
    assert_one_line_error(lambda: open_docker_save(path), path, message)


Mutation = Callable[[list[Member], dict[str, Any]], list[Member]]


def _drop(field: str, index: int | None = None) -> Mutation:
    def mutate(members: list[Member], entry: dict[str, Any]) -> list[Member]:
        name = entry[field] if index is None else entry[field][index]
        return [m for m in members if m[0] != name]

    return mutate


def _set(field: str, data: bytes | None, index: int | None = None) -> Mutation:
    def mutate(members: list[Member], entry: dict[str, Any]) -> list[Member]:
        name = entry[field] if index is None else entry[field][index]
        return [(m[0], data) if m[0] == name else m for m in members]

    return mutate


BROKEN_MEMBERS: list[tuple[str, Mutation, str]] = [
    ("config missing", _drop("Config"), "config"),
    ("layer missing", _drop("Layers", 1), "layer 2"),
    ("config not JSON", _set("Config", b"not json"), "is not valid JSON"),
    ("config without diff_ids", _set("Config", b'{"rootfs": {}}'), "no rootfs.diff_ids"),
    ("too few diff_ids", _set("Config", config_for(LAYERS[:1])), "2 layers but the config has 1"),
    ("invalid diff_id", _set("Config", b'{"rootfs": {"diff_ids": ["md5:x"]}}'), "diff_ids"),
    ("layer is a directory", _set("Layers", None, 0), "not a regular file"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("case", "mutate", "message"), BROKEN_MEMBERS, ids=[c[0] for c in BROKEN_MEMBERS])
def test_docker_save_broken_members(tmp_path: Path, case: str, mutate: Mutation, message: str) -> None:
    members, entry = save_members("legacy", LAYERS)
    members = [*mutate(members, entry), ("manifest.json", json.dumps([entry]).encode())]
    path = str(write_tar(tmp_path / "x.tar", members))
    assert_one_line_error(lambda: open_docker_save(path), path, message)


@pytest.mark.unit
def test_docker_save_oci_config_must_match_its_name(tmp_path: Path) -> None:
    members, entry = save_members("oci", LAYERS)
    members = [(m[0], config_for(LAYERS) + b" ") if m[0] == entry["Config"] else m for m in members]
    members.append(("manifest.json", json.dumps([entry]).encode()))
    path = str(write_tar(tmp_path / "x.tar", members))
    assert_one_line_error(lambda: open_docker_save(path), "does not match its digest")


def _truncate_in_layer(good: bytes) -> bytes:
    return good[: good.index(LAYERS[1][:512]) + 10_000]


BAD_FILES: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty", lambda good: b"", "not a tar archive"),
    ("text", lambda good: b"hello world\n" * 100, "not a tar archive"),
    ("truncated in a layer", _truncate_in_layer, "truncated tar archive"),
    ("truncated in a header", lambda good: good[:700], "truncated tar archive"),
    ("truncated at a member", lambda good: good[:1536], "truncated tar archive"),
    (
        "garbled header",
        lambda good: good[:1536] + b"x" * 1000 + good[2536:],
        "corrupt tar archive (invalid header at byte 1536)",
    ),
    ("gzipped", gzip.compress, "gzip-compressed"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("case", "damage", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_docker_save_bad_files(tmp_path: Path, case: str, damage: Callable[[bytes], bytes], message: str) -> None:
    path = tmp_path / "sample.tar"
    path.write_bytes(damage(docker_save(tmp_path).read_bytes()))
    assert_one_line_error(lambda: open_docker_save(str(path)), str(path), message)


@pytest.mark.unit
def test_docker_save_bad_paths_and_options(tmp_path: Path) -> None:
    assert_one_line_error(lambda: open_docker_save(str(tmp_path)), "is a directory")
    assert_one_line_error(lambda: open_docker_save(str(tmp_path / "nope.tar")), "No such file")
    good = str(docker_save(tmp_path))
    assert_one_line_error(lambda: open_docker_save(good, compression="zstd"), "invalid compression")
    assert_one_line_error(lambda: open_docker_save(good, level=10), "invalid gzip level")


@pytest.mark.unit
def test_docker_save_file_shrinks_after_open(tmp_path: Path) -> None:
    path = docker_save(tmp_path)
    image = open_docker_save(str(path), compression="none")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    assert_one_line_error(lambda: read_all(image.layers[1]), "layer 2 of 2", "truncated")


# --- synthetic -----------------------------------------------------------------------------


@pytest.mark.unit
def test_parse_synthetic() -> None:
    assert parse_synthetic("synthetic") == SyntheticSpec(1, 1 << 20, 0)
    assert parse_synthetic("synthetic:") == SyntheticSpec(1, 1 << 20, 0)
    assert parse_synthetic("synthetic:layers=3,size=10MiB,seed=7") == SyntheticSpec(3, 10 << 20, 7)
    assert parse_synthetic("synthetic: size = 2KB , layers=2,") == SyntheticSpec(2, 2000, 0)
    assert parse_synthetic("synthetic:size=1GiB").size == 1 << 30
    assert parse_synthetic("synthetic:size=512").size == 512
    assert str(parse_synthetic("synthetic:layers=2,size=1KiB,seed=3")) == "synthetic:layers=2,size=1024,seed=3"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:layer=3", "unknown key 'layer'"),
        ("synthetic:layers=three", "not an integer"),
        ("synthetic:layers=0", "layers must be 1 to"),
        ("synthetic:size=10XB", "invalid size"),
        ("synthetic:seed=1.5", "not an integer"),
        ("synthetic:layers", "not key=value"),
        ("synthetic:seed=1,seed=2", "seed given twice"),
        ("synthetical:layers=1", "expected synthetic:"),
    ],
)
def test_parse_synthetic_errors(spec: str, message: str) -> None:
    assert_one_line_error(lambda: parse_synthetic(spec), message)


@pytest.mark.unit
def test_synthetic_is_cheap_to_build() -> None:
    image = synthetic_image(layers=1000, size=1 << 30, seed=1)
    assert all(layer.known_descriptor() is None for layer in image.layers)
    assert repr(image.config).startswith("LazyBytesBlob")


@pytest.mark.unit
@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_synthetic_layer_is_a_tar_of_size_bytes(size: int) -> None:
    layer = synthetic_image(1, size, seed=size).layers[0]
    data = read_all(layer)
    assert len(data) % 512 == 0 and data.endswith(bytes(1024))
    assert all(len(c) <= CHUNK for c in layer.open())
    desc = layer.descriptor()
    assert desc.size == len(data) and str(desc.digest) == sha(data) and desc.media_type == mt.OCI_LAYER_TAR
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == ["regload", "regload/layer-1.bin"]
        assert members[1].size == size and members[1].mode == 0o644 and members[1].isfile()
        f = tf.extractfile(members[1])
        assert f is not None and len(f.read()) == size


@pytest.mark.unit
def test_ustar_header_for_huge_files() -> None:
    block = ustar.header("big.bin", size=10 << 30, mtime=MTIME)
    info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    assert (info.name, info.size, info.mode, info.mtime) == ("big.bin", 10 << 30, 0o644, MTIME)


@pytest.mark.unit
def test_synthetic_determinism() -> None:
    def digests(seed: int) -> list[str]:
        return [str(x.descriptor().digest) for x in synthetic_image(3, 100_000, seed).layers]

    assert digests(7) == digests(7)
    assert len(set(digests(7) + digests(8))) == 6
    # Pinned: the generator must not change between versions (a load test compares runs).
    assert digests(7)[0] == GOLDEN_DIGEST
    assert sha(b"".join(noise(b"k", 3 * CHUNK + 7))) == GOLDEN_NOISE
    assert b"".join(noise(b"k", 100)) == b"".join(noise(b"k", 3 * CHUNK))[:100]


GOLDEN_DIGEST = "sha256:baed840e4810b33de587b8d4b019f99b6e5b08b5b7e58a7aab8dc055e771115e"
GOLDEN_NOISE = "sha256:342553c5f288c5535a88e95ad7a982da4348fe17f791e63a8bcdc4a774556a2a"


@pytest.mark.unit
def test_synthetic_chunks_differ_and_do_not_compress() -> None:
    chunks = list(noise(b"seed", 4 * CHUNK))
    assert len(set(chunks)) == 4
    for c in chunks:
        assert len(zlib.compress(c, 1)) > len(c)


@pytest.mark.unit
def test_synthetic_config() -> None:
    image = synthetic_image(3, 1000, seed=5)
    assert image.manifest is None and image.manifest_media_type == mt.OCI_MANIFEST
    assert image.config.media_type == mt.OCI_CONFIG
    doc = json.loads(image.config.data)
    assert doc["architecture"] == "amd64" and doc["os"] == "linux" and doc["config"] == {}
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [str(x.descriptor().digest) for x in image.layers]}
    assert len(doc["history"]) == 3
    assert image.config.descriptor() == synthetic_image(3, 1000, seed=5).config.descriptor()
    assert image.config.descriptor() != synthetic_image(3, 1000, seed=6).config.descriptor()
    reseeded = parse_synthetic("synthetic:layers=3,size=1000,seed=5").image(seed=6)
    assert reseeded.config.data == synthetic_image(3, 1000, 6).config.data


def _traced_peak(work: Callable[[], T]) -> tuple[T, int]:
    """``work()``'s result and the peak of Python's allocations while it ran."""
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.unit
def test_synthetic_streaming_memory() -> None:
    layer = synthetic_image(1, 256 << 20, seed=3).layers[0]
    total, peak = _traced_peak(lambda: sum(len(c) for c in layer.open()))
    assert total > 256 << 20
    assert peak < 8 << 20, peak
    assert layer.known_descriptor() is not None  # the full pass recorded the digest


@pytest.mark.unit
def test_spooled_compression_memory(tmp_path: Path) -> None:
    layer = synthetic_image(1, 32 << 20, seed=3).layers[0]
    blob = SpooledBlob(mt.DOCKER_LAYER_GZIP, layer.open, level=1, tmpdir=str(tmp_path))
    try:
        _, peak = _traced_peak(blob.descriptor)
    finally:
        blob.close()
    assert peak < 16 << 20, peak


@pytest.mark.unit
def test_streamed_compression_on_native_threads_memory() -> None:
    """A layer compressed while it is read, the default way (blocks on every core, hashes
    beside them), from a source much faster than the compressors: the read-ahead of each stage
    is bounded, so 256 MiB pass in a few MiB."""
    from regload.wiring.gevent_runner import NativeThreads

    block = bytearray(os.urandom(BLOCK // 2) + b"layer " * (BLOCK // 12))[:BLOCK]
    blob = SpooledBlob(mt.DOCKER_LAYER_GZIP, lambda: (block for _ in range(256)), threads=NativeThreads())
    size, peak = _traced_peak(lambda: sum(len(piece) for piece in blob.open()))
    desc = blob.known_descriptor()
    assert desc is not None and desc.size == size > 0
    assert peak < 16 << 20, peak  # ~12 MiB; unbounded read-ahead: over 17


# --- OCI layout ------------------------------------------------------------------------------


def write_blob(root: Path, data: bytes) -> str:
    digest = sha(data)
    path = root / "blobs" / "sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def add_image(root: Path, image: SourceImage) -> dict[str, Any]:
    """Write an image's blobs and manifest into a layout; returns the manifest's descriptor."""
    write_blob(root, image.config.data)
    for layer in image.layers:
        write_blob(root, read_all(layer))
    raw = build_manifest(mt.OCI_MANIFEST, image.config.descriptor(), [x.descriptor() for x in image.layers])
    return {"mediaType": mt.OCI_MANIFEST, "digest": write_blob(root, raw), "size": len(raw)}


def write_layout(root: Path, entries: list[dict[str, Any]]) -> Path:
    root.mkdir(exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}))
    return root


def ref(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return {**entry, "annotations": {"org.opencontainers.image.ref.name": name}}


@pytest.mark.unit
def test_oci_layout_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    root.mkdir()
    source = synthetic_image(2, 5000, seed=1)
    entry = add_image(root, source)
    write_layout(root, [ref(entry, "v1")])
    image = open_oci_layout(str(root))
    assert image.manifest is not None and sha(image.manifest) == entry["digest"]
    assert image.manifest_media_type == mt.OCI_MANIFEST
    assert image.config.data == source.config.data and image.config.media_type == mt.OCI_CONFIG
    for mine, theirs in zip(image.layers, source.layers, strict=True):
        assert mine.known_descriptor() == theirs.descriptor()
        assert read_all(mine) == read_all(theirs)
    assert "v1" in open_oci_layout(str(root), "v1").description
    assert_one_line_error(lambda: open_oci_layout(str(root), "v2"), "no image named 'v2'", "v1")


@pytest.mark.unit
def test_oci_layout_tampered_blob_fails_while_streaming(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    root.mkdir()
    write_layout(root, [add_image(root, synthetic_image(1, 5000, seed=1))])
    image = open_oci_layout(str(root))
    blob = image.layers[0]
    known = blob.known_descriptor()
    assert known is not None
    path = root / "blobs" / "sha256" / known.digest.hex
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    path.write_bytes(bytes(data))
    chunks = blob.open()
    next(chunks)  # the content streams; the mismatch is raised at its end
    assert_one_line_error(lambda: list(chunks), "layer 1 of 1", "content has digest", known.digest.short)
    path.write_bytes(bytes(data[:-1]))
    assert_one_line_error(lambda: open_oci_layout(str(root)), f"is {known.size - 1} bytes", f"says {known.size}")
    path.unlink()
    assert_one_line_error(lambda: open_oci_layout(str(root)), "is missing")


@pytest.mark.unit
def test_oci_layout_tampered_manifest_and_config(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    root.mkdir()
    source = synthetic_image(1, 100, seed=1)
    entry = add_image(root, source)
    write_layout(root, [entry])
    config = root / "blobs" / "sha256" / source.config.descriptor().digest.hex
    config.write_bytes(config.read_bytes().replace(b"amd64", b"arm64"))
    assert_one_line_error(lambda: open_oci_layout(str(root)), "config blob does not match its digest")
    manifest = root / "blobs" / "sha256" / entry["digest"][7:]
    manifest.write_bytes(manifest.read_bytes().replace(b"schemaVersion", b"schemaversion"))
    assert_one_line_error(lambda: open_oci_layout(str(root)), "manifest blob does not match its digest")


@pytest.mark.unit
def test_oci_layout_picks_platform_from_index(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    root.mkdir()
    amd = {**add_image(root, synthetic_image(1, 100, seed=1)), "platform": {"os": "linux", "architecture": "amd64"}}
    arm = {**add_image(root, synthetic_image(1, 100, seed=2)), "platform": {"os": "linux", "architecture": "arm64"}}
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [arm, amd]}).encode()
    nested = {"mediaType": mt.OCI_INDEX, "digest": write_blob(root, index), "size": len(index)}
    write_layout(root, [ref(nested, "multi"), ref(amd, "single")])
    image = open_oci_layout(str(root), "multi")
    assert image.manifest is not None and sha(image.manifest) == amd["digest"]
    image = open_oci_layout(str(root), "multi", Platform("linux", "arm64"))
    assert image.manifest is not None and sha(image.manifest) == arm["digest"]
    assert_one_line_error(
        lambda: open_oci_layout(str(root), "multi", Platform("linux", "s390x")), "no manifest for platform"
    )
    assert_one_line_error(lambda: open_oci_layout(str(root)), "2 images in the layout", "multi, single")
    write_layout(root, [arm, amd])  # one image listed per platform, no index blob
    image = open_oci_layout(str(root))
    assert image.manifest is not None and sha(image.manifest) == amd["digest"]


@pytest.mark.unit
def test_oci_layout_bad_directories(tmp_path: Path) -> None:
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path / "nope")), "no such directory")
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path)), "no oci-layout file")
    (tmp_path / "oci-layout").write_text("{}")
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path)), "imageLayoutVersion")
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path)), "index.json")
    (tmp_path / "index.json").write_text("[")
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path)), "index.json", "not valid JSON")
    write_layout(tmp_path, [])
    assert_one_line_error(lambda: open_oci_layout(str(tmp_path)), "lists no images")


@pytest.mark.unit
def test_parse_layout_arg(tmp_path: Path) -> None:
    plain = tmp_path / "layout"
    colon = tmp_path / "odd:name"
    plain.mkdir()
    colon.mkdir()
    assert parse_layout_arg(str(plain)) == (str(plain), None)
    assert parse_layout_arg(f"{plain}:v1") == (str(plain), "v1")
    assert parse_layout_arg(f"{plain}:alpine:3.19") == (str(plain), "alpine:3.19")
    assert parse_layout_arg(str(colon)) == (str(colon), None)
    assert parse_layout_arg(f"{colon}:v1") == (str(colon), "v1")
    assert parse_layout_arg(f"{plain}:") == (str(plain), None)
    assert parse_layout_arg(f"{tmp_path}/missing:v1") == (f"{tmp_path}/missing:v1", None)
    assert split_path_ref("a:b:c", {"a"}.__contains__) == ("a", "b:c")


# --- dispatch --------------------------------------------------------------------------------


@pytest.mark.unit
def test_open_source_dispatch(tmp_path: Path) -> None:
    tarball = str(docker_save(tmp_path, tags=["app:1"]))
    root = tmp_path / "layout"
    root.mkdir()
    write_layout(root, [ref(add_image(root, synthetic_image(1, 100, seed=1)), "v1")])
    assert open_source("synthetic:layers=2").description == "synthetic:layers=2,size=1048576,seed=0"
    assert open_source(str(root)).manifest is not None
    assert "v1" in open_source(f"{root}:v1").description
    assert "v1" in open_source(f"oci:{root}:v1").description
    assert open_source(str(root), platform="linux/amd64").manifest is not None
    with_tag = open_source(f"{tarball}:app:1", compression="none")
    assert "app:1" in with_tag.description and with_tag.layers[0].known_descriptor() is not None
    assert "app:1" in open_source(f"docker-archive:{tarball}").description
    assert "app:1" in open_source(f"docker-archive:{tarball}:app:1").description
    assert_one_line_error(lambda: open_source(str(tmp_path / "missing")), "no such file or directory")
    assert_one_line_error(lambda: open_source(str(root), platform="linux"), "invalid platform")
    assert_one_line_error(lambda: open_source(f"{tarball}:other"), "no image tagged 'other'")


# --- peers: skopeo and umoci read what synthetic makes; regload reads what skopeo writes ------


def synthetic_layout(root: Path, image: SourceImage) -> Path:
    root.mkdir()
    return write_layout(root, [ref(add_image(root, image), "latest")])


@pytest.mark.registry
def test_umoci_unpacks_synthetic_image(tmp_path: Path) -> None:
    root = synthetic_layout(tmp_path / "layout", synthetic_image(2, 70_000, seed=9))
    bundle = tmp_path / "bundle"
    umoci = shutil.which("umoci")
    assert umoci is not None, f"umoci is missing: {INSTALL_HINT}"
    subprocess.run(
        [umoci, "unpack", "--rootless", "--image", f"{root}:latest", str(bundle)], check=True, capture_output=True
    )
    for i in (1, 2):
        assert (bundle / "rootfs" / "regload" / f"layer-{i}.bin").stat().st_size == 70_000


@pytest.mark.registry
def test_skopeo_docker_archive_reads_back(tmp_path: Path) -> None:
    source = synthetic_image(2, 300_000, seed=4)
    root = synthetic_layout(tmp_path / "layout", source)
    archive = tmp_path / "image.tar"
    skopeo_copy(f"oci:{root}:latest", f"docker-archive:{archive}:example/synthetic:4")
    image = open_source(str(archive), compression="gzip", level=1)
    assert "example/synthetic:4" in image.description
    for mine, original in zip(image.layers, source.layers, strict=True):
        assert mine.media_type == mt.DOCKER_LAYER_GZIP
        assert gzip.decompress(read_all(mine)) == read_all(original)
    image.close()
    plain = open_source(f"docker-archive:{archive}:example/synthetic:4", compression="none")
    known = [x.known_descriptor() for x in plain.layers]
    assert [(d.digest, d.size) for d in known if d] == [
        (x.descriptor().digest, x.descriptor().size) for x in source.layers
    ]
    assert [read_all(x) for x in plain.layers] == [read_all(x) for x in source.layers]


@pytest.mark.registry
def test_skopeo_oci_layout_reads_back(tmp_path: Path) -> None:
    source = synthetic_image(1, 50_000, seed=5)
    archive = tmp_path / "image.tar"
    skopeo_copy(f"oci:{synthetic_layout(tmp_path / 'layout', source)}:latest", f"docker-archive:{archive}:x:1")
    out = tmp_path / "skopeo-layout"
    skopeo_copy(f"docker-archive:{archive}", f"oci:{out}:v1", extra=["--dest-compress"])
    image = open_source(f"oci:{out}:v1")
    assert image.manifest is not None and image.manifest == skopeo_manifest(f"oci:{out}:v1")
    layer = image.layers[0]
    assert layer.media_type == mt.OCI_LAYER_GZIP
    assert gzip.decompress(read_all(layer)) == read_all(source.layers[0])
