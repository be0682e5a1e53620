"""Hand-built layers and image layouts for the sink tests, entry by entry and in exact order.

Unlike ``tests.support.images`` (a mapping per layer, parents added for you), a layer here is
the literal list of tar entries: hostile names, markers placed before or after their siblings,
devices, xattrs, odd owners and modes are all written exactly as given. ``write_layout`` stores
such layers as an OCI layout (OCI or Docker media types, each layer gzip or plain tar), and
``pulled_image`` turns a layout into the ``PulledImage`` a sink receives from the pull flow.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import posixpath
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regload import mediatypes as mt
from regload.blobstore import BlobStore
from regload.digest import Digest
from regload.manifest import ImageManifest, parse_manifest
from regload.sinks.base import PulledImage

MTIME = 1_600_000_000
Entry = tuple[tarfile.TarInfo, bytes | None]


def _info(name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, mtime
    return info


def file(
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = MTIME,
    xattrs: dict[str, bytes] | None = None,
) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
    info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in (xattrs or {}).items()}
    return info, data


def directory(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = MTIME) -> Entry:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid, mtime), None


def symlink(name: str, target: str, uid: int = 0, gid: int = 0, mtime: float = MTIME) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime)
    info.linkname = target
    return info, None


def hardlink(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644, 0, 0, MTIME)
    info.linkname = target
    return info, None


def whiteout(path: str) -> Entry:
    """``dir/.wh.name``: hides ``path`` of lower layers (OCI image-spec layer.md "Whiteouts")."""
    parent, base = posixpath.split(path)
    return file(posixpath.join(parent, ".wh." + base))


def opaque(dir_path: str) -> Entry:
    """``dir/.wh..wh..opq``: hides every lower-layer child of ``dir_path``."""
    return file(posixpath.join(dir_path, ".wh..wh..opq"))


def device(name: str, kind: str, major: int = 0, minor: int = 0, mode: int = 0o666) -> Entry:
    types = {"char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    info = _info(name, types[kind], mode, 0, 0, MTIME)
    info.devmajor, info.devminor = major, minor
    return info, None


def layer_tar(entries: Sequence[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info = _copy(info)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _copy(info: tarfile.TarInfo) -> tarfile.TarInfo:
    clone = tarfile.TarInfo(info.name)
    for attr in ("type", "mode", "uid", "gid", "mtime", "linkname", "devmajor", "devminor", "uname", "gname"):
        setattr(clone, attr, getattr(info, attr))
    clone.pax_headers = dict(info.pax_headers)
    return clone


@dataclass(frozen=True)
class Layout:
    path: Path
    tag: str
    manifest: bytes
    config: bytes
    diff_ids: tuple[str, ...]

    @property
    def umoci_ref(self) -> str:
        return f"{self.path}:{self.tag}"


def write_layout(
    path: Path,
    layers: Sequence[Sequence[Entry]],
    *,
    tag: str = "latest",
    compression: str | Sequence[str] = "gzip",
    docker_types: bool = False,
    diff_ids: Sequence[str] | None = None,
) -> Layout:
    """An OCI layout holding one image. ``compression`` is ``gzip``/``none`` (or one per layer);
    ``diff_ids`` overrides the config's (to build a mismatching image)."""
    kinds = [compression] * len(layers) if isinstance(compression, str) else list(compression)
    (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    descs, ids = [], []
    for entries, kind in zip(layers, kinds, strict=True):
        tar = layer_tar(entries)
        ids.append(str(Digest.of(tar)))
        blob = gzip.compress(tar, mtime=0) if kind == "gzip" else tar
        if docker_types:
            media = mt.DOCKER_LAYER_GZIP if kind == "gzip" else mt.DOCKER_LAYER_TAR
        else:
            media = mt.OCI_LAYER_GZIP if kind == "gzip" else mt.OCI_LAYER_TAR
        descs.append(_blob(path, blob, media))
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids) if diff_ids is not None else ids},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    config = json.dumps(config_doc, sort_keys=True).encode()
    config_desc = _blob(path, config, mt.DOCKER_CONFIG if docker_types else mt.OCI_CONFIG)
    manifest_type = mt.DOCKER_MANIFEST if docker_types else mt.OCI_MANIFEST
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": manifest_type, "config": config_desc, "layers": descs}
    ).encode()
    manifest_desc = _blob(path, manifest, manifest_type)
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [manifest_desc]})
    )
    return Layout(path, tag, manifest, config, tuple(ids))


def _blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = Digest.of(data)
    (layout / "blobs" / "sha256" / digest.hex).write_bytes(data)
    return {"mediaType": media_type, "digest": str(digest), "size": len(data)}


def pulled_image(layout: Path, tag: str = "latest", blob_dir: Path | None = None) -> PulledImage:
    """What the pull flow would hand a sink for the image tagged ``tag`` in ``layout``.

    ``blob_dir`` is where the layer blobs are (default: the layout's own ``blobs``); use
    ``stage_blobs`` to copy them into a sink's ``blob_store()`` as a real pull would.
    """
    index = json.loads((layout / "index.json").read_text())
    (desc,) = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    digest = Digest.parse(desc["digest"])
    raw = (layout / "blobs" / digest.algorithm / digest.hex).read_bytes()
    manifest = parse_manifest(raw, desc["mediaType"], digest)
    assert isinstance(manifest, ImageManifest)
    config = (layout / "blobs" / "sha256" / manifest.config.digest.hex).read_bytes()
    return PulledImage(
        "test/image",
        tag,
        manifest,
        None,
        config,
        manifest.config,
        manifest.layers,
        BlobStore(blob_dir or layout / "blobs"),
    )


def stage_blobs(layout: Path, image: PulledImage, blobs: BlobStore | None) -> PulledImage:
    """Copy the layer blobs into ``blobs`` (a sink's store) and point the image at them."""
    assert blobs is not None, "this sink keeps no blobs"
    source = BlobStore(layout / "blobs")
    for layer in image.layers:
        dst = blobs.path(layer.digest)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path(layer.digest), dst)
    return dataclasses.replace(image, blobs=blobs)


def umoci_rootfs(layout_ref: str, bundle: Path) -> Path:
    """``umoci unpack --image LAYOUT:TAG BUNDLE`` (rootless when not root); returns the rootfs."""
    cmd = ["umoci", "unpack", "--image", layout_ref, str(bundle)]
    if os.geteuid() != 0:
        cmd.insert(2, "--rootless")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")
    return bundle / "rootfs"
