"""Transport security of the OPC UA server: endpoints, the server certificate, the client PKI.

PKI layout under the state directory (``edge.core.statedir.StateDir.pki_dir``; created on first
start; the private key is mode 0600)::

    <state_dir>/pki/own/certs/server_cert.der      server certificate (self-signed, 2048-bit RSA)
    <state_dir>/pki/own/private/server_key.pem     its private key
    <state_dir>/pki/trusted/certs/                 client (or CA) certificates that may connect
    <state_dir>/pki/trusted/crl/                   revocation lists
    <state_dir>/pki/issuers/certs/                 CA certificates kept for reference (not trusted by themselves)
    <state_dir>/pki/issuers/crl/                   revocation lists of those CAs (honoured)
    <state_dir>/pki/rejected/certs/                untrusted client certificates, kept for review

Every folder is created 0700 and every file 0600, whatever the umask (``edge.core.private_files``).

A client whose certificate is not trusted is refused at CreateSession with BadCertificateUntrusted
and its certificate is written to ``rejected/certs/`` (``<CN> [<sha1>].der``); an administrator
trusts it by moving the file to ``trusted/certs/`` (``edgetwin certs trust <thumbprint>``). ``rejected/certs/`` keeps at most
``max_rejected`` files, the oldest are deleted first. The trust list and the CRLs are reloaded
whenever ``trusted/`` changes (checked on every session request and every second by
``edge.opcua.revocation``), so trusting, removing a certificate or adding a CRL needs no restart.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua_client.pki import file_name as rejected_name
from drivers.opcua_client.pki import subject_alt_names, thumbprint
from edge.core.private_files import private_dir, write_private
from edge.core.ratelimit import BurstLimiter
from edge.core.statedir import StateDir
from edge.opcua import asyncua_patches

log = structlog.get_logger("edge.opcua.security")

POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
MODES = ("Sign", "SignAndEncrypt")

POLICY_TYPES: dict[tuple[str, str], ua.SecurityPolicyType] = {
    ("Basic256Sha256", "Sign"): ua.SecurityPolicyType.Basic256Sha256_Sign,
    ("Basic256Sha256", "SignAndEncrypt"): ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ("Aes128_Sha256_RsaOaep", "Sign"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ("Aes256_Sha256_RsaPss", "Sign"): ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt"): ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """What the server offers. ``policies`` may include "None" (no security) only when configured."""

    policies: tuple[str, ...] = ("None",)
    modes: tuple[str, ...] = MODES
    state_dir: Path | None = None
    application_uri: str | None = None
    hostnames: tuple[str, ...] = ()
    certificate_days: int = 3650
    max_rejected: int = 100  # certificates kept in rejected/certs; the oldest are deleted first

    def __post_init__(self) -> None:
        for p in self.policies:
            if p not in POLICIES:
                raise ValueError(f"unknown security policy {p!r}; known: {', '.join(POLICIES)}")
        for m in self.modes:
            if m not in MODES:
                raise ValueError(f"unknown security mode {m!r}; known: {', '.join(MODES)}")
        if self.secure and self.state_dir is None:
            raise ValueError("secure policies need a state_dir for the server certificate")

    @property
    def secure(self) -> bool:
        return any(p != "None" for p in self.policies)

    def policy_types(self) -> list[ua.SecurityPolicyType]:
        out = [ua.SecurityPolicyType.NoSecurity] if "None" in self.policies else []
        out += [POLICY_TYPES[(p, m)] for p in self.policies if p != "None" for m in self.modes]
        return out


@dataclass(frozen=True, slots=True)
class Pki:
    root: Path
    cert: Path = field(init=False)
    key: Path = field(init=False)
    trusted: Path = field(init=False)
    crl: Path = field(init=False)
    issuers: Path = field(init=False)
    issuers_crl: Path = field(init=False)
    rejected: Path = field(init=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "cert", self.root / "own" / "certs" / "server_cert.der")
        set_(self, "key", self.root / "own" / "private" / "server_key.pem")
        set_(self, "trusted", self.root / "trusted" / "certs")
        set_(self, "crl", self.root / "trusted" / "crl")
        set_(self, "issuers", self.root / "issuers" / "certs")
        set_(self, "issuers_crl", self.root / "issuers" / "crl")
        set_(self, "rejected", self.root / "rejected" / "certs")

    @classmethod
    def under(cls, state_dir: Path) -> Pki:
        return cls(StateDir(Path(state_dir)).pki_dir)

    def create_dirs(self) -> None:
        """Create the PKI folders owner-only (0700), whatever the umask; existing ones are set to 0700."""
        for d in (self.cert.parent, self.trusted, self.crl, self.issuers, self.issuers_crl, self.rejected, self.key.parent):
            private_dir(d, root=self.root)


def default_hostnames(endpoint_host: str | None) -> list[str]:
    names = [socket.gethostname(), socket.getfqdn()]
    if endpoint_host and endpoint_host not in ("0.0.0.0", "::", ""):
        names.insert(0, endpoint_host)
    return list(dict.fromkeys(n for n in names if n))


def generate_certificate(
    key_path: Path, cert_path: Path, *, common_name: str, application_uri: str, hostnames: Sequence[str], days: int, server: bool = True
) -> x509.Certificate:
    """Make a 2048-bit RSA key and a self-signed application certificate; the key file is 0600."""
    key = cert_gen.generate_private_key()
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(
        key, common_name, {"organizationName": "edgetwin"}, subject_alt_names(application_uri, hostnames), usage, days=days
    )
    private_dir(key_path.parent)
    private_dir(cert_path.parent)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_private(key_path, pem)  # 0600 also when the umask or an existing file had other bits
    write_private(cert_path, cert.public_bytes(serialization.Encoding.DER))
    return cert


def san_of(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(URIs, host names and IP addresses) in a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    hosts = san.get_values_for_type(x509.DNSName) + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return san.get_values_for_type(x509.UniformResourceIdentifier), hosts


def ensure_server_certificate(pki: Pki, *, common_name: str, application_uri: str, hostnames: Sequence[str], days: int) -> x509.Certificate:
    """Load the server certificate, generating it (and the PKI folders) on first start."""
    pki.create_dirs()
    if pki.cert.exists() and pki.key.exists():
        cert = x509.load_der_x509_certificate(pki.cert.read_bytes())
        uris, hosts = san_of(cert)
        if application_uri not in uris or not set(hostnames) <= set(hosts):
            # Regenerating would silently break every client that trusts the current one.
            log.warning(
                "server_certificate_mismatch",
                path=str(pki.cert),
                certificate_uris=uris,
                certificate_hosts=hosts,
                application_uri=application_uri,
                hostnames=list(hostnames),
                hint="delete the certificate and key to generate a new pair on the next start",
            )
        if pki.key.stat().st_mode & 0o077:
            log.warning("server_key_permissions", path=str(pki.key), mode=oct(pki.key.stat().st_mode & 0o777), hint="chmod 600")
        return cert
    cert = generate_certificate(pki.key, pki.cert, common_name=common_name, application_uri=application_uri, hostnames=hostnames, days=days)
    log.info("server_certificate_created", path=str(pki.cert), application_uri=application_uri, hostnames=list(hostnames))
    return cert


class _TrustStore(TrustStore):
    """asyncua's TrustStore, but an empty trusted/ folder means "trust nobody" instead of an error."""

    async def load_trust(self) -> None:
        certs: list[x509.Certificate] = []
        for location in self.trust_locations:
            certs.extend(await self._load_trust_location(location))
        asyncua_patches.set_trusted_certificates(self, certs)


