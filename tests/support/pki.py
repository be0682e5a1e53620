"""Throwaway certificates for the test registries, made with ``cryptography``.

* a test CA and a server certificate for ``127.0.0.1`` / ``localhost`` signed by it (TLS mode);
* a self-signed RSA certificate whose key signs the token server's JWTs (token mode): the
  registry's ``rootcertbundle`` is that certificate, and each token's ``x5c`` header carries it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ServerPKI:
    """PEM files for a TLS registry. ``ca_dir`` holds only ``ca.crt`` (skopeo's cert-dir form)."""

    ca_cert: Path
    ca_dir: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class TokenSigner:
    """The token server's signing key and its self-signed certificate."""

    cert: Path
    key: Path
    cert_der: bytes
    private_key: rsa.RSAPrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "regload tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        # Back-dated a little: a clock a few seconds behind must not see "not yet valid".
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )


def _write_key(path: Path, key: PrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_server_pki(directory: Path) -> ServerPKI:
    """Write ``ca.crt``, ``server.crt`` and ``server.key`` (P-256 keys) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("regload test CA")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _builder(_name("localhost"), ca_name, server_key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # Modern verifiers (Go, OpenSSL) ignore the CN: the SAN is what gets matched.
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = ServerPKI(
        ca_cert=directory / "ca.crt",
        # skopeo/containers-image read every *.crt of a cert dir as a CA and want a matching
        # *.cert for every *.key: a separate directory with ca.crt alone keeps it simple.
        ca_dir=directory / "ca",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
    )
    _write_cert(paths.ca_cert, ca_cert)
    paths.ca_dir.mkdir(exist_ok=True)
    _write_cert(paths.ca_dir / "ca.crt", ca_cert)
    _write_cert(paths.server_cert, server_cert)
    _write_key(paths.server_key, server_key)
    return paths


def make_token_signer(directory: Path) -> TokenSigner:
    """Write ``token.crt`` / ``token.key``: a self-signed RSA-2048 pair for RS256 tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name("regload test token signer")
    # distribution verifies the x5c chain with ExtKeyUsageAny, so no key usage is needed.
    cert = _builder(name, name, key.public_key()).sign(key, hashes.SHA256())
    signer = TokenSigner(
        cert=directory / "token.crt",
        key=directory / "token.key",
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        private_key=key,
    )
    _write_cert(signer.cert, cert)
    _write_key(signer.key, key)
    return signer
