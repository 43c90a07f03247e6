"""A configured asyncua Client for one upstream OPC UA server: security, trust list, login.

``build_client`` returns a client that is configured but not connected; the caller runs
``await client.connect()`` and ``await client.disconnect()``. With a secure policy, ``connect``
first asks the server for its endpoints (over an unsecured channel, as OPC UA intends), picks
the endpoint of the requested policy and mode, and checks the server certificate it offers:

* pinned (``server_certificate``): the offered certificate must be exactly that one;
* otherwise it must be in the trust list, ``<pki_dir>/trusted/`` (DER or PEM files, exact match);
* with ``trust_on_first_use`` an endpoint's first certificate is remembered
  (``<pki_dir>/tofu/``) and later ones must equal it.

An untrusted certificate is saved to ``<pki_dir>/rejected/`` and ``connect`` raises
``UntrustedServerCertificate`` naming that file and the trust-list folder to move it to.
The client certificate and key are generated in ``<pki_dir>/own/`` on first use
(``drivers.opcua_client.pki``). asyncua's own reconnection stays off: whoever owns the client
(the gateway's supervisor) reconnects, with its own backoff and outage logging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies as sp
from cryptography import x509

from drivers.opcua_client import pki as pkimod
from drivers.opcua_client.pki import ClientPki

POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
MODES = ("Sign", "SignAndEncrypt")

_POLICY_CLASSES: dict[str, type[sp.SecurityPolicy]] = {
    "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}


class OpcUaClientError(Exception):
    """The client could not be configured or the server does not offer what is configured."""


class EndpointNotOffered(OpcUaClientError):
    """The server has no endpoint with the configured security policy and mode."""


class UntrustedServerCertificate(OpcUaClientError):
    """The server's certificate is neither pinned nor in the trust list (it was saved to ``rejected``)."""

    def __init__(self, endpoint: str, cert: x509.Certificate, reason: str, rejected: Path | None, trusted_dir: Path | None) -> None:
        self.endpoint = endpoint
        self.subject = cert.subject.rfc4514_string()
        self.thumbprint = pkimod.thumbprint(cert)
        self.reason = reason
        self.rejected = rejected
        self.trusted_dir = trusted_dir
        hint = f"; to trust it, move {rejected} to {trusted_dir}/" if rejected and trusted_dir else ""
        super().__init__(f"server certificate of {endpoint} ({self.subject}, sha1 {self.thumbprint}) is {reason}{hint}")


