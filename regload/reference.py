"""Image references in docker syntax, and the registry base URL they resolve to.

``host[:port]/repo[:tag][@digest]`` with Docker Hub defaults (``busybox`` is
``docker.io/library/busybox:latest``), or, with an explicit base URL that may carry a path prefix
(Nexus, Artifactory: ``http://host:8081/repository/docker``), just ``repo[:tag][@digest]``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .digest import Digest
from .errors import InvalidDigest, InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

# distribution/reference grammar (reference/regexp.go): lower-case path components joined by
# '/', each made of alphanumerics with '.', '_', '__' or runs of '-' between them.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# ``\Z``, not ``$`` (which also matches before a final newline: ``a\n:tag`` would parse), and
# ASCII ``\w`` as in Go's RE2 (``app:tagé`` is no docker tag).
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_MAX_TAG_LENGTH = 128
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}\Z", re.ASCII)
_DOMAIN_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?\Z"
)
MAX_NAME_LENGTH = 255
_URL_SAFE = re.compile(r"[A-Za-z0-9_.:-]+")  # what ``quote(text, safe=":")`` leaves as it is


@dataclass(frozen=True, slots=True)
class Registry:
    """Where the API lives: ``base_url`` has no trailing slash and no ``/v2``."""

    base_url: str

    @classmethod
    def for_host(cls, host: str, *, plain_http: bool = False) -> Registry:
        """Registry for a reference's domain: loopback hosts use HTTP, others HTTPS."""
        if host == DOCKER_HUB:
            host = DOCKER_HUB_API
        scheme = "http" if plain_http or is_loopback(host) else "https"
        return cls(f"{scheme}://{host}")

    @classmethod
    def from_url(cls, url: str) -> Registry:
        try:
            parts = urlsplit(url)
        except ValueError as e:  # an unbalanced '[' of an IPv6 literal
            raise InvalidReference(f"invalid registry URL {_shown(url)}: {e}") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidReference(f"invalid registry URL {_shown(url)}: expected http(s)://host[:port][/prefix]")
        if "@" in parts.netloc:
            raise InvalidReference("the registry URL must not contain credentials: use --username/--password")
        if parts.query or parts.fragment:
            raise InvalidReference(f"invalid registry URL {_shown(url)}: no query or fragment allowed")
        if not _valid_port(parts.netloc):
            raise InvalidReference(f"invalid registry URL {_shown(url)}: the port must be a number from 1 to 65535")
        if not _DOMAIN_RE.match(parts.netloc) or not _valid_ip_literal(parts.netloc):
            raise InvalidReference(f"invalid registry URL {_shown(url)}: bad host {_shown(parts.netloc)}")
        if not parts.path.isascii() or not parts.path.isprintable() or " " in parts.path:
            raise InvalidReference(f"invalid registry URL {_shown(url)}: the path must be printable ASCII")
        path = parts.path.rstrip("/")
        if path.endswith("/v2"):
            path = path[: -len("/v2")]
        return cls(f"{parts.scheme}://{parts.netloc}{path}")

    @property
    def host(self) -> str:
        """``host[:port]`` as docker's config.json keys it."""
        return urlsplit(self.base_url).netloc

    @property
    def scheme(self) -> str:
        return urlsplit(self.base_url).scheme

    def url(self, path: str = "") -> str:
        """Absolute URL of an API path: ``url("library/busybox/tags/list")``."""
        return f"{self.base_url}/v2/{path}"


