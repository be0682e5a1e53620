"""One exception tree for everything regload reports to a user.

Every error carries a one-line message fit for a terminal and an exit code: 1 when an operation
failed, 2 when the user's input or usage was wrong. Messages never contain credentials or tokens.

    RegloadError                     exit 1
    |-- UsageError                   exit 2: the user's input
    |   |-- InvalidReference
    |   |-- SourceError
    |   |-- OutputError
    |   `-- AuditFileError           (audit.py)
    |-- PlainHTTPRefused             the user's settings forbid sending credentials in clear
    |-- TransportError               the network
    |   |-- TLSError
    |   |   |-- CertificateError
    |   |   `-- PlainHTTPAnswer      an https:// URL whose server speaks plain HTTP
    |   |-- RequestTimeout
    |   `-- StaleConnection          a reused connection found closed before any answer
    |-- ProtocolError                what the registry (or a blob it served) says
    |   |-- ManifestError
    |   |   `-- InvalidDigest
    |   |-- DigestMismatch
    |   |-- UnsafeLayer
    |   `-- RegistryError            an error status, with its spec code
    |       `-- AuthError
    |-- VerifyAborted                (verify.py)
    |-- RegistryBinaryNotFound       (local_registry/process.py)
    `-- RegistryStartError           (local_registry/process.py)
"""

from __future__ import annotations


class RegloadError(Exception):
    """Base of every error regload raises on purpose."""

    exit_code = 1


class UsageError(RegloadError):
    """Bad command-line usage or a bad option value."""

    exit_code = 2


class InvalidReference(UsageError):
    """An image reference that does not follow the docker reference grammar."""


class SourceError(UsageError):
    """A push source (docker-save tarball, OCI layout, synthetic spec) is missing or malformed."""


class OutputError(UsageError):
    """The pull output cannot be written where the user asked (exists, not a directory, …)."""


class PlainHTTPRefused(RegloadError):
    """Credentials would cross the network in clear (plain HTTP to a host that is not loopback)
    while the user did not ask for plain HTTP: refused before anything is sent. ``endpoint`` is
    the request's template name."""

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(f"{endpoint}: {detail}")
        self.endpoint = endpoint
        self.detail = detail


class TransportError(RegloadError):
    """The network failed: connection refused or reset, timeout, TLS failure."""


class TLSError(TransportError):
    """TLS handshake or certificate verification failed."""


class CertificateError(TLSError):
    """The registry's certificate could not be verified: self-signed, an unknown CA, another
    host name. Front ends add how to trust it (their CA-file and skip-verification options)."""


class PlainHTTPAnswer(TLSError):
    """The TLS handshake was answered in plain HTTP: the registry serves plain HTTP on that port.
    Front ends add how to ask for plain HTTP (their URL scheme or plain-HTTP option)."""


class RequestTimeout(TransportError):
    """A connect or read timed out."""


class StaleConnection(TransportError):
    """A kept-alive connection taken from the pool turned out closed by the server (or a proxy)
    before any byte of the answer to a request sent whole: the keep-alive race of RFC 9112
    §9.3.1, where the server closes an idle connection just as the client sends on it. The
    request was most likely never processed; the client may send an idempotent one again on a
    new connection. (A reset is not this: it may end a request the server read.)"""


class ProtocolError(RegloadError):
    """The registry answered something the Distribution spec does not allow here."""


class ManifestError(ProtocolError):
    """A manifest or index that cannot be parsed or is not of a known media type."""


class InvalidDigest(ManifestError):
    """Text that is not a digest (``algorithm:encoded``) of a supported algorithm. A
    ``ManifestError``: digests mostly come from manifests; where one comes from the user or a
    source, the caller turns this into that kind of error."""


class DigestMismatch(ProtocolError):
    """Content whose digest or size differs from what was asked for."""


class UnsafeLayer(ProtocolError):
    """A layer entry that would escape the extraction directory (traversal, link escape)."""


class RegistryError(ProtocolError):
    """The registry answered with an error status, usually with a spec error code.

    ``code`` is the first error code of the body (``MANIFEST_UNKNOWN``, ``DENIED`` …) when the
    registry sent one, ``status`` the HTTP status, ``endpoint`` the request's template name.
    """

    def __init__(self, endpoint: str, status: int, code: str | None = None, detail: str = "") -> None:
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after: float | None = None  # seconds, from a Retry-After header (429, 503)
        what = f"HTTP {status}" + (f" {code}" if code else "")
        super().__init__(f"{endpoint}: {what}" + (f": {detail}" if detail else ""))


class AuthError(RegistryError):
    """Authentication failed: 401/403, or the token server refused or answered nonsense.

    ``reason``: a short, fixed, secret-free phrase for a load test's failure table (``credentials
    refused``, ``authentication refused by https://auth.example/token``); ``credentials_missing``:
    the registry wants credentials and none were given (front ends name their options for them).
    """

    def __init__(
        self,
        endpoint: str,
        status: int,
        code: str | None = None,
        detail: str = "",
        *,
        reason: str = "",
        credentials_missing: bool = False,
    ) -> None:
        super().__init__(endpoint, status, code, detail)
        self.reason = reason
        self.credentials_missing = credentials_missing

    @property
    def refused(self) -> bool:
        """The registry or its token server said no (401, 403): the same request with the same
        credentials cannot succeed, and sending it again at once only loads the token service."""
        return self.status in (401, 403)


def mended_by(error: BaseException) -> str | None:
    """Which of the user's settings mends ``error``, when one does: ``trust`` (a certificate that
    does not verify), ``plain-http`` (an https:// URL on a plain-HTTP registry), ``credentials``
    (asked for, none given) or ``refused`` (credentials refused). Front ends name their options."""
    if isinstance(error, CertificateError):
        return "trust"
    if isinstance(error, PlainHTTPAnswer):
        return "plain-http"
    if isinstance(error, AuthError) and error.credentials_missing:
        return "credentials"
    if isinstance(error, AuthError) and error.refused:
        return "refused"
    return None
