"""What the storms measured, at the end of a run: a line per storm on the console and
``PREFIX_storms.json`` (beside ``--csv`` and ``--json-file``)."""

from __future__ import annotations

import json
from typing import Any

from ..workload.storms import Storm


def summary_lines(storms: list[Storm]) -> list[str]:
    if not storms:
        return []
    lines = ["regload storms (each: release → the last client done; pulls timed from their own release):"]
    for s in storms:
        head = f"  storm {s.number}: {s.image}, {s.clients} clients"
        if s.last_done_ms is None:
            lines.append(f"{head}: no pull finished" + _trouble(s))
            continue
        p50, p99 = s.pull_ms(0.5), s.pull_ms(0.99)
        pulls = (
            f"pulls p50 {_sec(p50)}, p99 {_sec(p99)}" if p50 is not None and p99 is not None else "no pull succeeded"
        )
        lines.append(
            f"{head}: first done after {_sec(s.first_done_ms)}, last after {_sec(s.last_done_ms)} ({pulls})"
            + _trouble(s)
        )
        if s.amplification is not None:
            lines.append(
                f"    the upstream served each of its {s.blobs} blobs {s.amplification:g} times"
                f" ({s.upstream_blob_gets:g} blob GETs; a perfect cache: 1, one fetch per client: {s.clients})"
            )
        elif s.through_cache:
            lines.append(f"    amplification {s.amplification_note}")
    return lines


def write_json(path: str, storms: list[Storm]) -> None:
    with open(path, "w") as f:
        json.dump({"storms": [s.to_json() for s in storms]}, f, indent=2)
        f.write("\n")


def _trouble(storm: Storm) -> str:
    parts = []
    if storm.failures:
        causes = "; ".join(f"{n}× {cause}" for cause, n in sorted(storm.causes.items(), key=lambda kv: -kv[1]))
        parts.append(f"{storm.failures} failed ({causes})")
    if storm.cut_short:
        parts.append("cut short by the end of the test")
    elif storm.missing:
        parts.append(f"{storm.missing} not done before the next storm")
    return f"; {', '.join(parts)}" if parts else ""


def _sec(ms: Any) -> str:
    return f"{ms / 1000:.2f} s" if ms is not None else "-"
