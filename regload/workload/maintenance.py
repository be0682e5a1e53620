"""Maintenance windows (``--event``): what an event is, and the run's statistics split into phases.

An event starts at a time of the test (seconds since it started) and opens a window: while its
command runs (``run=``), or for a fixed time (``for=``). A phase's numbers are the differences
between two snapshots of every stats row (requests, failures and the response-time histogram,
as Locust keeps them), taken at the phase's start and end: before (the test start to the first
window), during each window, between windows, after (the last window to the test's end).

No Locust here: the percentile is Locust's rule (``percentiles``), so that this module imports
nothing that patches the interpreter for gevent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError
from ..units import parse_duration
from .percentiles import locust_percentile as percentile

MAX_EVENTS = 100
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
RESERVED_NAMES = ("before", "during", "between", "after")
KEYS = ("at", "name", "run", "for")
OPERATIONS = ("PULL", "PUSH")  # whole-operation rows first in tables and in the words on a change
CHANGE_WORTH_SAYING = 1.5  # a p99 this many times the baseline's is a change

# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    name: str
    at: float  # seconds since the test started
    command: str | None = None  # a shell command: the window lasts while it runs
    duration: float | None = None  # for=: a window without a command


def parse_event(text: str, index: int = 1) -> Event:
    """``at=60s,name=gc,run=COMMAND`` or ``at=60s,name=gc,for=30s``. ``run=`` takes the rest of the
    text, commas included, so it comes last. Errors name the event, never its command (a command
    may hold credentials)."""
    fields: dict[str, str] = {}
    rest = text.strip()
    while rest:
        if rest.startswith("run="):
            fields["run"] = rest[len("run=") :].strip()
            break
        part, _, rest = rest.partition(",")
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise UsageError(
                f"invalid --event #{index}: {key or part.strip()!r} is not one of at=, name=, run=, for="
                " (e.g. at=60s,name=gc,run=COMMAND)"
            )
        if key in fields:
            raise UsageError(f"invalid --event #{index}: {key}= is given twice")
        fields[key] = value.strip()
        rest = rest.lstrip()
    name = fields.get("name", "")
    what = f"--event {name}" if NAME.match(name) else f"--event #{index}"
    if not name:
        raise UsageError(f"invalid {what}: name= is missing: give it a name for its phase, e.g. name=gc")
    if not NAME.match(name) or name.lower() in RESERVED_NAMES:
        raise UsageError(
            f"invalid {what}: name= must be up to 40 letters, digits, '-', '_' or '.', and not before,"
            " during, between or after"
        )
    if "at" not in fields:
        raise UsageError(f"invalid {what}: at= is missing: when to start it, e.g. at=60s")
    at = parse_duration(fields["at"], f"{what} at=")
    if "run" in fields and "for" in fields:
        raise UsageError(f"invalid {what}: give run=COMMAND or for=DURATION, not both")
    if "run" in fields:
        if not fields["run"]:
            raise UsageError(f"invalid {what}: run= is empty")
        return Event(name, at, command=fields["run"])
    if "for" in fields:
        duration = parse_duration(fields["for"], f"{what} for=")
        if duration <= 0:
            raise UsageError(f"invalid {what}: for= must be above 0 seconds")
        return Event(name, at, duration=duration)
    raise UsageError(f"invalid {what}: give run=COMMAND (the window lasts while it runs) or for=DURATION")


def parse_events(texts: Iterable[str]) -> tuple[Event, ...]:
    """Every ``--event``, by time; names are unique."""
    events = [parse_event(text, i) for i, text in enumerate(texts, 1) if text.strip()]
    if len(events) > MAX_EVENTS:
        raise UsageError(f"too many --event: {len(events)}, at most {MAX_EVENTS}")
    seen: set[str] = set()
    for event in events:
        if event.name in seen:
            raise UsageError(f"invalid --event {event.name}: two events have that name: a phase needs its own")
        seen.add(event.name)
    return tuple(sorted(events, key=lambda e: e.at))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# -- snapshots and phases -------------------------------------------------------------------------

RowKey = tuple[str, str]  # (method, name): PULL image, GET /v2/<name>/blobs/<digest>


@dataclass(frozen=True)
class RowCounts:
    requests: int
    failures: int
    times: Mapping[int, int]  # response time (ms, rounded as Locust rounds) → requests


@dataclass(frozen=True)
class Snapshot:
    t: float  # seconds since the test started
    rows: Mapping[RowKey, RowCounts] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """A window that opened: its event's name, and the snapshots at its start and its end."""

    name: str
    start: Snapshot
    end: Snapshot


@dataclass(frozen=True)
class PhaseRow:
    method: str
    name: str
    count: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    rps: float

    @property
    def row(self) -> str:
        return f"{self.method} {self.name}"


@dataclass(frozen=True)
class Phase:
    phase: str  # before, during, between, after
    name: str | None  # during: the event's name
    label: str  # before, during gc, between gc and freeze, after
    start: float
    end: float
    rows: tuple[PhaseRow, ...]
    stats_reset: bool = False  # Locust's stats were reset inside it: its numbers start at the reset

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)

    def row(self, method: str, name: str) -> PhaseRow | None:
        return next((r for r in self.rows if (r.method, r.name) == (method, name)), None)


