"""Docker image manifest schema 1 (read-only): its layers, and an image config made from it.

Schema 1 (distribution docs/spec/manifest-v2-1.md) lists layers newest first with a
``v1Compatibility`` JSON per layer; layers marked ``throwaway`` are empty and not part of the
rootfs. A config for the OCI or docker-archive output is built the way docker converts it:
the newest history entry gives the image settings, the diff_ids come from the layer content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .blobstore import BlobStore
from .compression import SNIFF_SIZE, GunzipReader, sniff
from .errors import ManifestError, ProtocolError
from .manifest import Descriptor, Schema1Manifest
from .streams import Readable, TallyReader

_IMAGE_KEYS = (
    "architecture",
    "os",
    "config",
    "container_config",
    "created",
    "author",
    "docker_version",
    "container",
    "variant",
)


def schema1_layers(manifest: Schema1Manifest) -> list[Descriptor]:
    """The layers that make the rootfs, oldest first (throwaway layers left out)."""
    if len(manifest.history) not in (0, len(manifest.layers)):
        raise ManifestError("schema 1 manifest: history and fsLayers differ in length")
    if not manifest.history:
        return list(manifest.layers)
    return [d for d, h in zip(manifest.layers, manifest.history, strict=True) if not h.get("throwaway")]


def schema1_config(manifest: Schema1Manifest, layers: list[Descriptor], blobs: BlobStore) -> bytes:
    """An image config for a schema 1 image whose (verified) layer blobs are in ``blobs``."""
    newest: dict[str, Any] = dict(manifest.history[-1]) if manifest.history else {}
    config = {k: newest[k] for k in _IMAGE_KEYS if k in newest}
    config.setdefault("architecture", manifest.architecture)
    config.setdefault("os", "linux")
    config["rootfs"] = {
        "type": "layers",
        "diff_ids": [diff_id(blobs.path(d.digest), f"layer {d.digest.short}") for d in layers],
    }
    history = []
    for h in manifest.history:
        entry: dict[str, Any] = {}
        if "created" in h:
            entry["created"] = h["created"]
        container_config = h.get("container_config")
        cmd = container_config.get("Cmd") if isinstance(container_config, dict) else None
        if isinstance(cmd, list):
            entry["created_by"] = " ".join(str(c) for c in cmd)
        if h.get("throwaway"):
            entry["empty_layer"] = True
        history.append(entry)
    config["history"] = history
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()


def diff_id(path: Path, what: str) -> str:
    """sha256 of a layer's uncompressed tar (gzip is undone; anything else is hashed as it is)."""
    with open(path, "rb") as f:
        raw: Readable = f
        if sniff(f.peek(SNIFF_SIZE)[:SNIFF_SIZE]) == "gzip":
            raw = GunzipReader(f, lambda reason: ProtocolError(f"{what}: {reason}"))
        reader = TallyReader(raw)
        reader.drain()
    return str(reader.tally.digest())
