"""Build OCI image layouts from a Python description, byte for byte reproducibly.

A layer is a mapping from path to entry; an image is a list of layers::

    image = make_oci_layout(tmp_path / "oci", [
        {"etc/hostname": b"bed\\n", "bin/tool": File(b"#!/bin/sh\\n", mode=0o755),
         "bin/alias": Symlink("tool"), "bin/copy": Hardlink("bin/tool")},
        {"etc/hostname": WHITEOUT, "var/cache": OPAQUE, "var/cache/new": b"x"},
    ])
    image.ref  # "oci:/…/oci:latest", for skopeo

Entries keep their insertion order (a ``Hardlink`` must follow its target; crafted layers can
put entries in any order). Missing parent directories are added as ``0755`` dirs unless
``auto_parents=False``. Paths are written as given: ``"../x"`` or ``"/abs"`` make unsafe layers.
Every header has uid/gid 0 and a fixed mtime, and gzip's own mtime is 0.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import posixpath
import random
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

MTIME = 1_600_000_000  # 2020-09-13: any fixed instant keeps the tars reproducible
CREATED = "2020-09-13T12:26:40Z"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class File:
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Dir:
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Symlink:
    target: str


@dataclass(frozen=True)
class Hardlink:
    """A hard link to ``target``, a path written earlier in the same layer."""

    target: str


@dataclass(frozen=True)
class Whiteout:
    """Deletes the path from lower layers: written as ``<dir>/.wh.<name>``."""


@dataclass(frozen=True)
class Opaque:
    """A directory hiding what lower layers had in it: the dir plus ``<dir>/.wh..wh..opq``."""

    mode: int = 0o755


WHITEOUT = Whiteout()
OPAQUE = Opaque()

Entry = bytes | File | Dir | Symlink | Hardlink | Whiteout | Opaque
Layer = Mapping[str, Entry]


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            **self.extra,
        }


@dataclass(frozen=True)
class OciImage:
    """One image written into an OCI layout, and the descriptors of what was written."""

    layout: Path
    tag: str
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    platform: str

    @property
    def ref(self) -> str:
        """skopeo's name for it: ``oci:LAYOUT:TAG``."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def umoci_ref(self) -> str:
        return f"{self.layout}:{self.tag}"

    def blob(self, descriptor: Descriptor) -> bytes:
        return blob_path(self.layout, descriptor.digest).read_bytes()


