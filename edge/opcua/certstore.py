"""Certificates on disk for the operator: describe, find by thumbprint, trust, remove (``edgetwin certs``).

Works on the folders of a PKI (``TrustFolders``): the server's (``pki/``: clients that may
connect) or the gateway's client PKI (``pki/client/``: upstream servers it accepts). Thumbprints
are SHA-1 over the DER certificate, lower-case hex, as OPC UA uses them (``drivers.opcua_client.pki.thumbprint``);
the operator may type them with colons or spaces, in either case, or as a unique prefix of at
least 8 digits.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from drivers.opcua_client.pki import CERT_SUFFIXES, ClientPki, der, file_name, load_certificate, thumbprint
from edge.opcua.security import Pki

MIN_PREFIX = 8


class CertStoreError(Exception):
    """An operator request that cannot be done (unknown or ambiguous thumbprint, unreadable file)."""


@dataclass(frozen=True, slots=True)
class TrustFolders:
    """The folders of one PKI: its own certificate, the trusted and the rejected certificates."""

    own: Path
    trusted: Path
    rejected: Path

    @classmethod
    def server(cls, pki: Pki) -> TrustFolders:
        return cls(pki.cert, pki.trusted, pki.rejected)

    @classmethod
    def client(cls, pki: ClientPki) -> TrustFolders:
        return cls(pki.cert, pki.trusted, pki.rejected)


@dataclass(frozen=True, slots=True)
class CertInfo:
    path: Path
    subject: str
    application_uri: str | None  # the first URI of the subjectAltName
    uris: tuple[str, ...]
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    thumbprint: str

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) > self.not_after

    def days_left(self, now: datetime | None = None) -> int:
        return (self.not_after - (now or datetime.now(UTC))).days


def describe(cert: x509.Certificate, path: Path) -> CertInfo:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        uris, dns, ips = (), (), ()
    return CertInfo(
        path=path,
        subject=cert.subject.rfc4514_string(),
        application_uri=uris[0] if uris else None,
        uris=uris,
        dns=dns,
        ips=ips,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        thumbprint=thumbprint(cert),
    )


def read_folder(folder: Path) -> tuple[list[CertInfo], list[str]]:
    """The certificates in *folder* (sorted by file name), and a line per file that does not read as one."""
    infos: list[CertInfo] = []
    problems: list[str] = []
    if not folder.is_dir():
        return infos, problems
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in CERT_SUFFIXES:
            continue
        try:
            infos.append(describe(load_certificate(path), path))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: not a certificate ({exc})")
    return infos, problems


def read_own(path: Path) -> CertInfo | None:
    return describe(load_certificate(path), path) if path.is_file() else None


def normalize_thumbprint(text: str) -> str:
    """``AB:CD ef..`` -> ``abcdef..``; a CertStoreError unless it is hex of MIN_PREFIX..40 digits."""
    digits = re.sub(r"[\s:]", "", text).lower()
    if not re.fullmatch(r"[0-9a-f]+", digits) or not MIN_PREFIX <= len(digits) <= 40:
        raise CertStoreError(f"{text!r} is not a SHA-1 thumbprint (40 hex digits, or a unique prefix of at least {MIN_PREFIX})")
    return digits


def find(folder: Path, text: str, *, what: str) -> CertInfo:
    """The one certificate in *folder* whose thumbprint starts with *text*."""
    return match(read_folder(folder)[0], normalize_thumbprint(text), what=what, folder=folder)


def match(infos: list[CertInfo], prefix: str, *, what: str, folder: Path) -> CertInfo:
    """The one certificate of *infos* whose thumbprint starts with *prefix* (normalized)."""
    hits = [i for i in infos if i.thumbprint.startswith(prefix)]
    if not hits:
        raise CertStoreError(f"no {what} certificate has thumbprint {prefix} (in {folder}; `edgetwin certs list` shows them)")
    if len({i.thumbprint for i in hits}) > 1:
        listed = ", ".join(f"{i.thumbprint} ({i.subject})" for i in hits)
        raise CertStoreError(f"thumbprint {prefix} matches several {what} certificates: {listed}; give more digits")
    return hits[0]


def trust(folders: TrustFolders, thumbprint_or_file: str) -> tuple[CertInfo, str]:
    """Trust a rejected certificate (moved from rejected/ to trusted/) or a certificate file (copied
    into trusted/ as DER); (the trusted certificate, what was done)."""
    source = Path(thumbprint_or_file)
    if source.is_file():
        try:
            cert = load_certificate(source)
        except ValueError as exc:
            raise CertStoreError(f"{source}: not a certificate ({exc})") from None
        already = [i for i in read_folder(folders.trusted)[0] if i.thumbprint == thumbprint(cert)]
        if already:
            return already[0], "already trusted"
        folders.trusted.mkdir(parents=True, exist_ok=True)
        target = folders.trusted / file_name(cert)
        _write_new(target, der(cert))
        return describe(cert, target), f"copied from {source}"
    if "/" in thumbprint_or_file or source.suffix.lower() in CERT_SUFFIXES:
        raise CertStoreError(f"{thumbprint_or_file}: no such certificate file")
    rejected = find(folders.rejected, thumbprint_or_file, what="rejected")
    already = [i for i in read_folder(folders.trusted)[0] if i.thumbprint == rejected.thumbprint]
    if already:
        rejected.path.unlink()
        return already[0], f"already trusted; removed {rejected.path.name} from rejected"
    folders.trusted.mkdir(parents=True, exist_ok=True)
    target = folders.trusted / rejected.path.name
    os.replace(rejected.path, target)
    return describe(load_certificate(target), target), f"moved from {rejected.path.parent}"


def remove(folders: TrustFolders, text: str) -> CertInfo:
    """Delete a trusted certificate; a client presenting it is refused from its next connection."""
    info = find(folders.trusted, text, what="trusted")
    info.path.unlink()
    return info


def _write_new(path: Path, data: bytes) -> None:
    """Write beside the folder, then rename into it: a running server never reads half a file
    (asyncua loads every name in trusted/ that contains "der" or "pem")."""
    tmp = path.parent.parent / f".incoming-{os.getpid()}"
    tmp.write_bytes(data)
    os.replace(tmp, path)
