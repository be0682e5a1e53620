"""What a throwaway distribution registry is asked to be: auth, TLS, prefix and storage options,
rendered to distribution's ``config.yml`` (written by hand: no YAML library needed)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Htpasswd:
    """Basic auth against an htpasswd file (distribution accepts bcrypt entries only)."""

    path: str | os.PathLike[str]
    realm: str = "regload"


@dataclass(frozen=True)
class Token:
    """Bearer token auth: clients fetch a JWT from ``realm``; ``rootcertbundle`` signs it."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: str | os.PathLike[str]


@dataclass(frozen=True)
class RegistryConfig:
    """What the registry is asked to be; rendered to distribution's YAML by :meth:`to_yaml`."""

    auth: Htpasswd | Token | None = None
    #: ``(certificate_file, key_file)``, PEM. With TLS, Go also offers HTTP/2 through ALPN.
    tls: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None
    #: Serve the API under a path prefix, e.g. ``/some/path/`` (leading and trailing slash).
    prefix: str | None = None
    delete_enabled: bool = True
    #: One Combined-Log-Format line per request; off by default, load tests make huge logs.
    access_log: bool = False
    #: distribution's in-memory blob descriptor cache, as in its stock config.
    blob_descriptor_cache: bool = False
    #: Answer upload ``Location`` headers with relative URLs (``http.relativeurls``).
    relative_urls: bool = False
    #: The URL clients are told to use (``http.host``): absolute ``Location`` headers are built on
    #: it instead of on the request's ``Host``, e.g. another host name for the same registry.
    public_url: str | None = None
    #: Accept pushes of signed Docker schema 1 manifests (``compatibility.schema1.enabled``);
    #: distribution 2.8 refuses them otherwise. Served ones are re-signed with a key made at start.
    schema1: bool = False
    log_level: str = "info"
    #: Prometheus metrics on a second listener (``http.debug``), at ``LocalRegistry.metrics_url``.
    metrics: bool = False
    #: A pull-through cache of this registry (``proxy.remoteurl``): distribution fetches what it
    #: does not have from there, keeps it, and refuses pushes.
    proxy_remote_url: str | None = None

    def __post_init__(self) -> None:
        # distribution needs both slashes; without them routes silently miss (404 on /v2/).
        if self.prefix is not None and not (self.prefix.startswith("/") and self.prefix.endswith("/")):
            raise ValueError(f"prefix must start and end with '/': {self.prefix!r}")
        if self.log_level not in ("error", "warn", "info", "debug"):
            raise ValueError(f"unknown log level {self.log_level!r}")

    def to_yaml(self, *, addr: str, storage_dir: Path, secret: str, metrics_addr: str | None = None) -> str:
        """Render distribution's config file (written by hand: no YAML library needed)."""
        q = _yaml_str
        lines = [
            "version: 0.1",
            "log:",
            f"  level: {self.log_level}",
            "  formatter: text",
            "  accesslog:",
            f"    disabled: {_yaml_bool(not self.access_log)}",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {q(str(storage_dir))}",
            "  delete:",
            f"    enabled: {_yaml_bool(self.delete_enabled)}",
            # Only cloud drivers redirect blob GETs; say so explicitly anyway.
            "  redirect:",
            "    disable: true",
            # The purger would delete upload sessions older than a week, at a random time.
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
        ]
        if self.blob_descriptor_cache:
            lines += ["  cache:", "    blobdescriptor: inmemory"]
        lines += [
            "http:",
            f"  addr: {q(addr)}",
            # A fixed secret keeps upload `_state` tokens valid across restart(); without one the
            # registry makes a random secret per start and logs a warning about it.
            f"  secret: {q(secret)}",
            f"  relativeurls: {_yaml_bool(self.relative_urls)}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.public_url is not None:
            lines.append(f"  host: {q(self.public_url)}")
        if self.prefix is not None:
            lines.append(f"  prefix: {q(self.prefix)}")
        if self.tls is not None:
            cert, key = self.tls
            lines += [
                "  tls:",
                f"    certificate: {q(str(Path(cert).resolve()))}",
                f"    key: {q(str(Path(key).resolve()))}",
            ]
        # `http.debug` (a second listener) only for the metrics; no `health` section (periodic
        # storage checks that only add log lines).
        if metrics_addr is not None:
            lines += [
                "  debug:",
                f"    addr: {q(metrics_addr)}",
                "    prometheus:",
                "      enabled: true",
                '      path: "/metrics"',
            ]
        if isinstance(self.auth, Htpasswd):
            lines += [
                "auth:",
                "  htpasswd:",
                f"    realm: {q(self.auth.realm)}",
                f"    path: {q(str(Path(self.auth.path).resolve()))}",
            ]
        elif isinstance(self.auth, Token):
            lines += [
                "auth:",
                "  token:",
                f"    realm: {q(self.auth.realm)}",
                f"    service: {q(self.auth.service)}",
                f"    issuer: {q(self.auth.issuer)}",
                f"    rootcertbundle: {q(str(Path(self.auth.rootcertbundle).resolve()))}",
            ]
        if self.schema1:
            lines += ["compatibility:", "  schema1:", "    enabled: true"]
        if self.proxy_remote_url is not None:
            lines += ["proxy:", f"  remoteurl: {q(self.proxy_remote_url)}"]
        return "\n".join(lines) + "\n"


def _yaml_str(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: quotes, backslashes, colons and
    # non-ASCII all survive.
    return json.dumps(value)


def _yaml_bool(value: bool) -> str:
    return "true" if value else "false"
