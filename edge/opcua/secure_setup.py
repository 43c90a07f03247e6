"""The OPC UA server's security at start-up: policies and identity tokens, and on a secure
endpoint its own certificate (created or renewed in the PKI), the client-certificate validator
(trusted/, rejected/, CRLs) and the watcher that applies trust changes without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import structlog

from edge.opcua.auth import install_channel_guard, set_certificate_check
from edge.opcua.revocation import TrustWatcher
from edge.opcua.security import ClientCertificateValidator, Pki, default_hostnames, ensure_server_certificate

log = structlog.get_logger("edge.opcua.server")


async def setup_security(server: Any, sec: Any, endpoint: str, gateway: str, application_uri: str) -> tuple[Any, Any]:
    """Configure *server* (asyncua) for *sec*; returns (pki, trust watcher), both None when the
    endpoint is not secure."""
    install_channel_guard()
    server.set_security_policy(sec.policy_types())
    manager = server.iserver.user_manager
    server.set_identity_tokens(manager.identity_tokens())
    if not manager.identity_tokens():
        log.warning("no_logins_configured", hint="add [[opcua.users]] or set opcua.allow_anonymous = true")
    if not sec.secure:
        return None, None
    assert sec.state_dir is not None
    pki = Pki.under(Path(sec.state_dir))
    host = urlparse(endpoint).hostname
    hostnames = list(sec.hostnames) or default_hostnames(host)
    ensure_server_certificate(pki, common_name=f"edgetwin {gateway}", application_uri=application_uri, hostnames=hostnames, days=sec.certificate_days)
    await server.load_certificate(str(pki.cert))
    await server.load_private_key(str(pki.key))
    validator = ClientCertificateValidator(pki, max_rejected=sec.max_rejected)
    await validator.load()
    server.set_certificate_validator(validator)
    set_certificate_check(server.iserver, validator.allowed)
    return pki, TrustWatcher(validator, server.iserver)
