"""Layer size distributions: how big the layers of synthetic images are.

``parse_size_distribution`` reads (sizes in ``regload.units`` syntax: ``MB`` is 10^6 bytes, ``MiB`` 2^20):

    1MiB                                     every layer this size
    1MiB-20MiB                               uniform over [MIN, MAX]
    lognormal:median=4MB,p90=63MB[,max=2GiB] log-normal through its median and 90th percentile, clipped at
                                             max (default 2GiB, so a heavy tail cannot ask for a 50 GB layer)
    empirical:PATH                           a text file: one size per line (draw one at random), or lines
                                             ``PERCENT SIZE`` (a percentile table from 0 to 100, interpolated
                                             log-linearly in size, as such CDFs are plotted); ``#`` comments
    ibm-fast18, dockerhub-2019               the presets below

Presets. "Published" points are the papers' figures; every other point is an assumption of regload.

``ibm-fast18``: Anwar et al., "Improving Docker Registry Design based on Production Workload Analysis",
USENIX FAST '18 (75 days of traces from IBM's production registries): 65 % of layers are under 1 MB and
80 % under 10 MB. A percentile table through those points:

    0 %     1 KB    assumed: the smallest layer
    65 %    1 MB    published
    80 %    10 MB   published
    99 %    500 MB  assumed
    100 %   2 GiB   assumed: the cap

``dockerhub-2019``: Zhao et al., "Large-Scale Analysis of the Docker Hub Dataset", IEEE CLUSTER 2019:
the median compressed layer is under 4 MB, 90 % of layers are under 63 MB compressed, and the median
compression ratio is about 2.6. A log-normal with median 4 MB (the published bound taken as the value)
and p90 63 MB (published), clipped at 2 GiB (assumed; 0.17 % of draws). ``compression_ratio`` = 2.6.

Sizes drawn are compressed (blob) sizes. ``compression_ratio`` is the uncompressed/compressed ratio
a preset's source reports, None when it gives none.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from statistics import NormalDist
from typing import Protocol

from ..errors import UsageError
from ..units import parse_size

Z90 = 1.2815515655446004  # the standard normal's 90th percentile
DEFAULT_MAX = 2 << 30  # lognormal's cap unless max= is given: 2 GiB
_NORMAL = NormalDist()


class SizeDistribution(Protocol):
    """Layer sizes in bytes (>= 0)."""

    @property
    def compression_ratio(self) -> float | None: ...

    def sample(self, rng: random.Random) -> int: ...

    def quantile(self, q: float) -> int: ...

    def __str__(self) -> str: ...


def format_size(size: int) -> str:
    """The shortest exact way to write ``size`` that ``parse_size`` reads back: 1MiB, 63MB, 1500B."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("GB", 10**9), ("MB", 10**6)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000}KB"
    return f"{size}B"


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside [0, 1]")


@dataclass(frozen=True)
class Fixed:
    size: int
    compression_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("a size cannot be negative")

    def sample(self, rng: random.Random) -> int:
        return self.size

    def quantile(self, q: float) -> int:
        _check_q(q)
        return self.size

    def __str__(self) -> str:
        return format_size(self.size)


@dataclass(frozen=True)
class Uniform:
    low: int
    high: int
    compression_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.low < 0:
            raise ValueError("a size cannot be negative")
        if self.high < self.low:
            raise ValueError("the maximum is below the minimum")

    def sample(self, rng: random.Random) -> int:
        return self.low if self.low == self.high else rng.randint(self.low, self.high)

    def quantile(self, q: float) -> int:
        _check_q(q)
        return self.low + round(q * (self.high - self.low))

    def __str__(self) -> str:
        return f"uniform({format_size(self.low)}-{format_size(self.high)})"


