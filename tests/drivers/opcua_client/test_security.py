"""Secured sessions: every policy, the client certificate, the trust list, pinning, trust on first use."""

from __future__ import annotations

import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from cryptography import x509
from structlog.testing import capture_logs

from drivers.base import DriverUnavailable
from drivers.opcua_client.client import GatewayClient, UntrustedServerCertificate, build_client
from drivers.opcua_client.pki import ClientPki, load_certificate
from drivers.sample import Status
from tests.drivers.opcua_client.conftest import make_driver, settings, tag
from tests.drivers.opcua_client.upstream import ServerCert, Upstream, make_server_cert

pytestmark = pytest.mark.asyncio(loop_scope="module")

POLICIES = [("Basic256Sha256", "SignAndEncrypt"), ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"), ("Aes256_Sha256_RsaPss", "Sign")]
USERS = {"alice": "s3cret-pw"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secured(free_port_factory: Any, server_cert: ServerCert) -> AsyncIterator[Upstream]:
    """Secure endpoints only (no None), a login required."""
    server = Upstream(free_port_factory(), policies=POLICIES, cert=server_cert, users=USERS)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _trust(state: Path, cert: Path) -> None:
    trusted = ClientPki.under(state).trusted
    trusted.mkdir(parents=True, exist_ok=True)
    shutil.copy(cert, trusted / "upstream.der")


def _secure(upstream: Upstream, policy: tuple[str, str], config: Path, **kw: Any) -> Any:
    (config / "alice.pw").write_text(USERS["alice"] + "\n")
    return settings(
        upstream.endpoint,
        [tag("Temperature")],
        mode="poll",
        security_policy=policy[0],
        security_mode=policy[1],
        username="alice",
        password_file="alice.pw",
        **kw,
    )


async def _read_once(s: Any, state: Path, config: Path) -> float:
    d = make_driver(s, state, config)
    await d.connect()
    try:
        (sample,) = (await d.read(s.points())).samples
    finally:
        await d.close()
    assert sample.status == Status.Good
    return float(sample.value)  # type: ignore[arg-type]


@pytest.mark.parametrize("policy", POLICIES, ids=["-".join(p) for p in POLICIES])
async def test_every_policy_with_a_login_and_the_trust_list(secured: Upstream, server_cert: ServerCert, tmp_path: Path, policy: tuple[str, str]) -> None:
    state = tmp_path / "state"
    _trust(state, server_cert.cert)
    assert await _read_once(_secure(secured, policy, tmp_path), state, tmp_path) == 21.5


async def test_client_certificate_is_made_once_with_the_application_uri_and_a_private_key(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _trust(state, server_cert.cert)
    s = _secure(secured, POLICIES[0], tmp_path)
    with capture_logs() as logs:
        await _read_once(s, state, tmp_path)
        await _read_once(s, state, tmp_path)
    pki = ClientPki.under(state)
    assert [e["event"] for e in logs if e["event"] == "opcua_client_certificate_created"] == ["opcua_client_certificate_created"]
    assert stat.S_IMODE(pki.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(pki.key.parent.stat().st_mode) == 0o700
    san = load_certificate(pki.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    assert len(uris) == 1 and uris[0].startswith("urn:")
    assert all("s3cret" not in str(e) for e in logs)  # the password is never logged


async def test_untrusted_server_certificate_is_refused_saved_and_named_in_the_log(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    state = tmp_path / "state"
    s = _secure(secured, POLICIES[0], tmp_path)
    d = make_driver(s, state, tmp_path)
    with capture_logs() as logs, pytest.raises(DriverUnavailable, match="not in the trust list") as info:
        await d.connect()
    pki = ClientPki.under(state)
    (rejected,) = pki.rejected.iterdir()
    assert rejected.read_bytes() == server_cert.cert.read_bytes()
    assert str(rejected) in str(info.value) and str(pki.trusted) in str(info.value)
    (line,) = [e for e in logs if e["event"] == "opcua_server_certificate_untrusted"]
    assert line["log_level"] == "warning" and f"move {rejected} to {pki.trusted}/" in line["reason"]
    # an administrator moves it: the next connect (no restart) is trusted
    shutil.move(rejected, pki.trusted / rejected.name)
    await d.connect()
    await d.close()


async def test_a_pinned_certificate_is_trusted_and_another_is_refused(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copy(server_cert.cert, tmp_path / "plc.der")
    s = _secure(secured, POLICIES[2], tmp_path, server_certificate="plc.der")  # relative to the config folder
    assert await _read_once(s, state, tmp_path) == 21.5
    other = make_server_cert(tmp_path, "other")
    s = _secure(secured, POLICIES[2], tmp_path, server_certificate=str(other.cert))
    _trust(state, server_cert.cert)  # the trust list does not override a pin
    with pytest.raises(DriverUnavailable, match="not the pinned server_certificate"):
        await _read_once(s, state, tmp_path)


async def test_trust_on_first_use_remembers_the_first_certificate(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    state = tmp_path / "state"
    s = _secure(secured, POLICIES[0], tmp_path, trust_on_first_use=True)
    with capture_logs() as logs:
        assert await _read_once(s, state, tmp_path) == 21.5
        assert await _read_once(s, state, tmp_path) == 21.5
    assert [e["event"] for e in logs].count("opcua_server_certificate_trusted_on_first_use") == 1
    (remembered,) = ClientPki.under(state).tofu.iterdir()
    assert remembered.read_bytes() == server_cert.cert.read_bytes()
    # the same endpoint later presenting another certificate is refused
    client = build_client(secured.endpoint, security_policy="Basic256Sha256", pki_dir=ClientPki.under(state).root, trust_on_first_use=True)
    client.check_trust(load_certificate(server_cert.cert))
    with pytest.raises(UntrustedServerCertificate, match="not the certificate first seen"):
        client.check_trust(load_certificate(make_server_cert(tmp_path, "impostor").cert))


async def test_wrong_password_and_missing_policy_are_clear(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _trust(state, server_cert.cert)
    s = _secure(secured, POLICIES[0], tmp_path)
    (tmp_path / "alice.pw").write_text("nope")
    with pytest.raises(DriverUnavailable, match="login as alice refused"):
        await _read_once(s, state, tmp_path)
    s = _secure(secured, ("Aes256_Sha256_RsaPss", "SignAndEncrypt"), tmp_path)
    with pytest.raises(DriverUnavailable, match="offers no endpoint Aes256_Sha256_RsaPss/SignAndEncrypt; it offers: "):
        await _read_once(s, state, tmp_path)
    (tmp_path / "alice.pw").unlink()
    with pytest.raises(DriverUnavailable, match="cannot read password_file"):
        await _read_once(s, state, tmp_path)


async def test_build_client_returns_a_configured_client_that_the_caller_connects(secured: Upstream, server_cert: ServerCert, tmp_path: Path) -> None:
    """The API of ``edgetwin browse``: configure, connect, use, disconnect."""
    client = build_client(
        secured.endpoint,
        security_policy="Basic256Sha256",
        security_mode="SignAndEncrypt",
        username="alice",
        password=USERS["alice"],
        pki_dir=tmp_path / "pki",
        server_certificate=server_cert.cert,
        timeout_s=2.0,
    )
    assert isinstance(client, GatewayClient)
    await client.connect()
    try:
        value = await client.get_node(ua.NodeId("Boiler.Temperature", secured.ns)).read_value()
    finally:
        await client.disconnect()
    assert value == 21.5
    with pytest.raises(ValueError, match="unknown security policy"):
        build_client(secured.endpoint, security_policy="Basic128Rsa15")
    with pytest.raises(ValueError, match="needs a pki_dir"):
        build_client(secured.endpoint, security_policy="Basic256Sha256")
    with pytest.raises(ValueError, match="server_certificate"):
        build_client(secured.endpoint, security_policy="Basic256Sha256", pki_dir=tmp_path, server_certificate=tmp_path / "missing.der")
