"""``regload verify AUDIT_FILE``: are the images a push run recorded still whole in their registry?"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..audit import read_audit_file
from ..client import RegistryClient
from ..concurrency import Runner
from ..errors import UsageError
from ..reference import Reference, Registry
from ..verify import ERROR, INTACT, STATUSES, Verdict, verify_all


def add_verify_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    v = sub.add_parser(
        "verify",
        parents=[common],
        help="check that the images of an --audit-file are still in their registry, tag and content",
        description="For each line of AUDIT_FILE: the tag must still point to the recorded digest, and the image"
        " pulled by digest must match every digest and size. Exit 0 when all are intact, 1 otherwise."
        " --registry URL checks the images in that registry instead of the recorded one.",
    )
    v.add_argument("audit_file", metavar="AUDIT_FILE", help="a file written by push --audit-file")
    v.add_argument("-j", "--jobs", type=int, default=4, help="images verified at once (default 4)")


def verify_command(
    args: argparse.Namespace, connect: Callable[[Reference], RegistryClient], runner: Runner
) -> dict[str, Any]:
    """Verify every line of the audit file; ``connect`` makes the client of a registry (one per
    registry, shared by all its images). ``--registry`` checks them all in that registry instead."""
    entries = read_audit_file(args.audit_file)
    if not entries:
        raise UsageError(f"{args.audit_file}: no image recorded, nothing to verify")
    override = Registry.from_url(args.registry) if args.registry else None
    targets = [(entry, entry.target(override, args.plain_http)) for entry in entries]
    clients: dict[Registry, RegistryClient] = {}
    try:
        for _, ref in targets:
            if ref.registry not in clients:
                clients[ref.registry] = connect(ref)
        verdicts = verify_all(targets, clients, runner, args.jobs)
    finally:
        for client in clients.values():
            client.close()
    counts = {status: sum(v.status == status for v in verdicts) for status in STATUSES}
    return {
        "auditFile": args.audit_file,
        "ok": counts[INTACT] == len(verdicts),
        "summary": {"verified": len(verdicts), **counts},
        "images": [_image(v) for v in verdicts],
    }


def _image(v: Verdict) -> dict[str, Any]:
    return {
        "reference": v.entry.reference,
        "registry": v.ref.registry.base_url,
        "repository": v.ref.repository,
        "tag": v.ref.tag,
        "digest": v.entry.digest,
        "status": v.status,
        "cause": v.cause or None,
        "currentDigest": v.current_digest,
    }


def print_verify(out: dict[str, Any]) -> None:
    """One line per image that is not intact, then the summary."""
    for image in out["images"]:
        if image["status"] != INTACT:
            print(f"{image['reference']}: {image['status']}: {image['cause']}")
    s = out["summary"]
    line = (
        f"verified {s['verified']} images: {s[INTACT]} intact, {s['missing']} missing,"
        f" {s['different'] + s['corrupt']} different/corrupt"
    )
    if s[ERROR]:
        line += f", {s[ERROR]} not decided (registry errors)"
    print(line)
