"""``--pull-platform``: the platform a pull resolves from an index, one for the fleet or a
weighted mix (``linux/amd64:3,linux/arm64:1``: three pulls of amd64 for one of arm64)."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from ..errors import ManifestError, UsageError
from ..manifest import DEFAULT_PLATFORM, Platform


@dataclass(frozen=True)
class PlatformMix:
    platforms: tuple[Platform, ...] = (DEFAULT_PLATFORM,)
    cumulative: tuple[float, ...] = (1.0,)  # running sums of the weights

    @classmethod
    def parse(cls, text: str) -> PlatformMix:
        if not text.strip():
            return cls()
        platforms, weights = [], []
        for part in text.split(","):
            name, _, weight = part.strip().partition(":")
            try:
                platforms.append(Platform.parse(name))
                weights.append(float(weight) if weight else 1.0)
            except (ManifestError, ValueError):
                raise UsageError(
                    f"invalid --pull-platform {part.strip()!r}: expected os/arch[/variant][:WEIGHT]"
                ) from None
            if not weights[-1] > 0:
                raise UsageError(f"invalid --pull-platform {part.strip()!r}: a weight is above 0")
        return cls(tuple(platforms), tuple(itertools.accumulate(weights)))

    def pick(self, rng: random.Random) -> Platform:
        if len(self.platforms) == 1:
            return self.platforms[0]
        return self.platforms[bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])]
