"""The ``docker-archive`` sink: a tar in the legacy ``docker save`` layout.

``manifest.json`` (``Config``, ``RepoTags``, ``Layers``), the config as ``<config hex>.json``, each
layer uncompressed as ``<diff_id hex>/layer.tar``, and ``repositories``: the layout every
``docker load`` and ``skopeo copy docker-archive:`` read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

from .. import ustar
from ..blobstore import BlobStore
from ..errors import UsageError
from ..streams import CHUNK, Readable
from .base import PulledImage
from .layerio import check_config, check_diff_id, config_diff_ids, open_layer
from .staging import Staging, check_file_output


class DockerArchiveSink:
    """Writes ``<staging>/archive.tar`` and renames it to ``output_file`` (an existing file is
    replaced, as ``docker save -o`` does). ``repo_tag`` is ``repo:tag``, or None for no tag."""

    def __init__(self, output_file: str | Path, repo_tag: str | None) -> None:
        self.output = Path(output_file)
        if repo_tag is not None and (":" not in repo_tag or "/" in repo_tag.rpartition(":")[2]):
            raise UsageError(f"docker-archive needs a repo:tag name, got {repo_tag!r}")
        self.repo_tag = repo_tag
        check_file_output(self.output)
        self._staging = Staging(self.output)

    def blob_store(self) -> BlobStore:
        return BlobStore(self._staging.path / "blobs")

    def finish(self, image: PulledImage) -> None:
        try:
            archive = self._staging.path / "archive.tar"
            with open(archive, "wb") as f:
                self._write(image, TarWriter(f))
            check_file_output(self.output)
            self._staging.publish(archive)
        finally:
            self._staging.remove()

    def abort(self) -> None:
        self._staging.remove()

    def _write(self, image: PulledImage, tar: TarWriter) -> None:
        diff_ids = config_diff_ids(image.config, len(image.layers), required=True)
        paths: list[str] = []
        for layer, diff_id in zip(image.layers, diff_ids, strict=True):
            assert diff_id is not None
            path = f"{diff_id.hex}/layer.tar"
            if path not in paths:  # the same layer twice (empty layers): one copy, listed twice
                tar.add_dir(f"{diff_id.hex}/")
                with open_layer(image.blob_path(layer.digest), layer) as stream:
                    tar.add_stream(path, stream)
                    check_diff_id(stream, layer, diff_id)
            paths.append(path)
        config = f"{check_config(image).hex}.json"
        tar.add_bytes(config, image.config)
        entry = {"Config": config, "RepoTags": [self.repo_tag] if self.repo_tag else [], "Layers": paths}
        tar.add_bytes("manifest.json", json.dumps([entry]).encode())
        if self.repo_tag and diff_ids:
            repo, _, tag = self.repo_tag.rpartition(":")
            top = diff_ids[-1]
            assert top is not None
            tar.add_bytes("repositories", json.dumps({repo: {tag: top.hex}}).encode())
        tar.close()


class TarWriter:
    """A minimal streaming tar writer (``ustar`` headers; sizes above 8 GiB fit in one block).

    ``add_stream`` does not need the size up front: it writes a header, the data, then goes
    back and rewrites the header with the size it counted, so a layer is decompressed straight
    into the archive.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def add_dir(self, name: str) -> None:
        self._f.write(ustar.header(name, directory=True, mode=0o755))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._f.write(ustar.header(name, size=len(data)))
        self._f.write(data)
        self._f.write(ustar.padding(len(data)))

    def add_stream(self, name: str, stream: Readable) -> int:
        start = self._f.tell()
        self._f.write(ustar.header(name))
        size = 0
        while chunk := stream.read(CHUNK):
            self._f.write(chunk)
            size += len(chunk)
        self._f.write(ustar.padding(size))
        end = self._f.tell()
        self._f.seek(start)
        self._f.write(ustar.header(name, size=size))
        self._f.seek(end)
        return size

    def close(self) -> None:
        self._f.write(ustar.END)
