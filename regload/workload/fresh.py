"""PUT→GET correlation (``--pull-after-push P[:DELAY]``): with probability ``P`` an image a
PushUser pushed is pulled once, ``DELAY`` seconds later, by a PullUser of the same process —
as a CI job's image is pulled by the deployment right after the push.

A per-process queue of fresh images, ordered by the time they are due; a PullUser takes a due one
before picking from the pool (closed loop: at its next pull; open model: at its next arrival).
Greenlets only, so no lock.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

from ..errors import UsageError
from ..units import parse_duration
from .pool import PoolImage

MAX_FRESH = 10_000  # due images waiting at most; beyond, the oldest is dropped (and counted)


@dataclass(frozen=True)
class PullAfterPush:
    probability: float
    delay: float = 0.0  # seconds

    @classmethod
    def parse(cls, text: str, what: str = "--pull-after-push") -> PullAfterPush | None:
        """``P`` or ``P:DELAY`` (``0.3:2s``); empty or ``P = 0``: None (off)."""
        text = str(text).strip()
        if not text:
            return None
        share, sep, delay_text = text.partition(":")
        try:
            probability = float(share)
        except ValueError:
            raise UsageError(f"invalid {what} {text!r}: expected P[:DELAY], e.g. 0.3:2s") from None
        if not 0.0 <= probability <= 1.0:
            raise UsageError(f"invalid {what} {text!r}: the probability must be within 0-1")
        delay = parse_duration(delay_text, what) if sep else 0.0
        return cls(probability, delay) if probability > 0 else None

    def chosen(self, rng: random.Random) -> bool:
        return self.probability >= 1.0 or rng.random() < self.probability


class FreshQueue:
    """Images to pull once each, from the time each is due."""

    def __init__(self, limit: int = MAX_FRESH) -> None:
        self.limit = limit
        self._heap: list[tuple[float, int, PoolImage]] = []
        self._order = itertools.count()  # ties keep their push order
        self.added = 0
        self.taken = 0
        self.dropped = 0

    def add(self, image: PoolImage, due: float) -> None:
        if len(self._heap) >= self.limit:
            # No PullUser takes them (none runs, or too few): forget the oldest due.
            heapq.heappop(self._heap)
            self.dropped += 1
        heapq.heappush(self._heap, (due, next(self._order), image))
        self.added += 1

    def take(self, now: float) -> PoolImage | None:
        """The earliest image due by ``now`` (removed), or None."""
        if self._heap and self._heap[0][0] <= now:
            self.taken += 1
            return heapq.heappop(self._heap)[2]
        return None

    def __len__(self) -> int:
        return len(self._heap)

    def reset(self) -> None:
        self._heap.clear()
        self.added = self.taken = self.dropped = 0
