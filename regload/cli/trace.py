"""``regload trace stats FILE…`` and ``regload trace synth OUT``: read and write registry traces in
the IBM format (see ``regload.workload.trace``)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

from ..errors import UsageError
from ..units import parse_duration
from ..workload.popularity import parse_popularity
from ..workload.sizes import parse_size_distribution
from ..workload.trace.records import Window, load_trace
from ..workload.trace.stats import trace_stats
from ..workload.trace.synth import SynthSpec, parse_mix, write_trace
from .progress import human_bytes


def add_trace_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("trace", help="summarise or synthesise registry traces (IBM format) for TraceUser")
    actions = t.add_subparsers(dest="trace_command", required=True, metavar="ACTION", parser_class=parser_class)
    s = actions.add_parser("stats", help="a trace's mix, rates, sizes and what its replay's warm-up creates")
    s.add_argument("files", nargs="+", metavar="FILE", help="trace files (JSON arrays, .gz too), merged by time")
    s.add_argument("--window", metavar="START-END", help="only this part of the trace: 60-120, 1m-2m, 30s-")
    s.add_argument("--json", action="store_true", help="print one JSON document")
    y = actions.add_parser("synth", help="write a synthetic trace (IBM format) from size and popularity models")
    y.add_argument("out", metavar="OUT", help="file to write (- for standard output)")
    y.add_argument("--requests", type=int, default=240, help="records in the trace (default 240)")
    y.add_argument("--duration", default="12s", help="from the first record to the last (default 12s)")
    y.add_argument("--repos", type=int, default=6, help="anonymised repositories (default 6)")
    y.add_argument(
        "--mix",
        default="get-manifest=25,get-blob=60,put-manifest=5,put-blob=10",
        help="weights of the four operations (default get-manifest=25,get-blob=60,put-manifest=5,put-blob=10)",
    )
    y.add_argument("--blob-size", default="ibm-fast18", help="blob sizes: SIZE, MIN-MAX, lognormal:…, a preset")
    y.add_argument("--manifest-size", default="1KB-8KB", help="manifest sizes (default 1KB-8KB)")
    y.add_argument("--popularity", default="zipf:1.1", help="which repository, tag, layer: zipf:S or uniform")
    y.add_argument("--layers", type=int, default=8, help="layers of each repository GETs read (default 8)")
    y.add_argument("--tags", type=int, default=4, help="tags of each repository at the start (default 4)")
    y.add_argument("--base-layers", type=int, default=4, help="layers every repository shares (default 4)")
    y.add_argument("--shared", type=float, default=0.3, help="share of blob GETs that read a base layer")
    y.add_argument("--seed", type=int, default=0, help="the same seed writes the same trace (default 0)")
    y.add_argument("--json", action="store_true", help="print one JSON document about what was written")


def cmd_trace(args: argparse.Namespace) -> dict[str, Any]:
    if args.trace_command == "stats":
        window = Window.parse(args.window) if args.window else Window()
        return trace_stats(load_trace(args.files, window))
    if not 0.0 <= args.shared <= 1.0:
        raise UsageError(f"--shared must be between 0 and 1, not {args.shared}")
    spec = SynthSpec(
        requests=args.requests,
        duration=parse_duration(args.duration, "--duration"),
        repositories=args.repos,
        mix=parse_mix(args.mix),
        blob_sizes=parse_size_distribution(args.blob_size, "--blob-size"),
        manifest_sizes=parse_size_distribution(args.manifest_size, "--manifest-size"),
        popularity=parse_popularity(args.popularity, "--popularity"),
        layers_per_repository=args.layers,
        tags_per_repository=args.tags,
        base_layers=max(0, args.base_layers),
        shared=args.shared,
        seed=args.seed,
    )
    if args.out == "-":
        count = write_trace(spec, sys.stdout)
    else:
        count = _write_whole(args.out, spec)
    return {"written": args.out, "records": count, "duration": spec.duration, "repositories": spec.repositories}


def _write_whole(path: str, spec: SynthSpec) -> int:
    """Into a temporary file beside ``path``, renamed over it when complete: never half a trace."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".regload-trace-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            count = write_trace(spec, out)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return count


def print_trace(out: dict[str, Any]) -> None:
    if "written" in out:
        if out["written"] != "-":
            print(f"wrote {out['records']} records over {out['duration']:g} s to {out['written']}", file=sys.stderr)
        return
    for line in stats_lines(out):
        print(line)


def stats_lines(stats: dict[str, Any]) -> list[str]:
    def size(value: int | None) -> str:
        return "-" if value is None else human_bytes(value)

    total = stats["records"]
    lines = [f"trace {', '.join(stats['files'])}: {total} requests to replay over {stats['duration']:g} s"]
    if stats["start"]:
        lines.append(f"  starts {stats['start']}")
    if stats["skipped"]:
        lines.append("  skipped: " + ", ".join(f"{n} {reason}" for reason, n in stats["skipped"].items()))
    rate = stats["rate"]
    mean = "-" if rate["mean"] is None else f"{rate['mean']:g}/s"
    lines.append(f"  rate: mean {mean}, busiest second {rate['peak_second']} requests")
    for name, n in stats["mix"].items():
        share = f"{100.0 * n / total:.1f} %" if total else "-"
        lines.append(f"  {name:<13} {n:>9}  {share:>7}")
    lines.append(f"  repositories: {stats['repositories']}")
    for kind, s in stats["sizes"].items():
        lines.append(
            f"  {kind} GET sizes ({s['count']}): p50 {size(s['p50'])}, p90 {size(s['p90'])},"
            f" p99 {size(s['p99'])}, max {size(s['max'])}"
        )
    w = stats["warm_up"]
    lines.append(
        f"  warm-up creates {w['blobs']} blobs ({size(w['blob_bytes'])}) and {w['manifests']} manifests"
        f" in {w['repositories']} repositories"
        + (f"; {w['blobs_without_size']} blobs have no recorded size" if w["blobs_without_size"] else "")
    )
    return lines