@dataclass(frozen=True)
class LogNormal:
    """A log-normal through ``median`` and ``p90``; draws above ``max`` are clipped to ``max``, so
    every quantile below the cap is the log-normal's own."""

    median: int
    p90: int
    max: int = DEFAULT_MAX
    compression_ratio: float | None = None
    label: str = ""  # a preset's name, shown by __str__
    mu: float = field(init=False, repr=False)
    sigma: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.median <= 0:
            raise ValueError("the median must be above 0")
        if self.p90 <= self.median:
            raise ValueError("p90 must be above the median")
        if self.max < self.p90:
            raise ValueError("max must be at least p90")
        object.__setattr__(self, "mu", math.log(self.median))
        object.__setattr__(self, "sigma", (math.log(self.p90) - math.log(self.median)) / Z90)

    def sample(self, rng: random.Random) -> int:
        return round(min(rng.lognormvariate(self.mu, self.sigma), float(self.max)))

    def quantile(self, q: float) -> int:
        _check_q(q)
        if q == 0.0:
            return 0
        if q == 1.0:
            return self.max
        return round(min(math.exp(self.mu + self.sigma * _NORMAL.inv_cdf(q)), float(self.max)))

    def __str__(self) -> str:
        text = f"lognormal(median={format_size(self.median)},p90={format_size(self.p90)},max={format_size(self.max)})"
        return f"{self.label}: {text}" if self.label else text


@dataclass(frozen=True)
class Empirical:
    """Observed sizes: either ``sizes`` (a draw is one of them) or ``points``, a percentile table of
    (percent, size) from 0 to 100, interpolated log-linearly in size between its points."""

    sizes: tuple[int, ...] = ()
    points: tuple[tuple[float, int], ...] = ()
    source: str = ""  # where the sizes came from, shown by __str__
    compression_ratio: float | None = None
    label: str = ""
    _fractions: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _logs: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if bool(self.sizes) == bool(self.points):
            raise ValueError("give either sizes or percentile points")
        if self.sizes:
            if min(self.sizes) < 0:
                raise ValueError("a size cannot be negative")
            object.__setattr__(self, "sizes", tuple(sorted(self.sizes)))  # sorted for quantile()
        else:
            _check_table(self.points)
        object.__setattr__(self, "_fractions", tuple(p / 100.0 for p, _ in self.points))
        object.__setattr__(self, "_logs", tuple(math.log(s) for _, s in self.points))

    def sample(self, rng: random.Random) -> int:
        if self.sizes:
            return rng.choice(self.sizes)
        return self.quantile(rng.random())

    def quantile(self, q: float) -> int:
        _check_q(q)
        if self.sizes:
            return self.sizes[min(len(self.sizes) - 1, int(q * len(self.sizes)))]
        i = min(bisect_right(self._fractions, q), len(self._fractions) - 1)  # the point at or above q
        lo, hi = self._fractions[i - 1], self._fractions[i]
        t = (q - lo) / (hi - lo)
        return round(math.exp(self._logs[i - 1] + t * (self._logs[i] - self._logs[i - 1])))

    def __str__(self) -> str:
        if self.sizes:
            text = f"empirical({self.source or 'list'}: {len(self.sizes)} sizes)"
        else:
            table = ",".join(f"{p:g}%:{format_size(s)}" for p, s in self.points)
            text = f"empirical({self.source}: {table})" if self.source else f"percentiles({table})"
        return f"{self.label}: {text}" if self.label else text


def _check_table(points: tuple[tuple[float, int], ...]) -> None:
    if len(points) < 2 or points[0][0] != 0 or points[-1][0] != 100:
        raise ValueError("a percentile table runs from 0 (the smallest size) to 100 (the largest)")
    for (p0, s0), (p1, s1) in pairwise(points):
        if p1 <= p0:
            raise ValueError(f"percent {p1:g} does not follow {p0:g}: percents must increase")
        if s1 < s0:
            raise ValueError(f"size at {p1:g}% is below the size at {p0:g}%")
    if points[0][1] <= 0:
        raise ValueError("percentile-table sizes must be above 0 (interpolation is in log size)")


_MB = 10**6
PRESETS: dict[str, SizeDistribution] = {
    "ibm-fast18": Empirical(
        points=((0, 1000), (65, _MB), (80, 10 * _MB), (99, 500 * _MB), (100, 2 << 30)),
        label="ibm-fast18",
    ),
    "dockerhub-2019": LogNormal(median=4 * _MB, p90=63 * _MB, compression_ratio=2.6, label="dockerhub-2019"),
}
FORMS = (
    "SIZE (1MiB), MIN-MAX (1MiB-20MiB), lognormal:median=SIZE,p90=SIZE[,max=SIZE], empirical:PATH"
    f" or a preset ({', '.join(sorted(PRESETS))})"
)


