"""The options reference of the docs (``docs/reference/options.md``), written from the option
groups and the command line's parser, so that it cannot say something the code does not do:

    python -m regload.cli.reference > docs/reference/options.md

``tests/test_docs.py`` fails when the page and this output differ.
"""

from __future__ import annotations

import argparse
import sys

from ..options.groups import GROUPS
from ..options.spec import CLI, LOCUST, Option
from .main import build_parser

HEADER = """# Options

<!-- Written by `python -m regload.cli.reference > docs/reference/options.md`: edit the option
groups (regload/options/groups.py) or the command line's parser, not this page. -->

Every option of the command line (`regload`) and of the Locust harness (`locust -f
locustfile.py`). An option both have has one long name in both, one default and one check; the
command line keeps short spellings (`-u`, `-p`, `-j`, `-H`), and accepts its spellings of the last
release with a warning. Options marked *form* are fields of Locust's web form, in this order; the
others are given on the command line (or in a Locust config file). The guides explain them:
[the command line](../cli.md), [Locust](../locust.md), [workloads](../workloads.md),
[the open model](../open-model.md), [reading the results](../results.md).
"""


def markdown() -> str:
    out = [HEADER]
    for group in GROUPS:
        out.append(f"\n## {group.title[0].upper()}{group.title[1:]}\n")
        out.append("| option | where | default | meaning |\n|---|---|---|---|")
        out += [_row(option) for option in group.options]
    out.append(_commands())
    return "\n".join(out) + "\n"


def _row(option: Option) -> str:
    names = f"`{option.flag}`" + (f" `{option.metavar}`" if option.metavar else "")
    also = [f"`{short}`" for short in option.short] + [f"`{old}` (deprecated)" for old in option.deprecated]
    if also:
        names += " (command line: " + ", ".join(also) + ")"
    where = " and ".join({CLI: "command line", LOCUST: "Locust"}[f] for f in (CLI, LOCUST) if f in option.fronts)
    if option.web:
        where += ", form"
    default = "off" if option.kind == "flag" else "none" if option.default in (None, "") else f"`{option.default}`"
    if option.env:
        default += f", or `{option.env}`"
    return f"| {names} | {where} | {default} | {_cell(option.help)} |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("%%", "%")


def _commands() -> str:
    """The command line's own options, by command: those that are not in a group."""
    shared = {flag for group in GROUPS for option in group.options for flag in option.spellings(CLI)}
    parser = build_parser()
    out = [
        "\n## Commands of the command line\n",
        "Every registry command (`pull`, `push`, `tags`, `inspect`, `verify`) also takes the registry"
        " connection, client and retry options above, and `--json`.\n",
    ]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        usage = " ".join(a.metavar or a.dest.upper() for a in sub._actions if not a.option_strings)
        out.append(f"\n### `regload {name} {usage}`\n")
        rows = [
            f"| {', '.join(f'`{s}`' for s in a.option_strings)} | {_cell(a.help or '')} |"
            for a in sub._actions
            if a.option_strings and not set(a.option_strings) & (shared | {"-h", "--help", "--json"})
        ]
        out += ["| option | meaning |\n|---|---|", *rows] if rows else ["No options of its own."]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(markdown())
