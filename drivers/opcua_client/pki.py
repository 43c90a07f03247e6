"""The gateway's OPC UA client certificate and its trust list for upstream servers (no asyncua session).

Layout under the client PKI folder (``<state_dir>/pki/client`` in the gateway)::

    own/cert.der            the gateway's client certificate (self-signed, 2048-bit RSA,
                            application URI and host name in the subjectAltName)
    own/private/key.pem     its private key (mode 0600, folder 0700)
    trusted/                server certificates (.der, .pem, .crt) the gateway accepts
    rejected/               server certificates it refused: move one to trusted/ to accept it
    tofu/                   with trust_on_first_use: the certificate first seen per endpoint

The certificate is generated on first use and kept afterwards (its application URI is read back
from it, so a renamed host does not change the identity a server has already trusted).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_SUFFIXES = (".der", ".pem", ".crt", ".cer")


@dataclass(frozen=True, slots=True)
class ClientPki:
    """Paths of the client PKI folder (see the module docstring)."""

    root: Path

    @classmethod
    def under(cls, state_dir: Path) -> ClientPki:
        return cls(Path(state_dir) / "pki" / "client")

    @property
    def cert(self) -> Path:
        return self.root / "own" / "cert.der"

    @property
    def key(self) -> Path:
        return self.root / "own" / "private" / "key.pem"

    @property
    def trusted(self) -> Path:
        return self.root / "trusted"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def tofu(self) -> Path:
        return self.root / "tofu"

    def create_dirs(self) -> None:
        for d in (self.cert.parent, self.trusted, self.rejected):
            d.mkdir(parents=True, exist_ok=True)
        self.key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.key.parent, 0o700)


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    cert: x509.Certificate
    key: RSAPrivateKey
    application_uri: str


def default_application_uri() -> str:
    return f"urn:{socket.gethostname()}:edgetwin:gateway-client"


def load_certificate(path: Path) -> x509.Certificate:
    """A DER or PEM certificate file."""
    data = Path(path).read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def thumbprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA1()).hex()


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def file_name(cert: x509.Certificate) -> str:
    """``<CN> [<sha1>].der``: the name a refused certificate is saved under."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = re.sub(r"[^A-Za-z0-9_.@ -]", "_", str(cns[0].value)) if cns else "certificate"
    return f"{cn} [{thumbprint(cert)}].der"


def subject_alt_names(application_uri: str, hostnames: Iterable[str]) -> list[x509.GeneralName]:
    """The SubjectAltName of an application certificate: its URI, then each host as an IP address or DNS name."""
    out: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
    for name in hostnames:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _write_key(path: Path, key: RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(tmp, 0o600)  # also when the umask or an existing file had other bits
    os.replace(tmp, path)


def ensure_client_identity(pki: ClientPki, *, application_uri: str | None = None, days: int = 3650) -> tuple[ClientIdentity, bool]:
    """Load the client certificate and key, generating both on first use; (identity, created)."""
    pki.create_dirs()
    if pki.cert.exists() and pki.key.exists():
        cert = load_certificate(pki.cert)
        key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
        if not isinstance(key, RSAPrivateKey):
            raise ValueError(f"{pki.key}: not an RSA private key")
        uris = _uris(cert)
        return ClientIdentity(cert, key, uris[0] if uris else (application_uri or default_application_uri())), False
    uri = application_uri or default_application_uri()
    hostnames = list(dict.fromkeys(n for n in (socket.gethostname(), socket.getfqdn(), "localhost") if n))
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "edgetwin gateway client", {"organizationName": "edgetwin"}, subject_alt_names(uri, hostnames), [ExtendedKeyUsageOID.CLIENT_AUTH], days=days
    )
    _write_key(pki.key, key)
    pki.cert.write_bytes(der(cert))
    return ClientIdentity(cert, key, uri), True


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def trusted_certificates(folder: Path) -> list[x509.Certificate]:
    """Every certificate file in *folder* (unreadable files are skipped)."""
    out: list[x509.Certificate] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in CERT_SUFFIXES and path.is_file():
            try:
                out.append(load_certificate(path))
            except (OSError, ValueError):
                continue
    return out


def is_in(cert: x509.Certificate, certs: list[x509.Certificate]) -> bool:
    blob = der(cert)
    return any(der(c) == blob for c in certs)


def time_valid(cert: x509.Certificate, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def save_rejected(pki: ClientPki, cert: x509.Certificate) -> Path:
    path = pki.rejected / file_name(cert)
    if not path.exists():
        pki.rejected.mkdir(parents=True, exist_ok=True)
        path.write_bytes(der(cert))
    return path


def tofu_path(pki: ClientPki, endpoint: str) -> Path:
    return pki.tofu / (re.sub(r"[^A-Za-z0-9_.-]", "_", endpoint) + ".der")


def x509_from_der(data: bytes) -> x509.Certificate:
    """The first certificate of a DER blob that may hold a chain."""
    length = int.from_bytes(data[2:4], "big") + 4 if len(data) > 4 and data[1] == 0x82 else len(data)
    return x509.load_der_x509_certificate(data[:length])