class GatewayClient(Client):  # type: ignore[misc]  # asyncua is not type-checked (pyproject.toml)
    """asyncua Client whose ``connect`` checks the server certificate before the secure channel opens."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float,
        watchdog_s: float,
        security_policy: str,
        security_mode: str,
        pki: ClientPki | None,
        server_certificate: x509.Certificate | None,
        trust_on_first_use: bool,
        log: Any,
    ) -> None:
        # auto_reconnect off: asyncua would re-create sessions and subscriptions behind the
        # owner's back (and keep requests waiting while it does); the owner reconnects instead.
        super().__init__(endpoint, timeout=timeout_s, watchdog_intervall=watchdog_s, auto_reconnect=False)
        self.endpoint = endpoint
        self.policy_name = security_policy
        self.mode_name = security_mode
        self.pki = pki
        self.pinned = server_certificate
        self.trust_on_first_use = trust_on_first_use
        self.log = log
        self.name = self.description = "edgetwin gateway"
        self.product_uri = "urn:edgetwin:gateway"
        self.identity: pkimod.ClientIdentity | None = None
        if pki is not None and self.secure:
            self.identity, created = pkimod.ensure_client_identity(pki)
            self.application_uri = self.identity.application_uri
            if created:
                log.info("opcua_client_certificate_created", path=str(pki.cert), application_uri=self.application_uri)

    @property
    def secure(self) -> bool:
        return self.policy_name != "None"

    async def connect(self, **kwargs: Any) -> None:
        kwargs["auto_reconnect"] = False
        if self.secure:
            await self._secure_channel_setup()
        await super().connect(**kwargs)

    async def _secure_channel_setup(self) -> None:
        assert self.identity is not None
        policy = _POLICY_CLASSES[self.policy_name]
        mode = _MODES[self.mode_name]
        unsecured: sp.SecurityPolicy = sp.SecurityPolicyNone()
        self.security_policy = unsecured
        self.uaclient.set_security(unsecured)
        endpoints = await self.connect_and_get_server_endpoints()
        try:
            ep = Client.find_endpoint(endpoints, mode, policy.URI)
        except ua.uaerrors.UaError:
            offered = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
            raise EndpointNotOffered(f"{self.endpoint} offers no endpoint {self.policy_name}/{self.mode_name}; it offers: {', '.join(offered)}") from None
        if not ep.ServerCertificate:
            raise OpcUaClientError(f"{self.endpoint}: endpoint {self.policy_name}/{self.mode_name} has no server certificate")
        server_cert = pkimod.x509_from_der(ep.ServerCertificate)
        self.check_trust(server_cert)
        secured = policy(server_cert, self.identity.cert, self.identity.key, mode)
        self.security_policy = secured
        self.uaclient.set_security(secured)

    def check_trust(self, cert: x509.Certificate) -> None:
        """Accept *cert* or raise UntrustedServerCertificate (saving it to ``rejected/``)."""
        assert self.pki is not None
        if self.pinned is not None:
            if pkimod.der(cert) != pkimod.der(self.pinned):
                raise self._refuse(cert, "not the pinned server_certificate")
        elif not pkimod.is_in(cert, pkimod.trusted_certificates(self.pki.trusted)):
            if not self.trust_on_first_use:
                raise self._refuse(cert, "not in the trust list")
            first = pkimod.tofu_path(self.pki, self.endpoint)
            if not first.exists():
                first.parent.mkdir(parents=True, exist_ok=True)
                first.write_bytes(pkimod.der(cert))
                self.log.warning("opcua_server_certificate_trusted_on_first_use", endpoint=self.endpoint, path=str(first), thumbprint=pkimod.thumbprint(cert))
            elif pkimod.der(pkimod.load_certificate(first)) != pkimod.der(cert):
                raise self._refuse(cert, f"not the certificate first seen ({first})")
        if not pkimod.time_valid(cert):
            validity = f"{cert.not_valid_before_utc} .. {cert.not_valid_after_utc}"
            raise UntrustedServerCertificate(self.endpoint, cert, f"outside its validity ({validity})", None, None)

    def _refuse(self, cert: x509.Certificate, reason: str) -> UntrustedServerCertificate:
        assert self.pki is not None
        rejected = pkimod.save_rejected(self.pki, cert)
        return UntrustedServerCertificate(self.endpoint, cert, reason, rejected, self.pki.trusted)


def build_client(
    endpoint: str,
    *,
    security_policy: str = "None",
    security_mode: str = "SignAndEncrypt",
    username: str | None = None,
    password: str | None = None,
    pki_dir: Path | None = None,
    server_certificate: Path | None = None,
    trust_on_first_use: bool = False,
    timeout_s: float = 5.0,
    log: Any = None,
    watchdog_s: float = 1.0,
) -> GatewayClient:
    """A configured, not connected client for *endpoint* (see the module docstring).

    *pki_dir* is the client PKI folder (the gateway uses ``<state_dir>/pki/client``); a secure
    policy needs it. *watchdog_s* is how often the connected client probes the server's state:
    a lost session is noticed within about that time (plus *timeout_s* for a silent peer).
    Raises ValueError for an unknown policy or mode, a secure policy without *pki_dir*, or an
    unreadable *server_certificate*.
    """
    if security_policy not in POLICIES:
        raise ValueError(f"unknown security policy {security_policy!r}; known: {', '.join(POLICIES)}")
    if security_mode not in MODES:
        raise ValueError(f"unknown security mode {security_mode!r}; known: {', '.join(MODES)}")
    if not endpoint.startswith("opc.tcp://"):
        raise ValueError(f"endpoint {endpoint!r} must start with opc.tcp://")
    if security_policy != "None" and pki_dir is None:
        raise ValueError(f"security policy {security_policy} needs a pki_dir for the client certificate")
    pinned: x509.Certificate | None = None
    if server_certificate is not None:
        try:
            pinned = pkimod.load_certificate(Path(server_certificate))
        except (OSError, ValueError) as exc:
            raise ValueError(f"server_certificate {server_certificate}: {exc}") from exc
    client = GatewayClient(
        endpoint,
        timeout_s=timeout_s,
        watchdog_s=watchdog_s,
        security_policy=security_policy,
        security_mode=security_mode,
        pki=ClientPki(Path(pki_dir)) if pki_dir is not None else None,
        server_certificate=pinned,
        trust_on_first_use=trust_on_first_use,
        log=log if log is not None else structlog.get_logger("drivers.opcua_client"),
    )
    if username is not None:
        client.set_user(username)
        if password is not None:
            client.set_password(password)
    return client
