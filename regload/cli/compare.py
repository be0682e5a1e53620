"""``regload compare BASE NEW``: two runs' results row by row, and ``--max-regression`` limits
that make the exit status a release pipeline's verdict (see ``regload.compare``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..compare.limits import parse_limit
from ..compare.report import as_json, compare, text_lines
from ..compare.runs import load_run


def add_compare_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    c = sub.add_parser(
        "compare",
        help="compare two Locust runs' results row by row; exit 1 when a --max-regression limit is broken",
        description="BASE and NEW are the PREFIX of Locust's --json-file PREFIX (or PREFIX.json); regload's"
        " PREFIX_capacity.json, PREFIX_registry.json and PREFIX_storms.json beside it are compared too."
        " Exit 0 when every limit holds, 1 when one is broken, 2 on a usage error.",
    )
    c.add_argument("base", metavar="BASE", help="the baseline run: PREFIX or PREFIX.json")
    c.add_argument("new", metavar="NEW", help="the run to judge: PREFIX or PREFIX.json")
    c.add_argument(
        "--max-regression",
        action="append",
        default=[],
        metavar="ROW:METRIC:±LIMIT",
        help="fail when ROW's METRIC moved beyond LIMIT: 'PULL image:p99:+20%%' (a rise of more than 20%%),"
        " 'capacity:-10%%' (a fall), 'PULL image:failures:+0' (in the metric's unit), '*:p99:+25%%' (every row);"
        " repeatable. Metrics: count, failures, fail_ratio, p50, p99, throughput, capacity, complete_ms,"
        " amplification, cpu_cores, rss_mib",
    )
    c.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="text (default), markdown, json"
    )
    c.add_argument("--json", action="store_true", help="the same as --format json")


def cmd_compare(args: argparse.Namespace) -> dict[str, Any]:
    limits = [parse_limit(text) for text in args.max_regression]  # a bad limit stops here, nothing read
    comparison = compare(load_run(args.base), load_run(args.new), limits)
    out = as_json(comparison)
    out["text"] = text_lines(comparison, markdown=args.format == "markdown")
    if args.format == "json":
        args.json = True
    return out


def print_compare(out: dict[str, Any]) -> None:
    print("\n".join(out["text"]))


def json_document(out: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in out.items() if k != "text"}, indent=2)
