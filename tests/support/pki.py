"""A throwaway public key infrastructure for TLS tests: a CA, a server certificate and
a client certificate (for mutual TLS)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class PKI:
    ca: bytes
    server_chain: bytes
    server_key: bytes
    client_chain: bytes
    client_key: bytes

    def write(self, directory: Path) -> dict[str, Path]:
        """The CA and the server's certificate and key as PEM files."""
        files = {"ca": self.ca, "cert": self.server_chain, "key": self.server_key}
        for name, pem in files.items():
            (directory / f"{name}.pem").write_bytes(pem)
        return {name: directory / f"{name}.pem" for name in files}

    def server_credentials(self, *, mutual: bool) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key, self.server_chain)],
            root_certificates=self.ca if mutual else None,
            require_client_auth=mutual,
        )


def _certificate(
    name: str, key: Any, issuer: x509.Name | None, issuer_key: Any, *, ca: bool
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.DNSName(name)])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(server_name: str) -> PKI:
    """A self-signed CA, a server certificate for ``server_name`` and a client certificate."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
    ca = _certificate("alora test CA", ca_key, None, ca_key, ca=True)
    server = _certificate(server_name, server_key, ca.subject, ca_key, ca=False)
    client = _certificate("alora test client", client_key, ca.subject, ca_key, ca=False)
    return PKI(_pem(ca), _pem(server), _key_pem(server_key), _pem(client), _key_pem(client_key))
