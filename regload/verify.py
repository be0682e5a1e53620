"""Check that images recorded in an audit log are still whole in their registry.

Per image: the tag must still point to the recorded manifest digest (GET by tag), then the image
is pulled by digest with every blob verified against its digest and size, and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import endpoints
from .audit import AuditEntry
from .client import RegistryClient
from .concurrency import Runner
from .digest import Digest
from .errors import AuthError, DigestMismatch, PlainHTTPRefused, RegistryError, RegloadError, TransportError
from .flows.pull import PullOptions, pull
from .reference import Reference, Registry
from .sinks.discard import DiscardSink

INTACT = "intact"
MISSING = "missing"  # the manifest or a blob answers 404
DIFFERENT = "different"  # the tag now names another manifest
CORRUPT = "corrupt"  # content that does not match its digest or size
ERROR = "error"  # the registry failed otherwise (a 5xx, a protocol violation): not decided
STATUSES = (INTACT, MISSING, DIFFERENT, CORRUPT, ERROR)


class VerifyAborted(RegloadError):
    """The registry cannot be reached, refuses the credentials, or would get them in clear: nothing
    more can be checked. ``cause`` is the error that stopped it (a ``CertificateError`` gets the CLI's TLS hint)."""

    def __init__(self, message: str, cause: RegloadError) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Verdict:
    entry: AuditEntry
    ref: Reference  # where it was checked
    status: str
    cause: str = ""
    current_digest: str | None = None  # what the tag points to now, when it was read


def verify_image(
    client: RegistryClient, entry: AuditEntry, ref: Reference, runner: Runner, pull_jobs: int = 3
) -> Verdict:
    """The verdict on one recorded image at ``ref`` (its tag, or its digest)."""
    recorded = Digest.parse(entry.digest)
    current = None
    try:
        if ref.tag is not None:
            current = endpoints.get_manifest(client, ref).digest
            if current != recorded:
                return Verdict(entry, ref, DIFFERENT, f"the tag now points to {current}", str(current))
        by_digest = Reference(ref.registry, ref.repository, None, recorded)
        pull(client, by_digest, DiscardSink(), runner, PullOptions(jobs=pull_jobs))
    except (TransportError, AuthError, PlainHTTPRefused) as e:
        raise VerifyAborted(f"{entry.reference}: {e}", e) from None
    except DigestMismatch as e:
        return Verdict(entry, ref, CORRUPT, str(e), _text(current))
    except RegistryError as e:
        return Verdict(entry, ref, MISSING if e.status == 404 else ERROR, str(e), _text(current))
    except RegloadError as e:
        return Verdict(entry, ref, ERROR, str(e), _text(current))
    return Verdict(entry, ref, INTACT, "", str(recorded))


def _text(digest: Digest | None) -> str | None:
    return str(digest) if digest else None


def verify_all(
    targets: Sequence[tuple[AuditEntry, Reference]],
    clients: Mapping[Registry, RegistryClient],
    runner: Runner,
    jobs: int,
) -> list[Verdict]:
    """Verdicts in the order of ``targets``, ``jobs`` images at a time, each checked with the
    client of its registry in ``clients`` (one per registry, shared by its images)."""
    for registry, client in clients.items():
        # Learn how the registry authenticates before images are checked side by side, as docker
        # pings first: concurrent first requests would each meet the 401 challenge at once.
        try:
            client.ping()
        except (TransportError, AuthError, PlainHTTPRefused) as e:
            raise VerifyAborted(f"{registry.base_url}: {e}", e) from None
    return runner.map(lambda t: verify_image(clients[t[1].registry], t[0], t[1], runner), targets, jobs)
