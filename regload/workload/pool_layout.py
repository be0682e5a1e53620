"""What the pull pool's synthetic images are made of, computed from the options alone: every
process derives the same images, tags and bytes without talking to the others.

With families (``--pool-families F``, ``--pool-base-layers K``), image ``i`` belongs to family
``i % F``: its layers are its family's ``K`` base layers, then ``--pull-pool-layers`` layers of
its own. The lowest base layer is an "OS" layer common to every family (as many application
images sit on one distribution's base); base layers 2..K are the family's own. So pushes of a
family's images find its base blobs present (HEAD hits, or mounts from the family's repository)
and pulls of different images share layers. ``F = 0``: every image is made of its own layers only.

A layer's bytes and size come from a seed derived from the pool's fingerprint and what the layer
is (the OS layer, base layer ``j`` of family ``f``, own layer ``j`` of image ``i``); its size is
``layer_size.sample(rng)`` with an rng of that seed. Tags carry the fingerprint
(``pool-<fingerprint>-<i>``): a pool of another spec never takes these tags for its own, and a
run of the same spec finds the images an earlier run pushed.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from .. import mediatypes as mt
from ..sources.base import BlobSource, SourceImage
from ..sources.synthetic import CREATED, LazyBytesBlob, SyntheticLayer

LAYOUT_VERSION = "1"  # part of the fingerprint: a change of how images are built changes every tag
FINGERPRINT_CHARS = 10


class Sampler(Protocol):
    def sample(self, rng: random.Random) -> int: ...


@dataclass(frozen=True)
class LayerPlan:
    """One layer: what it is (``os``, ``family:F:J``, ``image:I:J``), its seed, its position in the
    image (1-based; the tar file inside is ``regload/layer-<position>.bin``) and its size."""

    role: str
    seed: int
    position: int
    size: int


@dataclass(frozen=True)
class PoolSpec:
    """The shape of the pool's images (not their count: a larger pool adds images, same tags)."""

    layers: int  # own layers per image
    layer_size: Sampler | int  # a SizeDistribution (``sample(rng)``), or a fixed size
    families: int = 0
    base_layers: int = 0
    gzip_ratio: float | None = None

    @cached_property
    def fingerprint(self) -> str:
        """A short digest of everything that shapes the images' bytes."""
        families, base = (self.families, self.base_layers) if self.families > 0 else (0, 0)
        text = "|".join(
            [
                f"v{LAYOUT_VERSION}",
                f"layers={self.layers}",
                f"size={_size_text(self.layer_size)}",
                f"families={families}",
                f"base={base}",
                f"gzip={self.gzip_ratio!r}",
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_CHARS]

    def tag(self, index: int) -> str:
        return f"pool-{self.fingerprint}-{index}"

    def family(self, index: int) -> int | None:
        return index % self.families if self.families > 0 and self.base_layers > 0 else None

    def first_holder(self, index: int, role: str) -> int | None:
        """The first image holding the layer ``role`` of image ``index`` (pushed before any other
        holding it), or None for a layer of the image's own: image 0 for the OS layer, image ``f``
        for a layer of family ``f`` (``f % F == f``)."""
        if role == "os":
            return 0
        if role.startswith("family:"):
            return self.family(index)
        return None

    def plan(self, index: int) -> list[LayerPlan]:
        """The layers of image ``index``, bottom first."""
        plans: list[LayerPlan] = []
        family = self.family(index)
        if family is not None:
            for j in range(self.base_layers):
                role = "os" if j == 0 else f"family:{family}:{j}"
                plans.append(self._layer(role, len(plans) + 1))
        for j in range(self.layers):
            plans.append(self._layer(f"image:{index}:{j}", len(plans) + 1))
        return plans

    def image(self, index: int, shared: dict[str, Any] | None = None) -> SourceImage:
        """Image ``index`` as a source to push (cheap: bytes are generated while they stream).
        ``shared``: base layers by role, reused from earlier images (their digests computed once)."""
        plans = self.plan(index)
        layers = []
        for p in plans:
            if shared is None or p.role.startswith("image:"):
                layers.append(_synthetic_layer(p, self.gzip_ratio))
            else:
                layers.append(shared.setdefault(p.role, _synthetic_layer(p, self.gzip_ratio)))
        config = LazyBytesBlob(mt.OCI_CONFIG, lambda: _config(index, plans, layers))
        blobs: list[BlobSource] = list(layers)
        return SourceImage(mt.OCI_MANIFEST, config, blobs, description=f"pull pool image {index} ({self.fingerprint})")

    def _layer(self, role: str, position: int) -> LayerPlan:
        seed = _seed(self.fingerprint, role)
        size = _sample(self.layer_size, random.Random(seed))
        return LayerPlan(role, seed, position, size)


def _seed(fingerprint: str, role: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{fingerprint}/{role}".encode()).digest()[:8], "big") >> 1


def _sample(size: Sampler | int, rng: random.Random) -> int:
    return size if isinstance(size, int) else int(size.sample(rng))


def _size_text(size: Sampler | int) -> str:
    # A size distribution is a frozen dataclass: its repr names its kind and parameters.
    return str(size) if isinstance(size, int) else repr(size)


def _synthetic_layer(plan: LayerPlan, gzip_ratio: float | None) -> Any:
    if gzip_ratio is None or gzip_ratio == 1.0:
        return SyntheticLayer(plan.seed, plan.position, plan.size)
    # A gzip layer of about that size whose tar compresses by the ratio (--gzip-ratio).
    from ..sources.gzip_layer import GzipLayer

    return GzipLayer(plan.seed, plan.position, plan.size, gzip_ratio)


def _diff_id(layer: Any) -> str:
    """The digest of the uncompressed tar: the blob's own unless it is compressed."""
    diff_id = getattr(layer, "diff_id", None)
    if diff_id is not None:
        return str(diff_id() if callable(diff_id) else diff_id)
    return str(layer.descriptor().digest)


def _config(index: int, plans: Sequence[LayerPlan], layers: Sequence[Any]) -> bytes:
    """A minimal OCI image config; its history says what each layer is."""
    doc = {
        "architecture": "amd64",
        "config": {"Labels": {"org.regload.pool-image": str(index)}},
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": f"regload pool layer {p.role}: {p.size} bytes"} for p in plans],
        "os": "linux",
        "rootfs": {"diff_ids": [_diff_id(layer) for layer in layers], "type": "layers"},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
