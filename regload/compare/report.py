"""Two runs compared: a table per kind of row (each cell ``base → new (change)``), the limits
judged, and in words what got worse — as text for a terminal, Markdown for a CI comment, or JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .limits import Judgement, Limit, change_pct, judge
from .runs import HIGHER_IS_BETTER, LOWER_IS_BETTER, Run

WORTH_SAYING_PCT = 10.0  # a change for the worse this large is said in words, limit or not
FEW_REQUESTS = 100  # under this many, a p99 is one of the slowest few requests: noisy
MOST_SAID = 8


@dataclass(frozen=True)
class Comparison:
    base: Run
    new: Run
    judgements: tuple[Judgement, ...]

    @property
    def ok(self) -> bool:
        return all(j.passed for j in self.judgements)

    def rows(self) -> list[str]:
        return list(self.base.rows) + [r for r in self.new.rows if r not in self.base.rows]


def compare(base: Run, new: Run, limits: list[Limit]) -> Comparison:
    return Comparison(base, new, tuple(j for limit in limits for j in judge(limit, base, new)))


def worse(comparison: Comparison) -> list[str]:
    """The changes for the worse above ``WORTH_SAYING_PCT``, the largest first, in words."""
    found: list[tuple[float, str]] = []
    for row in comparison.rows():
        before, after = comparison.base.rows.get(row, {}), comparison.new.rows.get(row, {})
        for metric in before.keys() & after.keys():
            change = change_pct(before[metric], after[metric])
            direction = _direction(metric)
            if change is None or direction == 0 or change * direction <= WORTH_SAYING_PCT:
                continue
            noisy = metric == "p99" and min(before.get("count", 0), after.get("count", 0)) < FEW_REQUESTS
            hint = " (under 100 requests: a p99 of few, noisy)" if noisy else ""
            found.append(
                (abs(change), f"{row} {metric} {change:+.0f}% ({_num(before[metric])} → {_num(after[metric])}){hint}")
            )
    return [text for _, text in sorted(found, reverse=True)[:MOST_SAID]]


def text_lines(comparison: Comparison, markdown: bool = False) -> list[str]:
    c = comparison
    lines = [f"{'## ' if markdown else ''}regload compare: {c.base.source} → {c.new.source}", ""]
    for metrics, rows in _groups(c):
        header = ["row", *metrics]
        body = [[row, *(_cell(c, row, m, markdown) for m in metrics)] for row in rows]
        lines += _markdown_table(header, body) if markdown else _text_table(header, body)
        lines.append("")
    bullet = "- " if markdown else "  "
    for run, name in ((c.base, "base"), (c.new, "new")):
        lines += [f"{bullet}note: the {name} run: {note}" for note in run.notes]
    said = worse(c)
    if said:
        lines.append("worse by more than 10%:" if not markdown else "**Worse by more than 10%:**")
        lines += [f"{bullet}{line}" for line in said]
    if c.judgements:
        lines.append("" if not markdown else "**Limits:**")
    for j in c.judgements:
        mark = ("✅ " if j.passed else "❌ ") if markdown else ("ok: " if j.passed else "REGRESSION: ")
        lines.append(f"{bullet}{mark}{j.why}")
    failed = [j for j in c.judgements if not j.passed]
    if failed:
        broken = "; ".join(f"{j.row} {j.limit.metric}" for j in failed)
        lines.append(f"regload compare: {len(failed)} of {len(c.judgements)} limits broken: {broken}")
    elif c.judgements:
        lines.append(f"regload compare: every limit held ({len(c.judgements)} checked)")
    return lines


def as_json(comparison: Comparison) -> dict[str, Any]:
    c = comparison
    rows = []
    for row in c.rows():
        before, after = c.base.rows.get(row, {}), c.new.rows.get(row, {})
        metrics = {
            m: {
                "base": before.get(m),
                "new": after.get(m),
                "change_pct": _round(change_pct(before.get(m), after.get(m))),
            }
            for m in list(before) + [m for m in after if m not in before]
        }
        rows.append({"row": row, "metrics": metrics})
    return {
        "base": {"source": c.base.source, "files": c.base.files, "notes": c.base.notes},
        "new": {"source": c.new.source, "files": c.new.files, "notes": c.new.notes},
        "rows": rows,
        "worse": worse(c),
        "limits": [
            {
                "limit": j.limit.text,
                "row": j.row,
                "metric": j.limit.metric,
                "base": j.base,
                "new": j.new,
                "change_pct": _round(j.change_pct),
                "passed": j.passed,
                "why": j.why,
            }
            for j in c.judgements
        ],
        "ok": c.ok,
    }


def _groups(c: Comparison) -> list[tuple[tuple[str, ...], list[str]]]:
    """Rows with the same metrics share a table, in the order they first appear."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for row in c.rows():
        metrics = tuple(dict.fromkeys([*c.base.rows.get(row, {}), *c.new.rows.get(row, {})]))
        groups.setdefault(metrics, []).append(row)
    return list(groups.items())


def _cell(c: Comparison, row: str, metric: str, markdown: bool) -> str:
    before, after = c.base.rows.get(row, {}).get(metric), c.new.rows.get(row, {}).get(metric)
    if before is None and after is None:
        return "-"
    if before is None:
        return f"{_num(after)} (new)"
    if after is None:
        return f"{_num(before)} (gone)"
    change = change_pct(before, after)
    shown = f" ({change:+.0f}%)" if change is not None and round(change) != 0 else ""
    cell = f"{_num(before)} → {_num(after)}{shown}"
    breached = any(j.row == row and j.limit.metric == metric and not j.passed for j in c.judgements)
    return f"**{cell}**" if breached and markdown else cell


def _direction(metric: str) -> int:
    """+1 when a rise is for the worse, -1 when a fall is, 0 when neither (a count)."""
    if metric in LOWER_IS_BETTER or metric in ("p50", "p99"):
        return 1
    return -1 if metric in HIGHER_IS_BETTER else 0


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in body)]
