"""Which of n images a pull picks: ``uniform`` (each alike) or ``zipf:S`` (rank k, from 0, drawn with
probability proportional to 1/(k+1)^S; index 0 is the most popular).

Registry traces are skewed this way: a few images take most pulls (Anwar et al., FAST '18).
"""

from __future__ import annotations

import math
import random
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

from ..errors import UsageError

FORMS = "uniform or zipf:EXPONENT (an exponent above 0, e.g. zipf:1.1)"


class Popularity(Protocol):
    def pick(self, rng: random.Random, n: int) -> int:
        """An index in [0, n); 0 is the most popular."""
        ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class Uniform:
    def pick(self, rng: random.Random, n: int) -> int:
        if n < 1:
            raise ValueError("nothing to pick from")
        return rng.randrange(n)

    def __str__(self) -> str:
        return "uniform"


class Zipf:
    """Zipf over ranks. The cumulative weights of ranks 0..k do not depend on n, so one prefix
    table serves every n up to the largest asked: it grows when n does (the pool grows as images
    are pushed) and is never rebuilt. A pick is one bisect, O(log n). The table holds 8 bytes per
    rank of the largest n (the pull pool is capped at 10,000 images)."""

    def __init__(self, exponent: float) -> None:
        if not (exponent > 0 and math.isfinite(exponent)):
            raise ValueError(f"the exponent must be a number above 0, not {exponent}")
        self.exponent = exponent
        self._cumulative = array("d")
        self.weights_computed = 0  # ranks whose weight was computed: stays at the largest n asked

    def pick(self, rng: random.Random, n: int) -> int:
        if n < 1:
            raise ValueError("nothing to pick from")
        cumulative = self._cumulative
        if n > len(cumulative):
            self._extend(n)
        u = rng.random() * cumulative[n - 1]
        # min(): u * total may round up to total itself, where bisect would answer n.
        return min(bisect_right(cumulative, u, 0, n), n - 1)

    def _extend(self, n: int) -> None:
        start = len(self._cumulative)
        total = self._cumulative[-1] if start else 0.0
        s = self.exponent
        weights = ((k + 1) ** -s for k in range(start, n))
        self._cumulative.extend(accumulate(weights, initial=total))
        del self._cumulative[start]  # accumulate's initial value, already held (or 0.0)
        self.weights_computed += n - start

    def probability(self, k: int, n: int) -> float:
        """P(rank k) among n: for tests and reports."""
        return (k + 1) ** -self.exponent / sum((j + 1) ** -self.exponent for j in range(n))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Zipf) and other.exponent == self.exponent

    def __hash__(self) -> int:
        return hash(("zipf", self.exponent))

    def __repr__(self) -> str:
        return f"Zipf({self.exponent!r})"

    def __str__(self) -> str:
        return f"zipf:{self.exponent:.15g}"


UNIFORM = Uniform()


def parse_popularity(text: str, what: str) -> Popularity:
    """``uniform`` or ``zipf:EXPONENT``; UsageError naming ``what`` when bad."""
    body = text.strip()
    shown = repr(text) if len(text) <= 40 else repr(text[:37] + "...")
    if body.lower() == "uniform":
        return UNIFORM
    kind, colon, value = body.partition(":")
    if kind.strip().lower() != "zipf" or not colon:
        raise UsageError(f"invalid {what} {shown}: expected {FORMS}")
    try:
        exponent = float(value)
    except ValueError:
        raise UsageError(f"invalid {what} {shown}: {value.strip()!r} is not a number; expected {FORMS}") from None
    try:
        return Zipf(exponent)
    except ValueError as e:
        raise UsageError(f"invalid {what} {shown}: {e}") from None
