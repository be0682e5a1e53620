"""Storms on a new tag: one image published, then every StormUser released at once to pull it
(node scale-up, a DaemonSet rollout, synchronised CI). What one storm was and what it measured,
with no Locust in it: the clients' pulls timed from the release, the storm's completion (release
→ the last client done, the number an operator quotes), and the upstream's *amplification* when
the pulls go through a pull-through cache: how many times the upstream served each blob of the
new image (a perfect cache: 1.0; one fetch per client: the storm's size)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .server.dialects import ServerView


@dataclass(frozen=True)
class StormPull:
    """One client's pull in one storm."""

    done_ms: float  # from the storm's release to this client's image complete
    took_ms: float  # from this client's own release (the release, plus its jitter) to complete
    cause: str | None = None  # why it failed; None: it succeeded


@dataclass
class Storm:
    number: int
    image: str  # repository:tag on --host
    release_at: float  # wall clock (time.time()) of the release
    release_s: float  # seconds since the test started
    pushed_to: str | None = None  # the registry the fresh image was pushed to; None: --storm-image
    through_cache: bool = False  # pushed to the upstream of a caching --host (--storm-push-to)
    push_ms: float | None = None
    clients: int = 0  # StormUsers released
    pulls: list[StormPull] = field(default_factory=list)
    blobs: int | None = None  # blobs of the image (layers and config)
    upstream_blob_gets: float | None = None
    amplification_note: str = ""  # why the amplification is unknown, or what it counts
    recorded: bool = False  # every process reported, or the storm's time ran out
    cut_short: bool = False  # the test ended first: its numbers are partial

    @property
    def failures(self) -> int:
        return sum(1 for p in self.pulls if p.cause is not None)

    @property
    def missing(self) -> int:
        """Clients released that never said they were done (the storm's time ran out, a worker left)."""
        return max(0, self.clients - len(self.pulls))

    @property
    def causes(self) -> dict[str, int]:
        return dict(Counter(p.cause for p in self.pulls if p.cause is not None))

    @property
    def complete(self) -> bool:
        return self.clients > 0 and self.missing == 0 and self.failures == 0

    @property
    def first_done_ms(self) -> float | None:
        return min((p.done_ms for p in self.pulls), default=None)

    @property
    def last_done_ms(self) -> float | None:
        return max((p.done_ms for p in self.pulls), default=None)

    def pull_ms(self, quantile: float) -> float | None:
        return nearest_rank([p.took_ms for p in self.pulls if p.cause is None], quantile)

    @property
    def amplification(self) -> float | None:
        if self.upstream_blob_gets is None or not self.blobs:
            return None
        return round(self.upstream_blob_gets / self.blobs, 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "storm": self.number,
            "image": self.image,
            "pushed_to": self.pushed_to,
            "through_cache": self.through_cache,
            "push_ms": _ms(self.push_ms),
            "clients": self.clients,
            "release_time": self.release_at,
            "release_s": round(self.release_s, 3),
            "first_done_ms": _ms(self.first_done_ms),
            "last_done_ms": _ms(self.last_done_ms),
            "pull_p50_ms": _ms(self.pull_ms(0.5)),
            "pull_p99_ms": _ms(self.pull_ms(0.99)),
            "failures": self.failures,
            "cut_short": self.cut_short,
            "not_done": self.missing,
            "causes": self.causes,
            "blobs": self.blobs,
            "upstream_blob_gets": self.upstream_blob_gets,
            "amplification": self.amplification,
            "amplification_note": self.amplification_note,
        }


def nearest_rank(values: list[float], quantile: float) -> float | None:
    """The ``quantile`` of ``values`` by nearest rank (a value that was measured, never between two)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def blob_gets(view: ServerView | None) -> float | None:
    """Blob GETs a registry has answered so far (distribution's ``blob`` handler), or None when its
    metrics do not say (zot times requests by method only; Harbor's core by operation)."""
    if view is None or view.dialect != "distribution":
        return None
    series = view.requests.get(("blob", "get"))
    return series.count if series is not None else 0.0


def upstream_gets(before: ServerView | None, after: ServerView | None) -> tuple[float | None, str]:
    """The upstream's blob GETs between two scrapes, or None with the reason it is unknown."""
    if before is None or after is None:
        return None, "the upstream's metrics could not be scraped around the storm"
    first, last = blob_gets(before), blob_gets(after)
    if first is None or last is None:
        return None, f"the upstream's metrics ({after.dialect}) do not count blob GETs apart"
    return max(0.0, last - first), "upstream blob GETs from just before the release until they stopped growing"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
