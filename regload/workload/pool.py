"""The images PullUsers pull: synthetic images seeded at test start, images named with
``--pull-image``, and (with ``--pull-pushed``) images pushed during the run.

Order is popularity rank (``--pull-popularity``: index 0 is the most popular): the seeded images
in their index order, then the named and pushed ones as they join."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

MAX_POOL = 10_000  # joined images kept at most (beyond the seeded ones); older ones are replaced at random


@dataclass(frozen=True)
class PoolImage:
    repository: str
    reference: str  # tag or digest


class Popularity(Protocol):
    def pick(self, rng: random.Random, n: int) -> int: ...


class ImagePool:
    """A process-wide list of pullable images. Greenlets only append and read, so no lock."""

    def __init__(self) -> None:
        self.seeded: list[PoolImage] = []  # fixed for the test once seeding ended
        self.joined: list[PoolImage] = []  # --pull-image, then --pull-pushed
        self.error: Exception | None = None  # why seeding failed, reported by every PullUser

    @property
    def images(self) -> list[PoolImage]:
        return self.seeded + self.joined

    def __len__(self) -> int:
        return len(self.seeded) + len(self.joined)

    def __bool__(self) -> bool:
        return bool(self.seeded or self.joined)

    def set_seeded(self, images: list[PoolImage]) -> None:
        self.seeded = list(images)

    def add(self, image: PoolImage) -> None:
        """A named or pushed image joins at the end (replacing a random joined one when full)."""
        if len(self.joined) < MAX_POOL:
            self.joined.append(image)
        else:
            self.joined[random.randrange(MAX_POOL)] = image

    def pick(self, rng: random.Random, popularity: Popularity | None = None) -> PoolImage | None:
        n = len(self)
        if n == 0:
            return None
        index = popularity.pick(rng, n) if popularity is not None else rng.randrange(n)
        seeded = len(self.seeded)
        return self.seeded[index] if index < seeded else self.joined[index - seeded]

    def reset(self) -> None:
        self.seeded = []
        self.joined = []
        self.error = None