def parse_size_distribution(text: str, what: str) -> SizeDistribution:
    """A distribution from its text form (module docstring); UsageError naming ``what`` when bad."""
    body = text.strip()
    if body.lower() in PRESETS:
        return PRESETS[body.lower()]
    kind, colon, rest = body.partition(":")
    try:
        if colon and kind.strip().lower() == "lognormal":
            return _lognormal(rest, what, text)
        if colon and kind.strip().lower() == "empirical":
            return _empirical(rest.strip(), what, text)
        if colon:
            raise _error(what, text, f"unknown kind {kind.strip()!r}; expected {FORMS}")
        low, dash, high = body.partition("-")
        if dash:
            return Uniform(_size(low, what, text), _size(high, what, text))
        if not body or not body[0].isdigit():
            raise _error(what, text, f"expected {FORMS}")
        return Fixed(_size(body, what, text))
    except ValueError as e:  # a constructor's check
        raise _error(what, text, str(e)) from None


def _error(what: str, text: str, cause: str) -> UsageError:
    shown = repr(text) if len(text) <= 60 else repr(text[:57] + "...")
    return UsageError(f"invalid {what} {shown}: {cause}")


def _size(part: str, what: str, text: str) -> int:
    try:
        return parse_size(part, what)
    except UsageError:
        raise _error(
            what, text, f"{part.strip()!r} is not a size (a number and a unit: B, KB/KiB, MB/MiB, GB/GiB)"
        ) from None


def _lognormal(body: str, what: str, text: str) -> LogNormal:
    values: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, value = (s.strip() for s in item.partition("="))
        key = key.lower()
        if not eq:
            raise _error(what, text, f"{item!r} is not key=SIZE")
        if key not in ("median", "p90", "max"):
            raise _error(what, text, f"unknown key {key!r} (known: median, p90, max)")
        if key in values:
            raise _error(what, text, f"{key} given twice")
        values[key] = _size(value, what, text)
    missing = [k for k in ("median", "p90") if k not in values]
    if missing:
        raise _error(what, text, f"lognormal needs {' and '.join(missing)} (lognormal:median=SIZE,p90=SIZE)")
    return LogNormal(values["median"], values["p90"], values.get("max", DEFAULT_MAX))


def _empirical(path: str, what: str, text: str) -> Empirical:
    if not path:
        raise _error(what, text, "empirical needs a file: empirical:PATH")
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise _error(what, text, f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise _error(what, text, f"{path} is not a UTF-8 text file") from None
    sizes: list[int] = []
    points: list[tuple[float, int]] = []
    for number, line in enumerate(lines, start=1):
        line = line.partition("#")[0].strip()
        if not line:
            continue
        where = f"{path} line {number}"
        try:  # a size alone ("4MB", or "4 MB": units may follow a space) or PERCENT SIZE
            sizes.append(parse_size(line))
        except UsageError:
            head, tail = (line.split(None, 1) + [""])[:2]
            percent = _percent(head, where, what, text)
            try:
                points.append((percent, parse_size(tail)))
            except UsageError:
                raise _error(what, text, f"{where}: expected SIZE or PERCENT SIZE, got {line!r}") from None
        if sizes and points:
            raise _error(what, text, f"{where}: mixes sizes and PERCENT SIZE lines")
    if not sizes and not points:
        raise _error(what, text, f"{path} holds no sizes")
    try:
        return Empirical(sizes=tuple(sizes), points=tuple(points), source=path)
    except ValueError as e:
        raise _error(what, text, f"{path}: {e}") from None


def _percent(token: str, where: str, what: str, text: str) -> float:
    try:
        percent = float(token.removesuffix("%"))
    except ValueError:
        raise _error(what, text, f"{where}: expected SIZE or PERCENT SIZE, got {token!r}") from None
    if not 0.0 <= percent <= 100.0:  # also refuses nan
        raise _error(what, text, f"{where}: percent {token} is outside 0-100")
    return percent
