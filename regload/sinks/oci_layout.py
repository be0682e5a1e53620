"""The ``oci`` sink: an OCI image layout (image-spec image-layout.md) holding the pulled image."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .. import mediatypes as mt
from ..blobstore import BlobStore
from ..digest import Digest
from ..errors import ProtocolError
from ..manifest import Descriptor, ImageManifest, Platform, build_manifest
from .base import PulledImage
from .layerio import check_config
from .staging import Staging, check_dir_output, default_dir_mode

REF_NAME = "org.opencontainers.image.ref.name"  # image-spec annotations.md
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
# Docker media types and their OCI equivalents (image-spec media-types.md, "Compatibility Matrix").
_OCI_TYPES = {
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_TAR: mt.OCI_LAYER_TAR,
    mt.DOCKER_FOREIGN_LAYER: mt.OCI_LAYER_NONDIST_GZIP,
}


class OciLayoutSink:
    """The staging directory is the layout itself: blobs are downloaded straight into its
    ``blobs/<alg>/<hex>``, so ``finish`` only adds the manifest, the config, ``oci-layout`` and
    ``index.json`` and renames the directory to ``output``.

    An OCI manifest is stored with its exact bytes. A Docker one is converted, as ``skopeo copy
    docker://… oci:…`` does: skopeo (every version, up to containers/image 5.3x) skips
    ``index.json`` entries that are not OCI manifests or indexes ("no descriptor found for
    reference"), and umoci 0.4 refuses Docker media types. The conversion rewrites only media
    types (same config bytes, same layer blobs, so the image ID and diff_ids do not change);
    schema 1 layers get their sizes from the verified blobs.
    """

    def __init__(self, output: str | Path, tag: str | None) -> None:
        self.output = Path(output)
        self.tag = tag or "latest"
        check_dir_output(self.output)
        self._staging = Staging(self.output)

    def blob_store(self) -> BlobStore:
        return BlobStore(self._staging.path / "blobs")

    def finish(self, image: PulledImage) -> None:
        try:
            layout = self._staging.path
            for layer in image.layers:
                self._move_in(image.blob_path(layer.digest), layer.digest)
            config = Descriptor(image.config_descriptor.media_type, check_config(image), len(image.config))
            self._write_blob(config.digest, image.config)
            manifest = self._manifest(image, config)
            (layout / "oci-layout").write_text(json.dumps(LAYOUT_VERSION))
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [manifest.to_json()]}
            (layout / "index.json").write_text(json.dumps(index))
            check_dir_output(self.output)
            layout.chmod(default_dir_mode())  # mkdtemp made it 0700
            self._staging.publish(layout)
        finally:
            self._staging.remove()

    def abort(self) -> None:
        self._staging.remove()

    def _manifest(self, image: PulledImage, config: Descriptor) -> Descriptor:
        platform = _platform_from_index(image)
        if isinstance(image.manifest, ImageManifest) and image.manifest.media_type == mt.OCI_MANIFEST:
            raw, digest = image.manifest.raw, image.manifest.digest
        else:
            raw = self._convert(image, config)
            digest = Digest.of(raw)
        self._write_blob(digest, raw)
        return Descriptor(mt.OCI_MANIFEST, digest, len(raw), platform, annotations=((REF_NAME, self.tag),))

    def _convert(self, image: PulledImage, config: Descriptor) -> bytes:
        """An OCI manifest for a Docker schema 2 or schema 1 image, over the same blobs."""
        layers = []
        for d in image.layers:
            size = d.size if d.size >= 0 else self._blob(d.digest).stat().st_size  # schema 1 says -1
            layers.append(
                Descriptor(_OCI_TYPES.get(d.media_type, d.media_type), d.digest, size, None, d.urls, d.annotations)
            )
        return build_manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, config.digest, config.size), layers)

    def _blob(self, digest: Digest) -> Path:
        return self.blob_store().path(digest)

    def _move_in(self, src: Path, digest: Digest) -> None:
        dst = self._blob(digest)
        if src != dst and not dst.exists():
            if not src.exists():
                raise ProtocolError(f"layer {digest.short}: blob is missing from the download directory")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, dst)  # a rename on the same file system

    def _write_blob(self, digest: Digest, data: bytes) -> None:
        self.blob_store().write(digest, data)


def _platform_from_index(image: PulledImage) -> Platform | None:
    if image.index is None or not isinstance(image.manifest, ImageManifest):
        return None
    for entry in image.index.manifests:
        if entry.digest == image.manifest.digest:
            return entry.platform
    return None
