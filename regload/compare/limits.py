"""``--max-regression ROW:METRIC:±LIMIT``: how much worse a run may be than its baseline.

``'PULL image:p99:+20%'`` fails when ``PULL image``'s p99 rose by more than 20 %; ``'capacity:-10%'``
when the capacity fell by more than 10 % (a row with one metric needs no METRIC); without ``%``
the limit is in the metric's own unit (``'PULL image:failures:+0'``: no new failure). ``*`` as the
row applies the limit to every row that has the metric."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..errors import UsageError
from .runs import Run

LIMIT = re.compile(r"^([+-])(\d+(?:\.\d+)?)(%?)$")
METRICS = (
    "count",
    "failures",
    "fail_ratio",
    "p50",
    "p99",
    "throughput",
    "capacity",
    "complete_ms",
    "amplification",
    "cpu_cores",
    "rss_mib",
)
ONLY_METRIC = {"capacity": "capacity"}  # rows whose metric goes without saying


@dataclass(frozen=True)
class Limit:
    row: str  # a row's label, or * for every row with the metric
    metric: str
    sign: int  # +1: a rise beyond the amount fails; -1: a fall
    amount: float
    relative: bool  # a percentage of the base value, or the metric's own unit
    text: str

    def allowed(self) -> str:
        unit = "%" if self.relative else ""
        return f"{'+' if self.sign > 0 else '-'}{self.amount:g}{unit}"


@dataclass(frozen=True)
class Judgement:
    limit: Limit
    row: str
    base: float | None
    new: float | None
    passed: bool
    why: str  # in words, naming the row

    @property
    def change_pct(self) -> float | None:
        return change_pct(self.base, self.new)


def parse_limit(text: str) -> Limit:
    parts = text.rsplit(":", 2)
    if len(parts) == 2 and parts[0].strip() in ONLY_METRIC:
        row, amount = parts[0].strip(), parts[1]
        metric = ONLY_METRIC[row]
    elif len(parts) == 3:
        row, metric, amount = parts[0].strip(), parts[1].strip(), parts[2]
    else:
        raise UsageError(
            f"invalid --max-regression {text!r}: expected ROW:METRIC:+PCT%,"
            " e.g. 'PULL image:p99:+20%' or 'capacity:-10%'"
        )
    if metric not in METRICS:
        raise UsageError(f"invalid --max-regression {text!r}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    m = LIMIT.match(amount.strip())
    if not row or m is None:
        raise UsageError(
            f"invalid --max-regression {text!r}: the limit is a signed amount, e.g. +20% (a rise) or -10% (a fall)"
        )
    sign, value, percent = m.groups()
    return Limit(row, metric, 1 if sign == "+" else -1, float(value), percent == "%", text)


def change_pct(base: float | None, new: float | None) -> float | None:
    if base is None or new is None or base == 0:
        return None
    return (new - base) / abs(base) * 100.0


def judge(limit: Limit, base: Run, new: Run) -> list[Judgement]:
    """The limit on each row it names; a row that neither run has is a usage error."""
    if limit.row == "*":
        rows = [r for r in base.rows if limit.metric in base.rows[r]]
        if not rows:
            raise UsageError(f"--max-regression {limit.text!r}: no row of {base.source} has {limit.metric}")
    elif limit.row in base.rows or limit.row in new.rows:
        rows = [limit.row]
    else:
        known = sorted(set(base.rows) | set(new.rows))
        close = difflib.get_close_matches(limit.row, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else f"; rows: {', '.join(known)}"
        raise UsageError(f"--max-regression {limit.text!r}: neither run has a row {limit.row!r}{hint}")
    return [_judge_row(limit, row, base, new) for row in rows]


def _judge_row(limit: Limit, row: str, base: Run, new: Run) -> Judgement:
    before = base.rows.get(row, {}).get(limit.metric)
    after = new.rows.get(row, {}).get(limit.metric)
    what = f"{row} {limit.metric}"
    if before is None:
        return Judgement(limit, row, before, after, True, f"{what}: not in the base run, nothing to compare")
    if after is None:
        return Judgement(limit, row, before, after, False, f"{what}: in the base run ({before:g}), gone in the new one")
    moved = after - before
    if limit.relative:
        bound = abs(before) * limit.amount / 100.0
        change = change_pct(before, after)
        shown = f"{change:+.1f}%" if change is not None else ("no change" if moved == 0 else "from 0")
    else:
        bound, shown = limit.amount, f"{moved:+g}"
    passed = moved <= bound if limit.sign > 0 else -moved <= bound
    verdict = "within" if passed else "beyond"
    why = f"{what} {shown} ({before:g} → {after:g}), {verdict} the {limit.allowed()} allowed"
    return Judgement(limit, row, before, after, passed, why)
