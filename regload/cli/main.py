"""``regload pull | push | tags | inspect | verify | trace | compare``: argument parsing, wiring, and
result printing."""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, NoReturn

from .. import __version__, endpoints
from ..audit import AuditEntry, AuditLog, check_writable
from ..auth import Credentials
from ..client import RegistryClient
from ..concurrency import Runner
from ..errors import ManifestError, RegloadError, UsageError, mended_by
from ..flows.pull import fetch_manifest, platform_manifest, pull
from ..flows.push import push
from ..manifest import DEFAULT_PLATFORM, ImageManifest, Index, Platform
from ..options import groups as g
from ..options.spec import CLI
from ..profiles import PROFILES, REGLOAD
from ..reference import Reference, Registry, parse_reference, parse_repository
from ..sinks import make_sink
from ..sources import open_source
from ..sources.compress import Threads
from ..sources.digest_cache import DigestCache
from ..wiring.connect import make_client
from .compare import add_compare_parser, cmd_compare, json_document, print_compare
from .credentials import resolve_credentials
from .progress import Progress, human_bytes
from .trace import add_trace_parser, cmd_trace, print_trace
from .verify import add_verify_parser, print_verify, verify_command


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"regload: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    for group in (g.REGISTRY, g.CLIENT, g.RETRIES):
        group.add_to(common, CLI)
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON document with the result")

    parser = _Parser(prog="regload", description="docker pull and push as plain registry HTTP requests")
    parser.add_argument("--version", action="version", version=f"regload {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("pull", parents=[common], help="pull an image (verify only, or write it out)")
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("-o", "--output", metavar="PATH", help="write the image here (default: verify and discard)")
    p.add_argument(
        "--format", choices=("rootfs", "oci", "docker-archive"), default="rootfs", help="output format (default rootfs)"
    )
    g.PULL.add_to(p, CLI)

    s = sub.add_parser(
        "push", parents=[common], help="push an image from a docker-save tarball, an OCI layout or a synthetic spec"
    )
    s.add_argument(
        "source",
        metavar="SOURCE",
        help="docker save tarball, OCI layout dir[:ref], or synthetic:layers=N,size=S,seed=K[,gzip=RATIO]",
    )
    s.add_argument("reference", metavar="REFERENCE")
    g.PUSH.add_to(s, CLI)
    source = s.add_argument_group("source")
    source.add_argument(
        "--compression", choices=("gzip", "none"), default="gzip", help="compress tarball layers (default gzip)"
    )
    source.add_argument(
        "--compression-level",
        type=int,
        default=None,
        choices=range(1, 10),
        metavar="1-9",
        help="gzip with zlib at this level (default: ISA-L igzip, much faster, blobs ~7%% larger than zlib 6)",
    )
    source.add_argument(
        "--platform", default=str(DEFAULT_PLATFORM), help="os/arch[/variant] to pick from an OCI layout index"
    )
    s.add_argument("--mount-from", metavar="REPO", help="try a cross-repository mount from this repository first")

    t = sub.add_parser("tags", parents=[common], help="list a repository's tags")
    t.add_argument("repository", metavar="REPO")
    t.add_argument("--page-size", type=_count, help="ask for this many tags per page (n=)")

    i = sub.add_parser("inspect", parents=[common], help="show an image's digest, media type, platforms and layers")
    i.add_argument("reference", metavar="REFERENCE")
    i.add_argument("--platform", help="show this platform's manifest when REFERENCE is an index")
    add_verify_parser(sub, common)
    add_trace_parser(sub, _Parser)
    add_compare_parser(sub, _Parser)
    return parser


def _reference(args: argparse.Namespace, text: str, repository_only: bool = False) -> Reference:
    registry = Registry.from_url(args.registry) if args.registry else None
    parse = parse_repository if repository_only else parse_reference
    return parse(text, registry=registry, plain_http=args.plain_http)


CredentialsFor = Callable[[str], Credentials | None]


def credentials_source(args: argparse.Namespace) -> CredentialsFor:
    """Credentials by registry host; warns about a command-line password and reads
    ``--password-stdin`` once, however many registries a command reaches."""
    if args.registry_password is not None:
        print(
            "regload: warning: a password on the command line may be seen by other users; prefer --password-stdin",
            file=sys.stderr,
        )
    stdin_text = sys.stdin.read() if args.password_stdin else None
    return lambda host: resolve_credentials(
        host, args.registry_username, args.registry_password, args.password_stdin, stdin_text
    )


def connect(
    args: argparse.Namespace, ref: Reference, credentials_for: CredentialsFor | None = None, recorded: bool = False
) -> RegistryClient:
    """The client for ``ref``'s registry. ``recorded``: its URL comes from an audit file, written
    by a push that reached it as the user asked (an http:// one included)."""
    settings = g.client_settings(
        args,
        g.chosen_profile(args),
        (credentials_for or credentials_source(args))(ref.registry.host),
        # Asked for plain HTTP: --plain-http or an http:// --registry, not a loopback host's default.
        plain_http=args.plain_http or bool(args.registry) or recorded,
    )
    return make_client(ref.registry, settings)


def gevent_runner() -> Runner:
    """Layers side by side on greenlets. Imported when a command runs: ``--version`` and
    ``--help`` load no gevent."""
    from ..wiring.gevent_runner import GeventRunner

    return GeventRunner()


def native_threads() -> Threads:
    """Compression and hashing on every core (imported when a command runs, as ``gevent_runner``)."""
    from ..wiring.gevent_runner import NativeThreads

    return NativeThreads()


def _platform(text: str) -> Platform:
    try:
        return Platform.parse(text)
    except ManifestError as e:
        raise UsageError(str(e)) from None


def _count(text: str) -> int:
    """``--page-size``: a whole number from 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _check_jobs(jobs: int | None) -> int | None:
    if jobs is not None and not 1 <= jobs <= 64:
        raise UsageError(f"--jobs must be between 1 and 64, not {jobs}")
    return jobs


def cmd_pull(args: argparse.Namespace) -> dict[str, Any]:
    ref = _reference(args, args.reference)
    if args.no_verify and args.output:
        # An output is trusted as the image: nothing unverified is written where the user looks.
        raise UsageError("--no-verify only counts bytes: it cannot write an --output")
    chosen = g.chosen_profile(args)
    # A mix of platforms (--pull-platform linux/amd64:3,linux/arm64:1) pulls one, picked by weight.
    platform = g.pull_platforms(args).pick(random.Random())
    options = replace(g.pull_options(args, chosen), platform=platform)
    sink = make_sink(args.format if args.output else None, args.output, ref.familiar_name, ref.tag)
    client = connect(args, ref)
    progress = Progress(f"pulling {ref}", enabled=None if not args.json else False)
    try:
        result = pull(client, ref, sink, gevent_runner(), options, progress)
    finally:
        progress.finish()
        client.close()
    out = result.to_json()
    out["client_profile"] = chosen.name
    out["http"] = sorted(client.http_versions)
    out["output"] = {"path": args.output, "format": args.format} if args.output else None
    return out


def cmd_push(args: argparse.Namespace) -> dict[str, Any]:
    ref = _reference(args, args.reference)
    chosen = g.chosen_profile(args)
    mount_from = _reference(args, args.mount_from, repository_only=True).repository if args.mount_from else None
    options = g.push_options(args, chosen, mount_from)
    if args.audit_file:
        check_writable(args.audit_file)
    image = open_source(
        args.source,
        compression=args.compression,
        level=args.compression_level,
        platform=_platform(args.platform),
        threads=native_threads(),
        cache=DigestCache.default(),
    )
    try:
        client = connect(args, ref)
        progress = Progress(f"pushing {ref}", enabled=None if not args.json else False)
        try:
            result = push(client, ref, image, gevent_runner(), options, progress)
        finally:
            progress.finish()
            client.close()
    finally:
        image.close()
    out = asdict(result)
    out["client_profile"] = chosen.name
    out["http"] = sorted(client.http_versions)
    out["blobs"] = [
        {
            "digest": str(b.descriptor.digest),
            "size": b.descriptor.size,
            "mediaType": b.descriptor.media_type,
            "action": b.action,
            "sent": b.sent,
        }
        for b in result.blobs
    ]
    out["source"] = image.description or args.source
    if args.audit_file:
        audit = AuditLog(args.audit_file)
        try:
            audit.record(AuditEntry.pushed(ref, result.manifest_digest, result.media_type, result.manifest_size))
        finally:
            audit.close()
    return out


def cmd_tags(args: argparse.Namespace) -> dict[str, Any]:
    ref = _reference(args, args.repository, repository_only=True)
    client = connect(args, ref)
    try:
        client.ping()
        tags = list(endpoints.list_tags(client, ref, args.page_size))
    finally:
        client.close()
    return {"repository": f"{ref.registry.host}/{ref.repository}", "tags": tags}


def cmd_inspect(args: argparse.Namespace) -> dict[str, Any]:
    ref = _reference(args, args.reference)
    wanted = _platform(args.platform) if args.platform else None  # checked before any request
    client = connect(args, ref)
    try:
        client.ping()
        manifest = fetch_manifest(client, ref)
        out: dict[str, Any] = {
            "reference": str(ref),
            "digest": str(manifest.digest),
            "mediaType": manifest.media_type,
            "size": len(manifest.raw),
        }
        if isinstance(manifest, Index):
            out["manifests"] = [
                {
                    "digest": str(d.digest),
                    "mediaType": d.media_type,
                    "size": d.size,
                    "platform": str(d.platform) if d.platform else None,
                }
                for d in manifest.manifests
            ]
            if wanted:
                manifest, _ = platform_manifest(client, ref, manifest, wanted)
                out["platform"] = args.platform
                out["platformDigest"] = str(manifest.digest)
        if isinstance(manifest, ImageManifest):
            out["config"] = {
                "digest": str(manifest.config.digest),
                "size": manifest.config.size,
                "mediaType": manifest.config.media_type,
            }
        if not isinstance(manifest, Index):
            out["layers"] = [
                {"digest": str(d.digest), "size": d.size, "mediaType": d.media_type} for d in manifest.layers
            ]
            out["totalSize"] = sum(max(d.size, 0) for d in manifest.layers)
    finally:
        client.close()
    return out


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    _check_jobs(args.jobs)
    credentials_for = credentials_source(args)
    # A registry recorded with http:// was reached over plain HTTP by the push that wrote the
    # file, at the user's request: the same is asked here.
    return verify_command(args, lambda ref: connect(args, ref, credentials_for, recorded=True), gevent_runner())


def print_human(command: str, out: dict[str, Any]) -> None:
    if command == "verify":
        print_verify(out)
        return
    if command == "trace":
        print_trace(out)
        return
    if command == "compare":
        print_compare(out)
        return
    if command == "tags":
        for tag in out["tags"]:
            print(tag)
        return
    if command == "inspect":
        print(f"{out['reference']}\n  digest:     {out['digest']}\n  media type: {out['mediaType']}")
        for m in out.get("manifests", []):
            print(f"  platform {m['platform'] or '-':<16} {m['digest']}")
        if "platformDigest" in out:
            print(f"  {out['platform']}: {out['platformDigest']}")
        for layer in out.get("layers", []):
            size = human_bytes(layer["size"]) if layer["size"] >= 0 else "size unknown"
            print(f"  layer {layer['digest']}  {size}")
        if "totalSize" in out:
            print(f"  total {human_bytes(out['totalSize'])} in {len(out['layers'])} layers")
        return
    seconds = out["timings"].get("total", 0.0)
    rate = human_bytes(out["bytes"] / seconds) + "/s" if seconds > 0 else "-"
    verb = "Pulled" if command == "pull" else "Pushed"
    print(
        f"{verb} {out['reference']}\n  digest: {out['manifest_digest']}\n"
        f"  {human_bytes(out['bytes'])} in {seconds:.2f} s ({rate})"
    )
    if out.get("client_profile", REGLOAD.name) != REGLOAD.name:
        print(f"  as {PROFILES[out['client_profile']].client} (--client-profile {out['client_profile']})")
    if command == "pull" and out.get("output"):
        print(f"  written to {out['output']['path']} ({out['output']['format']})")
    if command == "push":
        actions: dict[str, int] = {}
        for b in out["blobs"]:
            actions[b["action"]] = actions.get(b["action"], 0) + 1
        print("  blobs: " + ", ".join(f"{n} {a}" for a, n in sorted(actions.items())))


#: What to add to an error message that an option mends (``errors.mended_by``).
CLI_HINTS = {
    "trust": " (trust the registry's CA with --registry-ca-cert FILE, or skip verification with --registry-insecure)",
    "plain-http": " (ask for plain HTTP with --plain-http, or give --registry http://HOST:PORT)",
    "credentials": " (give them with -u USER and --password-stdin, REGLOAD_USERNAME and REGLOAD_PASSWORD,"
    " or docker login's config.json)",
}


def hint(error: RegloadError) -> str:
    """What the user can do about ``error`` with this command's options, or nothing."""
    cause = getattr(error, "cause", None) or error  # verify's VerifyAborted carries what stopped it
    return CLI_HINTS.get(mended_by(cause) or "", "")


COMMANDS = {
    "pull": cmd_pull,
    "push": cmd_push,
    "tags": cmd_tags,
    "inspect": cmd_inspect,
    "verify": cmd_verify,
    "trace": cmd_trace,
    "compare": cmd_compare,
}


def main(argv: Sequence[str] | None = None, *, before_run: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Run one command. ``before_run`` is called with the parsed arguments, before anything is
    sent (the console script patches the standard library for gevent there when ``--http2``
    asks for it: ``--version``, ``--help`` and usage errors exit before, without loading a
    network stack)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if before_run is not None:
        before_run(args)
    try:
        out = COMMANDS[args.command](args)
    except RegloadError as e:
        # Name the image an operation failed on; usage errors already name what was wrong.
        subject = getattr(args, "reference", None) or getattr(args, "repository", None)
        prefix = f"{subject}: " if subject and not isinstance(e, UsageError) else ""
        print(f"regload: error: {prefix}{e}{hint(e)}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # Local files: an unreadable source, a full disk, a permission denied on the output.
        where = f" ({e.filename})" if e.filename else ""
        print(f"regload: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("regload: interrupted", file=sys.stderr)
        return 130
    if args.json and args.command == "compare":
        print(json_document(out))
    elif args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_human(args.command, out)
    # verify: 1 when an image is not intact; compare: 1 when a --max-regression limit broke
    return 1 if args.command in ("verify", "compare") and not out["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