@dataclass(frozen=True)
class OciIndex:
    """A multi-platform image: an index blob tagged in the layout, and its images."""

    layout: Path
    tag: str
    index: Descriptor
    images: tuple[OciImage, ...]

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def pseudo_random_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible but reproducible content (for blobs of a known size)."""
    return random.Random(seed).randbytes(size)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _tarinfo(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = MTIME
    return info


def _parents(name: str) -> list[str]:
    parts = [p for p in name.strip("/").split("/") if p not in ("", ".")]
    if ".." in parts:
        return []  # a crafted path: leave it exactly as the caller wrote it
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def layer_tar(layer: Layer, *, auto_parents: bool = True) -> bytes:
    """The uncompressed tar of one layer (its digest is the image config's ``diff_id``)."""
    buf = io.BytesIO()
    write_layer_tar(buf, layer.items(), auto_parents=auto_parents)
    return buf.getvalue()


def write_layer_tar(out: BinaryIO, entries: Iterable[tuple[str, Entry]], *, auto_parents: bool = True) -> None:
    """Write the tar of ``(path, entry)`` pairs to ``out``, streamed: a layer of any size."""
    written: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            if auto_parents:
                for parent in _parents(info.name):
                    if parent not in written:
                        written.add(parent)
                        tar.addfile(_tarinfo(parent, tarfile.DIRTYPE, 0o755))
            written.add(info.name.strip("/"))
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for name, entry in entries:
            if isinstance(entry, bytes):
                entry = File(entry)
            if isinstance(entry, File):
                info = _tarinfo(name, tarfile.REGTYPE, entry.mode, entry.uid, entry.gid)
                add(info, entry.data)
            elif isinstance(entry, Dir):
                add(_tarinfo(name, tarfile.DIRTYPE, entry.mode, entry.uid, entry.gid))
            elif isinstance(entry, Symlink):
                info = _tarinfo(name, tarfile.SYMTYPE, 0o777)
                info.linkname = entry.target
                add(info)
            elif isinstance(entry, Hardlink):
                info = _tarinfo(name, tarfile.LNKTYPE, 0o644)
                info.linkname = entry.target
                add(info)
            elif isinstance(entry, Whiteout):
                parent, base = posixpath.split(name.rstrip("/"))
                add(_tarinfo(posixpath.join(parent, ".wh." + base), tarfile.REGTYPE, 0o644), b"")
            elif isinstance(entry, Opaque):
                add(_tarinfo(name, tarfile.DIRTYPE, entry.mode))
                add(_tarinfo(posixpath.join(name, ".wh..wh..opq"), tarfile.REGTYPE, 0o644), b"")
            else:
                raise TypeError(f"unknown layer entry for {name!r}: {entry!r}")


class _HashingWriter:
    """Passes writes on to ``out`` and hashes and counts them (tarfile asks for ``tell``)."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._out.flush()


def write_layer_blob(
    layout: Path, entries: Iterable[tuple[str, Entry]], *, compresslevel: int = 6, auto_parents: bool = True
) -> tuple[Descriptor, str]:
    """Stream a gzip-compressed layer into the layout's blobs (never whole in memory); returns
    its descriptor and its diff_id."""
    return write_gzip_layer(layout, lambda tar: write_layer_tar(tar, entries, auto_parents=auto_parents), compresslevel)


def write_gzip_layer(
    layout: Path, write_tar: Callable[[BinaryIO], None], compresslevel: int = 6
) -> tuple[Descriptor, str]:
    """A gzip-compressed layer blob of the tar that ``write_tar(out)`` writes; returns its
    descriptor and its diff_id (the tar's digest)."""
    _init_layout(layout)
    partial = layout / "blobs" / "sha256" / f".partial-{os.getpid()}"
    with open(partial, "wb") as f:
        blob = _HashingWriter(f)
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=compresslevel, mtime=0) as gz:  # type: ignore[arg-type]
            tar = _HashingWriter(gz)
            write_tar(tar)  # type: ignore[arg-type]
    digest = "sha256:" + blob.sha256.hexdigest()
    partial.rename(blob_path(layout, digest))
    return Descriptor(OCI_LAYER_GZIP, digest, blob.size), "sha256:" + tar.sha256.hexdigest()


def make_oci_layout_of_layer_blobs(
    layout: Path, layers: Sequence[tuple[Descriptor, str]], *, tag: str = "latest"
) -> OciImage:
    """An image of layer blobs already in the layout, given as (descriptor, diff_id) pairs."""
    layer_descs = [desc for desc, _ in layers]
    diff_ids = [diff_id for _, diff_id in layers]
    manifest, config_desc, layer_tuple, diff_tuple = _write_config_and_manifest(layout, layer_descs, diff_ids)
    _tag(layout, manifest, tag)
    return OciImage(layout, tag, manifest, config_desc, layer_tuple, diff_tuple, "linux/amd64")


def write_blob(layout: Path, data: bytes, media_type: str, **extra: Any) -> Descriptor:
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return Descriptor(media_type, digest, len(data), extra)


def _init_layout(layout: Path) -> None:
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)


def _tag(layout: Path, descriptor: Descriptor, tag: str) -> Descriptor:
    """Point ``tag`` at ``descriptor`` in index.json, replacing an earlier entry of that tag."""
    index_file = layout / "index.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    kept = [m for m in index.get("manifests", []) if m.get("annotations", {}).get(REF_NAME) != tag]
    tagged = Descriptor(
        descriptor.media_type,
        descriptor.digest,
        descriptor.size,
        {
            **descriptor.extra,
            "annotations": {REF_NAME: tag},
        },
    )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*kept, tagged.to_json()]}
    index_file.write_text(json.dumps(index, indent=2))
    return tagged


def _platform(platform: str) -> dict[str, str]:
    os_, arch, *variant = platform.split("/")
    return {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}


def write_image(
    layout: Path,
    layers: Sequence[Layer],
    *,
    compress: bool = True,
    platform: str = "linux/amd64",
    config: Mapping[str, Any] | None = None,
    auto_parents: bool = True,
) -> tuple[Descriptor, Descriptor, tuple[Descriptor, ...], tuple[str, ...]]:
    """Write the layer, config and manifest blobs; return (manifest, config, layers, diff_ids)."""
    tars = [layer_tar(layer, auto_parents=auto_parents) for layer in layers]
    return _write_image_of_tars(layout, tars, compress=compress, platform=platform, config=config)


def _write_image_of_tars(
    layout: Path,
    tars: Sequence[bytes],
    *,
    compress: bool,
    platform: str = "linux/amd64",
    config: Mapping[str, Any] | None = None,
) -> tuple[Descriptor, Descriptor, tuple[Descriptor, ...], tuple[str, ...]]:
    _init_layout(layout)
    layer_descs, diff_ids = [], []
    for tar in tars:
        diff_ids.append(sha256_digest(tar))
        if compress:
            layer_descs.append(write_blob(layout, gzip.compress(tar, mtime=0), OCI_LAYER_GZIP))
        else:
            layer_descs.append(write_blob(layout, tar, OCI_LAYER))
    return _write_config_and_manifest(layout, layer_descs, diff_ids, platform=platform, config=config)


