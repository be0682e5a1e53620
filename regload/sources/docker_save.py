"""Push source for ``docker save`` tarballs, both layouts.

Legacy (``<id>.json``, ``<id>/layer.tar``, ``repositories``) and Docker 25+ (an OCI layout with
``blobs/sha256/…``) both carry ``manifest.json``, whose ``Config`` and ``Layers`` name the
members to push: reading it handles both. Members are read in place (a seek into the tarball);
nothing is extracted. The layers are uncompressed tars whose digests must equal the config's
``rootfs.diff_ids``: that is checked during the single pass that compresses (or first streams)
each one.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator
from typing import Any

from .. import mediatypes as mt
from ..compression import SNIFF_SIZE, Gunzip, sniff
from ..digest import Digest
from ..errors import InvalidDigest, SourceError
from ..streams import Chunk, StreamCheck
from .base import BlobSource, BytesBlob, SourceImage
from .compress import DEFAULT_LEVEL, INLINE, SpooledBlob, Threads, check_level
from .digest_cache import DigestCache
from .files import DigestCheck, FileBlob, read_range

MAX_JSON = 64 << 20  # manifest.json or a config larger than this is not a docker save
_BLOB_RE = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
COMPRESSIONS = ("gzip", "none")


def open_docker_save(
    path: str,
    compression: str = "gzip",
    level: int | None = DEFAULT_LEVEL,
    *,
    select: str | None = None,
    tmpdir: str | None = None,
    threads: Threads = INLINE,
    cache: DigestCache | None = None,
) -> SourceImage:
    """Open a ``docker save`` tarball: its first image, or the one tagged ``select``.

    ``compression`` ``gzip`` pushes layers gzip-compressed (ISA-L, or zlib at ``level``; see
    ``compress.py``; its heavy steps on ``threads``; what each layer compressed to remembered in
    ``cache``), compressed while it uploads, or spooled once into ``tmpdir`` when its digest is
    needed first;
    ``none`` pushes them as the uncompressed tars they are. A layer that is already gzip in the
    tarball is pushed as it is.
    """
    if compression not in COMPRESSIONS:
        raise SourceError(f"invalid compression {compression!r}: expected gzip or none")
    check_level(level)
    tar = _Tarball(path)
    entry, tag = _pick(_manifest_entries(tar), select, path)
    config_name = entry["Config"]
    config_raw = tar.read(config_name, "config")
    _check_content_address(config_name, config_raw, path)
    diff_ids = _diff_ids(config_raw, f"{path}: config {config_name}")
    names = entry["Layers"]
    if len(names) != len(diff_ids):
        raise SourceError(
            f"{path}: manifest.json lists {len(names)} layers but the config has {len(diff_ids)} diff_ids"
        )
    layers: list[BlobSource] = []
    image = SourceImage(mt.DOCKER_MANIFEST, BytesBlob(mt.DOCKER_CONFIG, config_raw), layers)
    image.description = f"{path} ({tag or 'untagged image'})"
    for i, (name, diff_id) in enumerate(zip(names, diff_ids, strict=True)):
        what = f"{path}: layer {i + 1} of {len(names)} ({name})"
        offset, size = tar.locate(name, f"layer {i + 1}")
        blob = _layer(path, offset, size, diff_id, what, compression, level, tmpdir, threads, cache)
        layers.append(blob)
        if isinstance(blob, SpooledBlob):
            image.cleanup.append(blob.close)
    return image


def _layer(
    path: str,
    offset: int,
    size: int,
    diff_id: Digest,
    what: str,
    compression: str,
    level: int | None,
    tmpdir: str | None,
    threads: Threads,
    cache: DigestCache | None,
) -> BlobSource:
    head = _head(path, offset, size, tarfile.BLOCKSIZE)
    if sniff(head) == "gzip":  # compressed already: push it as it is

        def gzip_checks() -> list[StreamCheck]:
            return [_GzipDiffIdCheck(diff_id, what)]

        return FileBlob(mt.DOCKER_LAYER_GZIP, path, offset=offset, size=size, what=what, checks=gzip_checks)
    _check_tar_head(head, what)
    if compression == "none":
        return FileBlob(mt.DOCKER_LAYER_TAR, path, offset=offset, size=size, digest=diff_id, what=what, kind="diff_id")

    def content() -> Iterator[Chunk]:
        return read_range(path, offset, size, what)

    def diff_id_check() -> list[StreamCheck]:
        return [DigestCheck(diff_id, size, what, kind="diff_id")]

    return SpooledBlob(
        mt.DOCKER_LAYER_GZIP,
        content,
        checks=diff_id_check,
        level=level,
        tmpdir=tmpdir,
        what=what,
        threads=threads,
        cache=cache,
        cache_key=str(diff_id),
    )


class _GzipDiffIdCheck:
    """For a layer stored compressed: its decompressed content must have the diff_id."""

    def __init__(self, diff_id: Digest, what: str) -> None:
        self._gunzip = Gunzip(lambda reason: SourceError(f"{what}: {reason}"))
        self._check = DigestCheck(diff_id, None, what, kind="diff_id")

    def update(self, chunk: Chunk) -> None:
        for out in self._gunzip.feed(chunk):
            self._check.update(out)

    def check(self) -> None:
        self._gunzip.finish()
        self._check.check()


class _Tarball:
    """The member index of a tarball: name → data offset and size, links followed."""

    def __init__(self, path: str) -> None:
        self.path = path
        kind = sniff(_head(path, 0, SNIFF_SIZE, SNIFF_SIZE))
        if kind:
            raise SourceError(f"{path}: is {kind}-compressed; docker save writes a plain tar: decompress it first")
        try:
            file_size = os.path.getsize(path)
            with tarfile.open(path, "r:") as tf:
                members = tf.getmembers()
                end = tf.offset
        except tarfile.ReadError as e:
            if "unexpected end" in str(e):
                raise SourceError(f"{path}: truncated tar archive") from None
            raise SourceError(f"{path}: not a tar archive ({e})") from None
        except (tarfile.TarError, EOFError, UnicodeError) as e:
            raise SourceError(f"{path}: corrupt tar archive ({e})") from None
        except OSError as e:
            raise SourceError(f"{path}: cannot read: {e.strerror or e}") from None
        for m in members:
            why = _escapes(m)
            if why:
                raise SourceError(f"{path}: refusing member {m.name[:100]!r}: {why} (not a docker save tarball)")
        self.members = {_norm(m.name): m for m in members}
        self._file_size = file_size
        self.damage = _damage(path, end)

    def locate(self, name: str, what: str) -> tuple[int, int]:
        """Data offset and size of the regular file ``name`` (following links)."""
        m = self._member(name, what)
        if m.issparse():
            raise SourceError(f"{self.path}: {what} {name} is a sparse file, which docker save never writes")
        if m.offset_data + m.size > self._file_size:
            raise SourceError(f"{self.path}: truncated tar archive ({name} is incomplete)")
        return m.offset_data, m.size

    def read(self, name: str, what: str) -> bytes:
        offset, size = self.locate(name, what)
        if size > MAX_JSON:
            raise SourceError(f"{self.path}: {what} {name} is {size} bytes, too large")
        return b"".join(read_range(self.path, offset, size, f"{self.path}: {what}"))

    def _member(self, name: str, what: str) -> tarfile.TarInfo:
        key = _norm(name)
        for _ in range(16):  # links may chain; a loop must end
            m = self.members.get(key)
            if m is None:
                raise SourceError(
                    f"{self.path}: {self.damage or f'{what} {name} named in manifest.json is not in the tarball'}"
                )
            if m.issym():
                key = _norm(posixpath.join(posixpath.dirname(key), m.linkname))
            elif m.islnk():
                key = _norm(m.linkname)
            elif m.isfile():
                return m
            else:
                raise SourceError(f"{self.path}: {what} {name} is not a regular file")
        raise SourceError(f"{self.path}: {what} {name} is a link loop")


def _manifest_entries(tar: _Tarball) -> list[dict[str, Any]]:
    if "manifest.json" not in tar.members:
        if tar.damage:
            raise SourceError(f"{tar.path}: {tar.damage}")
        hint = " (an OCI archive? unpack it and push the directory)" if "index.json" in tar.members else ""
        raise SourceError(f"{tar.path}: no manifest.json: not a docker save tarball{hint}")
    raw = tar.read("manifest.json", "manifest.json")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SourceError(f"{tar.path}: manifest.json is not valid JSON") from None
    if not isinstance(doc, list) or not doc:
        raise SourceError(f"{tar.path}: manifest.json is not a non-empty list of images")
    for i, e in enumerate(doc):
        ok = isinstance(e, dict) and isinstance(e.get("Config"), str) and isinstance(e.get("Layers"), list)
        if not ok or not all(isinstance(x, str) for x in e["Layers"]):
            raise SourceError(f"{tar.path}: manifest.json image {i + 1} lacks a Config name or a Layers list")
    return doc


def _pick(entries: list[dict[str, Any]], select: str | None, path: str) -> tuple[dict[str, Any], str | None]:
    """The image to push, and the tag that names it. ``select`` matches a RepoTag in its short
    form (``alpine`` = ``alpine:latest`` = ``docker.io/library/alpine:latest``, as skopeo writes)."""

    def tags(e: dict[str, Any]) -> list[str]:
        return [t for t in e.get("RepoTags") or () if isinstance(t, str)]

    if select is None:
        first = entries[0]
        return first, next(iter(tags(first)), None)
    wanted = _short_tag(select)
    for e in entries:
        for t in tags(e):
            if _short_tag(t) == wanted:
                return e, t
    have = ", ".join(t for e in entries for t in tags(e)) or "none"
    raise SourceError(f"{path}: no image tagged {select!r} (tags: {have})")


def _short_tag(tag: str) -> str:
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag += ":latest"
    tag = tag.removeprefix("docker.io/")
    return tag.removeprefix("library/") if tag.count("/") == 1 else tag


def _diff_ids(raw: bytes, where: str) -> list[Digest]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SourceError(f"{where} is not valid JSON") from None
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise SourceError(f"{where} has no rootfs.diff_ids list")
    try:
        return [Digest.parse(d) for d in ids]
    except InvalidDigest as e:
        raise SourceError(f"{where}: rootfs.diff_ids: {e}") from None


def _damage(path: str, end: int) -> str | None:
    """Why the member listing stopped at ``end``, unless at a proper end-of-archive block.

    ``tarfile`` ends the listing silently at a cut or garbled header; a member missing from
    such a tarball is reported as this damage rather than as a bad manifest.json.
    """
    block = _head(path, end, 512, 512)
    if len(block) < 512:
        return "truncated tar archive"
    if block.count(0) != len(block):
        return f"corrupt tar archive (invalid header at byte {end})"
    return None


def _escapes(m: tarfile.TarInfo) -> str | None:
    """Why a member points out of the archive: an absolute or ``..`` name, or a link whose
    target is. docker save writes none; ``docker load`` refuses them (they would escape its
    extraction directory). regload only reads members in place, but such a tarball is hostile."""
    if _leaves(m.name):
        return "its name leads out of the archive"
    if m.issym() and _leaves(posixpath.join(posixpath.dirname(m.name), m.linkname)):
        return f"it is a symlink to {m.linkname[:100]!r}, outside the archive"
    if m.islnk() and _leaves(m.linkname):
        return f"it is a hard link to {m.linkname[:100]!r}, outside the archive"
    return None


def _leaves(name: str) -> bool:
    normal = posixpath.normpath(name) if name else "."
    return name.startswith("/") or normal == ".." or normal.startswith("../")


def _check_tar_head(head: bytes, what: str) -> None:
    """A docker save layer is an uncompressed tar: refuse anything else before it is pushed.
    An all-zero first block is the end marker of an empty layer, which docker writes."""
    kind = sniff(head)
    if kind:
        raise SourceError(f"{what}: is {kind}-compressed; a docker save layer is a tar")
    if head == bytes(tarfile.BLOCKSIZE):
        return
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        raise SourceError(f"{what}: is not a tar archive") from None


def _check_content_address(name: str, raw: bytes, path: str) -> None:
    """A Docker 25+ config lives at ``blobs/sha256/<its digest>``: check it."""
    m = _BLOB_RE.match(_norm(name))
    if m and Digest.of(raw).hex != m.group(1):
        raise SourceError(f"{path}: config {name} does not match its digest (corrupt tarball)")


def _head(path: str, offset: int, size: int, n: int) -> bytes:
    """The first ``n`` bytes (at most ``size``) at ``offset`` of ``path``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(min(n, size))
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory, not a docker save tarball") from None
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {e.strerror or e}") from None


def _norm(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")