@dataclass(frozen=True, slots=True)
class Reference:
    registry: Registry
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def reference(self) -> str:
        """What goes in ``/manifests/<reference>``: the digest if given, else the tag."""
        if self.digest:
            return str(self.digest)
        return self.tag or "latest"

    @property
    def familiar_name(self) -> str:
        """The repository as docker names it in ``docker images``: ``busybox``, ``user/app``,
        ``host:5000/team/app``."""
        if self.registry.host == DOCKER_HUB_API:
            return self.repository.removeprefix("library/")
        return f"{self.registry.host}/{self.repository}"

    def with_reference(self, reference: str) -> Reference:
        """The same repository at another tag or digest."""
        if ":" in reference and not _TAG_RE.match(reference):
            return Reference(self.registry, self.repository, None, _parse_digest(reference))
        return Reference(self.registry, self.repository, reference, None)

    def manifest_url(self, reference: str | None = None) -> str:
        reference = reference or self.reference
        if not _URL_SAFE.fullmatch(reference):  # a valid tag or digest never needs quoting
            reference = quote(reference, safe=":")
        return self.registry.url(f"{self.repository}/manifests/{reference}")

    def blob_url(self, digest: Digest) -> str:
        return self.registry.url(f"{self.repository}/blobs/{digest}")

    def uploads_url(self) -> str:
        return self.registry.url(f"{self.repository}/blobs/uploads/")

    def tags_url(self) -> str:
        return self.registry.url(f"{self.repository}/tags/list")

    def __str__(self) -> str:
        out = f"{self.registry.host}/{self.repository}"
        if self.registry.host == DOCKER_HUB_API:
            out = f"{DOCKER_HUB}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_reference(text: str, *, registry: Registry | None = None, plain_http: bool = False) -> Reference:
    """Parse a docker reference. With ``registry`` given, ``text`` is ``repo[:tag][@digest]``."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise InvalidReference(f"invalid reference {_shown(text)}: empty or surrounded by spaces")
    if "://" in text:
        raise InvalidReference(
            f"invalid reference {_shown(text)}: a reference is host/repo[:tag], not a URL"
            " (use --registry URL for a base URL)"
        )
    rest, digest = text, None
    if "@" in rest:
        rest, digest_text = rest.split("@", 1)
        digest = _parse_digest(digest_text, text)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            why = f"tag longer than {_MAX_TAG_LENGTH}" if len(tag) > _MAX_TAG_LENGTH else f"bad tag {_shown(tag)}"
            raise InvalidReference(f"invalid reference {_shown(text)}: {why}")
    if registry is None:
        domain, path = _split_domain(rest)
        if domain is not None and (not _DOMAIN_RE.match(domain) or not _valid_ip_literal(domain)):
            raise InvalidReference(f"invalid reference {_shown(text)}: bad registry host {_shown(domain)}")
        if domain is not None and not _valid_port(domain):
            raise InvalidReference(f"invalid reference {_shown(text)}: the port of {_shown(domain)} is not 1 to 65535")
        domain = domain or DOCKER_HUB
        if domain == DOCKER_HUB and path and "/" not in path:
            path = f"library/{path}"
        registry = Registry.for_host(domain, plain_http=plain_http)
    else:
        path = rest
    if not path:
        raise InvalidReference(f"invalid reference {_shown(text)}: no repository name")
    if len(path) > MAX_NAME_LENGTH:
        raise InvalidReference(f"invalid reference {_shown(text)}: repository name longer than {MAX_NAME_LENGTH}")
    if not _PATH_RE.match(path):
        # Say "lower case" only when lower-casing would make the name valid.
        why = "repository names must be lower case" if _PATH_RE.match(path.lower()) else "bad repository name"
        raise InvalidReference(f"invalid reference {_shown(text)}: {why} {_shown(path)}")
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, path, tag, digest)


def parse_repository(text: str, *, registry: Registry | None = None, plain_http: bool = False) -> Reference:
    """Parse ``[host/]repo`` (no tag or digest) for ``tags`` and ``--mount-from``."""
    ref = parse_reference(text, registry=registry, plain_http=plain_http)
    if ref.digest or (ref.tag != "latest" or text.endswith(":latest")):
        raise InvalidReference(f"invalid repository {text!r}: no tag or digest expected")
    return Reference(ref.registry, ref.repository)


def _valid_port(host: str) -> bool:
    """A ``:port`` suffix, when present, must be 1 to 65535: the grammar allows any digits, but
    no URL can carry a larger one, and port 0 would silently become the scheme's default."""
    head, sep, port = host.rpartition(":")
    if not sep or head.endswith(":") or (head.startswith("[") and not head.endswith("]")):
        return True  # no port (an IPv6 literal's own colons are not one)
    return port.isascii() and port.isdigit() and 1 <= int(port) <= 65535


def _shown(text: object, limit: int = 80) -> str:
    """``repr`` of user text for a message, cut to ``limit`` characters so one line stays readable."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _valid_ip_literal(domain: str) -> bool:
    """A ``[…]`` host must be a real IPv6 address: ``[:]`` passes the grammar, but urllib (and so
    every URL built from it) raises ValueError on it."""
    if not domain.startswith("["):
        return True
    try:
        ipaddress.IPv6Address(domain[1:].split("]", 1)[0])
    except ValueError:
        return False
    return True


def _split_domain(name: str) -> tuple[str | None, str]:
    """Docker's rule: the first component is a registry host if it has a '.' or ':' or is
    'localhost' or upper-case letters (distribution/reference normalize.go splitDockerDomain)."""
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, remainder
    return None, name


def _parse_digest(digest_text: str, whole: str | None = None) -> Digest:
    try:
        return Digest.parse(digest_text)
    except InvalidDigest as e:
        raise InvalidReference(f"invalid reference {_shown(whole or digest_text)}: {e}") from None