def _write_config_and_manifest(
    layout: Path,
    layer_descs: Sequence[Descriptor],
    diff_ids: Sequence[str],
    *,
    platform: str = "linux/amd64",
    config: Mapping[str, Any] | None = None,
) -> tuple[Descriptor, Descriptor, tuple[Descriptor, ...], tuple[str, ...]]:
    """The config and manifest blobs of an image whose layer blobs are in the layout."""
    image_config = {
        "created": CREATED,
        **_platform(platform),
        "config": dict(config or {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"]}),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"regload test layer {i}"} for i in range(len(diff_ids))],
    }
    config_desc = write_blob(layout, _canonical_json(image_config), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [d.to_json() for d in layer_descs],
    }
    manifest_desc = write_blob(layout, _canonical_json(manifest), OCI_MANIFEST)
    return manifest_desc, config_desc, tuple(layer_descs), tuple(diff_ids)


def make_oci_layout(
    layout: Path,
    layers: Layer | Sequence[Layer],
    *,
    tag: str = "latest",
    compress: bool = True,
    platform: str = "linux/amd64",
    config: Mapping[str, Any] | None = None,
    auto_parents: bool = True,
) -> OciImage:
    """Write an image into the OCI layout at ``layout`` (created or added to), tagged ``tag``."""
    layer_list: Sequence[Layer] = [layers] if isinstance(layers, Mapping) else layers
    manifest, config_desc, layer_descs, diff_ids = write_image(
        layout,
        layer_list,
        compress=compress,
        platform=platform,
        config=config,
        auto_parents=auto_parents,
    )
    _tag(layout, manifest, tag)
    return OciImage(layout, tag, manifest, config_desc, layer_descs, diff_ids, platform)


def make_oci_layout_of_tars(
    layout: Path, tars: Sequence[bytes], *, tag: str = "latest", compress: bool = True
) -> OciImage:
    """An image whose layers are these tar files byte for byte: crafted layers (hostile names,
    devices) that a ``Layer`` mapping does not describe. Their digests are the diff_ids."""
    manifest, config_desc, layer_descs, diff_ids = _write_image_of_tars(layout, tars, compress=compress)
    _tag(layout, manifest, tag)
    return OciImage(layout, tag, manifest, config_desc, layer_descs, diff_ids, "linux/amd64")


def make_oci_layout_streamed(
    layout: Path,
    layers: Sequence[Iterable[tuple[str, Entry]]],
    *,
    tag: str = "latest",
    compresslevel: int = 6,
    auto_parents: bool = True,
) -> OciImage:
    """An image of large layers, each given as ``(path, entry)`` pairs and streamed to its blob."""
    blobs = [write_layer_blob(layout, e, compresslevel=compresslevel, auto_parents=auto_parents) for e in layers]
    return make_oci_layout_of_layer_blobs(layout, blobs, tag=tag)


def with_diff_ids(image: OciImage, diff_ids: Sequence[str], tag: str) -> OciImage:
    """The same layer blobs under a config whose ``rootfs.diff_ids`` are ``diff_ids`` (a config
    that lies about its layers), tagged ``tag`` in the same layout."""
    manifest, config_desc, layers, ids = _write_config_and_manifest(image.layout, image.layers, diff_ids)
    _tag(image.layout, manifest, tag)
    return OciImage(image.layout, tag, manifest, config_desc, layers, ids, image.platform)


def make_layout_of_manifest(layout: Path, raw: bytes, media_type: str, *, tag: str = "latest") -> Descriptor:
    """A layout whose image ``tag`` is the manifest ``raw`` exactly as given (even invalid), listed
    in index.json with ``media_type``; no other blob is written."""
    _init_layout(layout)
    return _tag(layout, write_blob(layout, raw, media_type), tag)


def make_oci_index_layout(
    layout: Path,
    platforms: Mapping[str, Sequence[Layer]],
    *,
    tag: str = "latest",
    compress: bool = True,
) -> OciIndex:
    """A multi-platform image: one manifest per ``"os/arch[/variant]"``, under one tagged index."""
    images = []
    for platform, layers in platforms.items():
        manifest, config_desc, layer_descs, diff_ids = write_image(layout, layers, compress=compress, platform=platform)
        images.append(OciImage(layout, tag, manifest, config_desc, layer_descs, diff_ids, platform))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{**image.manifest.to_json(), "platform": _platform(image.platform)} for image in images],
    }
    index_desc = write_blob(layout, _canonical_json(index), OCI_INDEX)
    _tag(layout, index_desc, tag)
    return OciIndex(layout, tag, index_desc, tuple(images))


def umoci_unpack(image: OciImage, bundle: Path, *, timeout: float = 60) -> Path:
    """Unpack with umoci (the reference extractor) and return the bundle's ``rootfs``."""
    cmd = ["umoci", "unpack", "--image", image.umoci_ref, str(bundle)]
    if os.geteuid() != 0:
        cmd.insert(2, "--rootless")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr}")
    return bundle / "rootfs"