class ClientCertificateValidator:
    """asyncua certificate hook: full validation against ``trusted/``; untrusted ones go to ``rejected/``."""

    OPTIONS = CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT

    def __init__(self, pki: Pki, *, max_rejected: int = 100) -> None:
        self.pki = pki
        self.max_rejected = max_rejected
        self._store = _TrustStore([pki.trusted], [pki.crl, pki.issuers_crl])
        self._validator = CertificateValidator(self.OPTIONS, self._store)
        self._logged = BurstLimiter(3600.0, max_keys=1024)  # bounded: a peer may send any number of certificates
        self._signature: tuple[object, ...] | None = None
        self._allowed: dict[bytes, bool] = {}

    def _current_signature(self) -> tuple[object, ...]:
        """What identifies the contents of ``trusted/certs``, ``trusted/crl`` and ``issuers/crl``: names, sizes, mtimes."""
        out: list[object] = []
        for d in (self.pki.trusted, self.pki.crl, self.pki.issuers_crl):
            try:
                with os.scandir(d) as it:
                    out.extend(sorted((d.name, e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in it if e.is_file()))
            except FileNotFoundError:
                out.append((d.name, None))
        return tuple(out)

    async def load(self) -> None:
        self._signature = self._current_signature()
        await self._store.load()
        self._allowed.clear()

    async def reload_if_changed(self) -> bool:
        """Reload the trust list and the CRLs if ``trusted/`` changed since the last load."""
        if self._current_signature() == self._signature:
            return False
        await self.load()
        log.info("trust_list_reloaded", trusted=str(self.pki.trusted), crl=str(self.pki.crl))
        return True

    async def allowed(self, der: bytes) -> bool:
        """Whether the client certificate *der* is still trusted and not revoked (after a reload
        if ``trusted/`` changed): the check for sessions that already exist."""
        await self.reload_if_changed()
        ok = self._allowed.get(der)
        if ok is None:
            try:
                ok = self._store.validate(x509.load_der_x509_certificate(der))
            except ValueError:
                ok = False
            if len(self._allowed) > 1024:
                self._allowed.clear()
            self._allowed[der] = ok
        return ok

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        await self.reload_if_changed()  # an administrator may have just trusted it, or removed it
        try:
            await self._validator.validate(cert, app)
            return
        except Exception as exc:  # ServiceError carries the UA status code
            code = getattr(exc, "code", None)
            if code != ua.StatusCodes.BadCertificateUntrusted:
                self._log_once(cert, "client_certificate_invalid", status=ua.StatusCode(code).name if code else str(exc))
                raise
            path = self.pki.rejected / rejected_name(cert)
            if not path.exists():
                private_dir(self.pki.rejected)
                write_private(path, cert.public_bytes(serialization.Encoding.DER))
                self._prune_rejected(keep=path)
            self._log_once(cert, "client_certificate_rejected", path=str(path), application_uri=app.ApplicationUri)
            raise

    def _prune_rejected(self, keep: Path) -> None:
        """Delete the oldest files of ``rejected/certs`` beyond ``max_rejected``."""
        try:
            files = [(e.stat().st_mtime_ns, e.name, Path(e.path)) for e in os.scandir(self.pki.rejected) if e.is_file()]
        except FileNotFoundError:
            return
        excess = len(files) - self.max_rejected
        if excess <= 0:
            return
        files.sort()
        dropped = [p for _, _, p in files if p != keep][:excess]
        for p in dropped:
            p.unlink(missing_ok=True)
        log.info("rejected_certificates_pruned", dropped=len(dropped), kept=self.max_rejected, folder=str(self.pki.rejected))

    def _log_once(self, cert: x509.Certificate, event: str, **kw: object) -> None:
        suppressed = self._logged.allow(f"{event}:{thumbprint(cert)}")
        if suppressed is not None:
            log.warning(event, subject=cert.subject.rfc4514_string(), thumbprint=thumbprint(cert), suppressed=suppressed, **kw)