def between(first: Snapshot, last: Snapshot, seconds: float | None = None) -> tuple[tuple[PhaseRow, ...], bool]:
    """The rows of what happened from ``first`` to ``last``, and whether a row's stats were reset
    in between (its counts fell: they are then counted from the reset)."""
    span = last.t - first.t if seconds is None else seconds
    rows, reset = [], False
    for key, now in last.rows.items():
        then = first.rows.get(key, RowCounts(0, 0, {}))
        if now.requests < then.requests or now.failures < then.failures:
            reset, then = True, RowCounts(0, 0, {})
        times = {ms: n - then.times.get(ms, 0) for ms, n in now.times.items() if n > then.times.get(ms, 0)}
        total = sum(times.values())
        count, failures = now.requests - then.requests, now.failures - then.failures
        if not count and not failures:
            continue
        p50 = float(percentile(times, total, 0.5)) if total else None
        p99 = float(percentile(times, total, 0.99)) if total else None
        rows.append(PhaseRow(key[0], key[1], count, failures, p50, p99, count / span if span > 0 else 0.0))
    return tuple(sorted(rows, key=_row_order)), reset


def _row_order(row: PhaseRow) -> tuple[int, int, str]:
    return (0 if row.method in OPERATIONS else 1, -row.count, row.row)


def phases(first: Snapshot, windows: Sequence[Window], last: Snapshot, end: float | None = None) -> list[Phase]:
    """Before, each window, the gaps between windows, after. ``last`` holds the final stats and
    ``end`` the test's end when they differ (a master's last reports arrive after the stop): the
    after phase's rate is over the test's time."""
    end = last.t if end is None else end
    ordered = sorted(windows, key=lambda w: w.start.t)

    def phase(kind: str, name: str | None, label: str, a: Snapshot, b: Snapshot, until: float) -> Phase:
        rows, reset = between(a, b, until - a.t)
        return Phase(kind, name, label, a.t, until, rows, reset)

    if not ordered:
        return [phase("before", None, "before", first, last, end)]
    out = [phase("before", None, "before", first, ordered[0].start, ordered[0].start.t)]
    out += [phase("during", w.name, f"during {w.name}", w.start, w.end, w.end.t) for w in ordered]
    latest = ordered[0]  # the window that ends last among those started so far
    for window in ordered[1:]:
        if window.start.t > latest.end.t:
            label = f"between {latest.name} and {window.name}"
            out.append(phase("between", None, label, latest.end, window.start, window.start.t))
        if window.end.t > latest.end.t:
            latest = window
    if end > latest.end.t:
        out.append(phase("after", None, "after", latest.end, last, end))
    order = {id(p): i for i, p in enumerate(out)}
    return sorted(out, key=lambda p: (p.start, order[id(p)]))


def change_lines(found: Sequence[Phase]) -> list[str]:
    """One line per window: what changed in it against the phase before the first window (or,
    when that has no requests, the phase after the last): the operations' p99, rate and failures."""
    before = next((p for p in found if p.phase == "before" and p.rows), None)
    after = next((p for p in found if p.phase == "after" and p.rows), None)
    base = before or after
    lines = []
    for during in (p for p in found if p.phase == "during"):
        if not during.rows:
            lines.append(f"{during.label}: no request ended in its {during.seconds:.1f} s")
            continue
        if base is None:
            lines.append(f"{during.label}: nothing outside the windows to compare with")
            continue
        shown = [r for r in during.rows if r.method in OPERATIONS and base.row(r.method, r.name)]
        if not shown:
            shown = [r for r in during.rows if base.row(r.method, r.name)][:1] or list(during.rows[:1])
        lines.append(f"{during.label}: " + "; ".join(_change(r, base.row(r.method, r.name), base) for r in shown))
    return lines


def _change(row: PhaseRow, old: PhaseRow | None, base: Phase) -> str:
    where = base.phase
    failures = f", {row.failures:,} failures" if row.failures else ", no failure"
    if old is None or row.p99_ms is None or old.p99_ms is None:
        return f"{row.row} p99 {_ms(row.p99_ms)} ms, {row.rps:.1f}/s{failures} (no {where} phase to compare)"
    ratio = row.p99_ms / old.p99_ms if old.p99_ms else None
    times = f" ({ratio:.1f}×)" if ratio is not None and ratio < 10 else f" ({ratio:.0f}×)" if ratio else ""
    old_failures = f" ({old.failures:,} {where})" if row.failures or old.failures else ""
    worse = (ratio is not None and ratio >= CHANGE_WORTH_SAYING) or (
        row.count and row.failures / row.count > (old.failures / old.count if old.count else 0) + 0.001
    )
    verdict = "" if worse else ": no clear change"
    return (
        f"{row.row} p99 {_ms(row.p99_ms)} ms vs {_ms(old.p99_ms)} ms {where}{times},"
        f" {row.rps:.1f}/s vs {old.rps:.1f}/s{failures}{old_failures}{verdict}"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
