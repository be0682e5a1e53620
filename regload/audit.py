"""The audit log of a push run: one JSON line per image reported as pushed, and its reader.

    {"reference": "127.0.0.1:5000/repo:tag", "digest": "sha256:…", "mediaType": "…", "size": 529,
     "time": 1718000000.123, "registry": "http://127.0.0.1:5000", "repository": "repo", "tag": "tag"}

``size`` and ``mediaType`` describe the manifest (as an OCI descriptor does). ``registry`` is the
base URL, path prefix included, so that ``regload verify`` can reach a registry that ``reference``
(docker syntax, no prefix) cannot name. Several processes may append to one file: each line is
one ``write`` on an ``O_APPEND`` descriptor, which Linux applies whole at the end of a local file.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fds
from .digest import Digest
from .errors import InvalidDigest, UsageError
from .reference import Reference, Registry, parse_reference


class AuditFileError(UsageError):
    """An audit file that cannot be read, or a line of it that is not an audit entry."""


@dataclass(frozen=True)
class AuditEntry:
    reference: str  # host/repo:tag (or host/repo@digest), docker syntax, no credentials
    digest: str  # the manifest's digest
    media_type: str
    size: int  # the manifest's size in bytes
    time: float  # unix time of the successful manifest PUT
    registry: str | None  # base URL with its path prefix; None: derive it from ``reference``
    repository: str | None
    tag: str | None  # None: pushed by digest

    @classmethod
    def pushed(cls, ref: Reference, digest: str, media_type: str, size: int) -> AuditEntry:
        """The entry of an image just pushed to ``ref``."""
        return cls(
            reference=str(ref),
            digest=digest,
            media_type=media_type,
            size=size,
            time=round(time.time(), 3),
            registry=ref.registry.base_url,
            repository=ref.repository,
            tag=ref.tag,
        )

    def to_line(self) -> bytes:
        doc = {
            "reference": self.reference,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
            "time": self.time,
            "registry": self.registry,
            "repository": self.repository,
            "tag": self.tag,
        }
        return (json.dumps(doc, separators=(",", ":")) + "\n").encode()

    def target(self, registry: Registry | None = None, plain_http: bool = False) -> Reference:
        """Where the image is: the recorded registry (or ``registry`` instead), by tag when it
        has one, else by digest. Raises ``UsageError`` on a malformed reference."""
        if self.registry is None or self.repository is None:
            ref = parse_reference(self.reference, plain_http=plain_http)
            base = registry or ref.registry
            return Reference(base, ref.repository, ref.tag, None if ref.tag else Digest.parse(self.digest))
        base = registry or Registry.from_url(self.registry)
        name = f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"
        return parse_reference(name, registry=base)


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early, with a ``UsageError``, when ``path`` cannot be appended to (without creating it)."""
    p = Path(path)
    if p.exists():
        if not p.is_file() or not os.access(p, os.W_OK):
            raise UsageError(f"cannot write the audit file {p}: not a writable file")
    elif not p.parent.is_dir() or not os.access(p.parent, os.W_OK):
        raise UsageError(f"cannot create the audit file {p}: {p.parent} is not a writable directory")


class AuditLog:
    """Appends entries to a file, opened at the first entry and shared by every caller of a
    process. Safe across processes appending to the same file (see the module's notes)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    def record(self, entry: AuditEntry) -> None:
        line = entry.to_line()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        # One write per line: two writes could let another process's line in between.
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(errno.EIO, f"short write ({written} of {len(line)} bytes)", self.path)

    def close(self) -> None:
        if self._fd is not None:
            fds.close(self._fd)
            self._fd = None


def read_audit_file(path: str | os.PathLike[str]) -> list[AuditEntry]:
    """Every entry of an audit file, in order; blank lines are skipped. A bad line raises
    ``AuditFileError`` naming ``file:line`` and what is wrong with it."""
    entries = []
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    entries.append(_entry(raw))
                except (ValueError, OverflowError, UsageError, InvalidDigest) as e:
                    raise AuditFileError(f"{os.fspath(path)}:{number}: not an audit entry: {e}") from None
    except OSError as e:
        raise AuditFileError(f"cannot read the audit file {os.fspath(path)}: {e.strerror or e}") from None
    return entries


def _entry(raw: bytes) -> AuditEntry:
    try:
        doc = json.loads(raw.decode())
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError("a JSON object is expected")
    entry = AuditEntry(
        reference=_field(doc, "reference", str),
        digest=str(Digest.parse(_field(doc, "digest", str))),
        media_type=_field(doc, "mediaType", str, ""),
        size=_field(doc, "size", int, -1),
        time=float(_field(doc, "time", (int, float), 0.0)),
        registry=_field(doc, "registry", str, None),
        repository=_field(doc, "repository", str, None),
        tag=_field(doc, "tag", str, None),
    )
    if entry.registry is not None and entry.repository is None:
        raise ValueError("'registry' is given without 'repository'")
    entry.target()  # the reference must resolve
    return entry


_REQUIRED = object()


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    value = doc.get(name)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(f"no {name!r}")
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name!r} has the wrong type")
    return value
