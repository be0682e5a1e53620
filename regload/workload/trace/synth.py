"""``regload trace synth``: a synthetic trace in the IBM format, for users without real traces.

Requests arrive as a Poisson process conditioned on their count (sorted uniform times). Each
picks an operation by the mix, a repository by the popularity (Zipf by default: a few
repositories get most requests, as the FAST '18 study found), and then:

- ``GET blob``: a layer of the repository, or with ``shared`` probability one of the base layers
  every repository shares (most layers belong to one image, popular base layers to many:
  Zhao et al. 2019), picked by popularity; its size drawn once from the size distribution;
- ``GET manifest``: a tag of the repository by popularity — the recently pushed tags included;
- ``PUT blob``: a new layer of a size drawn from the distribution (recorded as
  ``http.request.contentlength``, which IBM's records lack);
- ``PUT manifest``: a new tag of the repository, which later manifest GETs may read (a PUT
  followed by GETs, as in the study).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from ...errors import UsageError
from ..popularity import Popularity, Zipf
from ..sizes import SizeDistribution, parse_size_distribution

DEFAULT_MIX = {"GET manifest": 0.25, "GET blob": 0.6, "PUT manifest": 0.05, "PUT blob": 0.1}
OPERATIONS = tuple(DEFAULT_MIX)
START = datetime(2017, 6, 20, tzinfo=UTC)  # the IBM traces' first day
USER_AGENT = "docker/17.06.0-ce go/go1.8.3 git-commit/02c1d87 kernel/4.4.0 os/linux arch/amd64"


@dataclass
class SynthSpec:
    requests: int = 240
    duration: float = 12.0  # seconds from the first request to the last
    repositories: int = 6
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    blob_sizes: SizeDistribution = field(default_factory=lambda: parse_size_distribution("ibm-fast18", "--blob-size"))
    manifest_sizes: SizeDistribution = field(
        default_factory=lambda: parse_size_distribution("1KB-8KB", "--manifest-size")
    )
    popularity: Popularity = field(default_factory=lambda: Zipf(1.1))
    layers_per_repository: int = 8
    tags_per_repository: int = 4
    base_layers: int = 4  # shared by every repository
    shared: float = 0.3  # share of blob GETs that read a base layer
    seed: int = 0

    def __post_init__(self) -> None:
        if self.requests < 0:
            raise UsageError("--requests must not be negative")
        if self.duration < 0:
            raise UsageError("--duration must not be negative")
        if self.repositories < 1 or self.layers_per_repository < 1 or self.tags_per_repository < 1:
            raise UsageError("--repos, --layers and --tags must be at least 1")
        unknown = set(self.mix) - set(OPERATIONS)
        if unknown or not self.mix or any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise UsageError(f"invalid --mix: give weights of {', '.join(OPERATIONS)} (at least one above 0)")


def parse_mix(text: str) -> dict[str, float]:
    """``get-manifest=25,get-blob=60,put-manifest=5,put-blob=10`` (weights; missing ones are 0)."""
    names = {op.lower().replace(" ", "-"): op for op in OPERATIONS}
    mix: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = item.partition("=")
        op = names.get(key.strip().lower())
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if op is None or not eq or weight < 0:
            raise UsageError(f"invalid --mix item {item!r}: expected NAME=WEIGHT with NAME one of {', '.join(names)}")
        mix[op] = weight
    return mix


def _hex(*parts: object) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:16]


def synth_records(spec: SynthSpec) -> Iterator[dict[str, Any]]:
    """The trace's records, in time order, as IBM's JSON objects."""
    rng = random.Random(spec.seed)
    seed = spec.seed
    repos = [f"{_hex(seed, 'user', i)[:8]}/{_hex(seed, 'repo', i)[:8]}" for i in range(spec.repositories)]
    tags = {repo: [_hex(seed, repo, "tag", t) for t in range(spec.tags_per_repository)] for repo in repos}
    bases = [_hex(seed, "base", b) for b in range(spec.base_layers)]
    sizes: dict[str, int] = {}
    pushed = 0
    operations = list(spec.mix)
    weights = [spec.mix[op] for op in operations]
    times = sorted(rng.uniform(0.0, spec.duration) for _ in range(spec.requests))
    if times:  # the trace spans exactly ``duration``: its first request at 0, its last at the end
        times[0], times[-1] = 0.0, spec.duration
    for i, offset in enumerate(times):
        op = rng.choices(operations, weights)[0]
        repo = repos[spec.popularity.pick(rng, len(repos))]
        method, kind = op.split(" ")
        extra: dict[str, Any] = {}
        status, written = (200, 0) if method == "GET" else (201, 0)
        if op == "GET blob":
            if bases and rng.random() < spec.shared:
                name = bases[spec.popularity.pick(rng, len(bases))]
            else:
                name = _hex(seed, repo, "layer", spec.popularity.pick(rng, spec.layers_per_repository))
            written = sizes.setdefault(name, spec.blob_sizes.sample(rng))
        elif op == "PUT blob":
            pushed += 1
            name = _hex(seed, repo, "pushed", pushed)
            extra["http.request.contentlength"] = sizes.setdefault(name, spec.blob_sizes.sample(rng))
        elif op == "GET manifest":
            # Newest tags first in popularity: a tag just pushed is pulled soon after.
            recent = tags[repo][::-1]
            name = recent[spec.popularity.pick(rng, len(recent))]
            written = sizes.setdefault(repo + "/" + name, spec.manifest_sizes.sample(rng))
        else:
            pushed += 1
            name = _hex(seed, repo, "tag-pushed", pushed)
            tags[repo].append(name)
            extra["http.request.contentlength"] = sizes.setdefault(repo + "/" + name, spec.manifest_sizes.sample(rng))
        when = START + timedelta(seconds=offset)
        yield {
            "host": "regload-synth",
            "http.request.duration": round(rng.uniform(0.001, 0.05), 6),
            "http.request.method": method,
            "http.request.remoteaddr": f"10.0.{i % 250}.{rng.randrange(1, 250)}",
            "http.request.uri": f"v2/{repo}/{kind}s/{name}",
            "http.request.useragent": USER_AGENT,
            "http.response.status": status,
            "http.response.written": written,
            "id": _hex(seed, "id", i)[:10],
            "timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **extra,
        }


def write_trace(spec: SynthSpec, out: IO[str]) -> int:
    """Write the trace as one JSON array, a record per line; the number of records."""
    count = 0
    out.write("[")
    for record in synth_records(spec):
        out.write(",\n" if count else "\n")
        out.write(json.dumps(record, separators=(",", ":")))
        count += 1
    out.write("\n]\n")
    return count
