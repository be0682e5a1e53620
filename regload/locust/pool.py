"""The images PullUsers pull: synthetic images seeded at test start, images named with
``--pull-image``, and (with ``--pull-pushed``) images pushed during the run."""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_POOL = 10_000  # pushed images join up to this many; older ones are replaced at random


@dataclass(frozen=True)
class PoolImage:
    repository: str
    reference: str  # tag or digest


class ImagePool:
    """A process-wide list of pullable images. Greenlets only append and read, so no lock."""

    def __init__(self) -> None:
        self.images: list[PoolImage] = []
        self.error: Exception | None = None  # why seeding failed, reported by every PullUser

    def add(self, image: PoolImage) -> None:
        if len(self.images) < MAX_POOL:
            self.images.append(image)
        else:
            self.images[random.randrange(MAX_POOL)] = image

    def pick(self, rng: random.Random) -> PoolImage | None:
        return rng.choice(self.images) if self.images else None

    def reset(self) -> None:
        self.images.clear()
        self.error = None
