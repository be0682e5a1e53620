"""The ``rootfs`` sink: the image's filesystem, layers applied oldest first, in a directory."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, cast

from ..blobstore import BlobStore
from .base import PulledImage
from .extract import Extractor
from .layerio import check_diff_id, config_diff_ids, open_layer
from .staging import Staging, check_dir_output


class RootfsSink:
    """Extracts into ``<staging>/rootfs`` and renames it to ``output`` when every layer applied.

    Each layer's uncompressed stream is checked against the config's ``rootfs.diff_ids`` (when
    the config has them), as ``umoci unpack`` does. ``notes`` lists what could not be restored
    (devices when not root, xattrs the file system refused).
    """

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        check_dir_output(self.output)
        self._staging = Staging(self.output)
        self.notes: list[str] = []

    def blob_store(self) -> BlobStore:
        return BlobStore(self._staging.path / "blobs")

    def finish(self, image: PulledImage) -> None:
        try:
            rootfs = self._staging.path / "rootfs"
            rootfs.mkdir()
            self._extract(image, rootfs)
            check_dir_output(self.output)
            self._staging.publish(rootfs)
        finally:
            self._staging.remove()

    def abort(self) -> None:
        self._staging.remove()

    def _extract(self, image: PulledImage, rootfs: Path) -> None:
        diff_ids = config_diff_ids(image.config, len(image.layers), required=False)
        extractor = Extractor(str(rootfs))
        try:
            for layer, diff_id in zip(image.layers, diff_ids, strict=True):
                with open_layer(image.blob_path(layer.digest), layer) as stream:
                    extractor.apply_layer(cast(BinaryIO, stream), layer.digest.short)
                    stream.drain()
                    check_diff_id(stream, layer, diff_id)
            extractor.finish()
        finally:
            extractor.close()
            self.notes = extractor.notes
