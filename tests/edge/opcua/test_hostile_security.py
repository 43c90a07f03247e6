"""Password guessing, revocation without a restart, the rejected/ cap and owner-only state files,
against a real gateway server and real asyncua clients over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import stat
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.history.store import HistoryStore
from edge.opcua.logins import LoginSettings
from edge.opcua.security import SecuritySettings, generate_certificate
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory, UserEntry, hash_password, parse_password_hash

NS = "urn:edgetwin:hostile-security"
CLIENT_URI = "urn:edgetwin:test:client"


class Cert:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.key = root / f"{name}_key.pem"
        self.cert = root / f"{name}_cert.der"
        self.x509 = generate_certificate(self.key, self.cert, common_name=name, application_uri=CLIENT_URI, hostnames=["localhost"], days=30, server=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    root = tmp_path_factory.mktemp("client-pki")
    return {name: Cert(root, name) for name in ("alice", "s1", "s2", "s3", "s4", "s5")}


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", description="tag"))
    return reg


@contextlib.asynccontextmanager
async def gateway(port: int, state: Path | None = None, **kw: Any) -> AsyncIterator[tuple[OpcUaServer, str]]:
    reg = _registry()
    url = f"opc.tcp://127.0.0.1:{port}/edgetwin"
    if state is not None:
        kw["security"] = SecuritySettings(
            policies=("Basic256Sha256",), modes=("SignAndEncrypt",), state_dir=state, hostnames=("localhost", "127.0.0.1"), **kw.pop("security_kw", {})
        )
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", **kw) as server:
        now = utcnow()
        reg.publish([TagSample("plc.temp", 21.5, Status.Good, now, now)])
        await server.drain()
        yield server, url


async def secure_client(url: str, cert: Cert) -> Client:
    client = Client(url, timeout=5)
    client.application_uri = CLIENT_URI
    await client.set_security(sp.SecurityPolicyBasic256Sha256, str(cert.cert), str(cert.key), mode=ua.MessageSecurityMode.SignAndEncrypt)
    return client


async def read_temp(client: Client) -> float:
    ns = await client.get_namespace_index(NS)
    return float(await client.get_node(ua.NodeId("gw/Devices/plc/temp", ns)).read_value())


# -- passwords ----------------------------------------------------------------------------------
async def test_wrong_passwords_get_slower_answers_and_scrypt_runs_off_the_loop(free_port: int) -> None:
    users = UserDirectory([UserEntry("otto", parse_password_hash(hash_password("right")), Role.OPERATOR)])  # full-cost scrypt
    threads: set[int] = set()
    authenticate = users.authenticate

    def recording(name: str, password: str) -> Any:
        threads.add(threading.get_ident())
        return authenticate(name, password)

    users.authenticate = recording  # type: ignore[method-assign]
    logins = LoginSettings(initial_s=0.2, max_user_s=2.0, max_address_s=2.0)
    async with gateway(free_port, users=users, logins=logins) as (server, url):
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - t0 - 0.005)

        tick = asyncio.create_task(ticker(), name="loop-lag")
        durations = []
        try:
            for _ in range(5):
                client = Client(url, timeout=10)
                client.set_user("otto")
                client.set_password("guess")
                t0 = time.perf_counter()
                with pytest.raises(ua.UaStatusCodeError) as info:
                    await client.connect()
                durations.append(time.perf_counter() - t0)
                assert info.value.code == ua.StatusCodes.BadUserAccessDenied
                with contextlib.suppress(Exception):
                    await client.disconnect()
        finally:
            tick.cancel()
            await asyncio.gather(tick, return_exceptions=True)
        print("wrong-password answer times (s):", [round(d, 3) for d in durations], f"max loop lag {max(lags) * 1000:.1f} ms")
        assert durations[4] > durations[0] + 0.6  # 0.8 s of backoff before the fifth check
        assert durations[2] < durations[3] < durations[4]
        assert threading.get_ident() not in threads and threads
        assert max(lags) < 0.1
        assert server.user_manager.logins.failures == 5
        # the right password still gets in (after the backoff) and clears it
        client = Client(url, timeout=10)
        client.set_user("otto")
        client.set_password("right")
        async with client:
            assert await read_temp(client) == 21.5
        t0 = time.perf_counter()
        async with client:
            pass
        assert time.perf_counter() - t0 < 1.0


# -- revocation ---------------------------------------------------------------------------------
async def _wait_closed(client: Client, timeout: float = 5.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            await read_temp(client)
        except Exception:
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise AssertionError("the session of a revoked certificate is still open")


async def test_deleting_a_trusted_certificate_closes_its_session_and_refuses_the_next(free_port: int, tmp_path: Path, certs: dict[str, Cert]) -> None:
    async with gateway(free_port, tmp_path, users=UserDirectory(anonymous_role=Role.VIEWER)) as (server, url):
        assert server.pki is not None
        trusted = server.pki.trusted / "alice.der"
        shutil.copy(certs["alice"].cert, trusted)
        client = await secure_client(url, certs["alice"])
        await client.connect()
        try:
            assert await read_temp(client) == 21.5
            trusted.unlink()
            took = await _wait_closed(client)
            print(f"session closed {took:.2f} s after the certificate was deleted")
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        with pytest.raises(ua.UaStatusCodeError) as info:
            async with await secure_client(url, certs["alice"]):
                pass
        assert info.value.code == ua.StatusCodes.BadCertificateUntrusted
        assert server.trust_watcher is not None and server.trust_watcher.closed == 1


async def test_a_crl_in_trusted_crl_revokes_a_trusted_certificate(free_port: int, tmp_path: Path, certs: dict[str, Cert]) -> None:
    async with gateway(free_port, tmp_path, users=UserDirectory(anonymous_role=Role.VIEWER)) as (server, url):
        assert server.pki is not None
        alice = certs["alice"]
        shutil.copy(alice.cert, server.pki.trusted / "alice.der")
        client = await secure_client(url, alice)
        await client.connect()
        try:
            assert await read_temp(client) == 21.5
            key = serialization.load_pem_private_key(alice.key.read_bytes(), None)
            now = dt.datetime.now(dt.UTC)
            revoked = x509.RevokedCertificateBuilder().serial_number(alice.x509.serial_number).revocation_date(now).build()
            crl = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(alice.x509.subject)
                .last_update(now)
                .next_update(now + dt.timedelta(days=1))
                .add_revoked_certificate(revoked)
                .sign(key, hashes.SHA256())  # type: ignore[arg-type]
            )
            (server.pki.crl / "alice.crl.der").write_bytes(crl.public_bytes(serialization.Encoding.DER))
            await _wait_closed(client)
        finally:
            with contextlib.suppress(Exception):
                await client.disconnect()
        with pytest.raises(ua.UaStatusCodeError) as info:
            async with await secure_client(url, alice):
                pass
        assert info.value.code in (ua.StatusCodes.BadCertificateRevoked, ua.StatusCodes.BadCertificateUntrusted), info.value


async def test_rejected_folder_keeps_only_the_newest_certificates(free_port: int, tmp_path: Path, certs: dict[str, Cert]) -> None:
    async with gateway(free_port, tmp_path, users=UserDirectory(anonymous_role=Role.VIEWER), security_kw={"max_rejected": 3}) as (server, url):
        assert server.pki is not None
        for name in ("s1", "s2", "s3", "s4", "s5"):
            with pytest.raises(ua.UaStatusCodeError) as info:
                async with await secure_client(url, certs[name]):
                    pass
            assert info.value.code == ua.StatusCodes.BadCertificateUntrusted
            assert len(list(server.pki.rejected.iterdir())) <= 3
            time.sleep(0.01)  # distinct modification times
        kept = sorted(p.name.split(" ")[0] for p in server.pki.rejected.iterdir())
        assert kept == ["s3", "s4", "s5"]


# -- file modes ---------------------------------------------------------------------------------
async def test_every_state_file_and_folder_is_owner_only_under_umask_000(free_port: int, tmp_path: Path, certs: dict[str, Cert], umask_000: None) -> None:
    state = tmp_path / "state"
    async with gateway(free_port, state, users=UserDirectory(anonymous_role=Role.VIEWER)) as (server, url):
        assert server.pki is not None
        with pytest.raises(ua.UaStatusCodeError):
            async with await secure_client(url, certs["s1"]):
                pass
        store = HistoryStore(state / "history.sqlite", retention_days=1, max_db_mb=10)
        store.open()
        try:
            now = utcnow()
            store.append([TagSample("plc.temp", 1.0, Status.Good, now, now)])
            assert (state / "history.sqlite-wal").exists()
            found = {p: stat.S_IMODE(p.lstat().st_mode) for p in [state, *state.rglob("*")]}
        finally:
            store.close()
    assert any(p.parent == server.pki.rejected for p in found), "a rejected certificate was written"
    wrong = {str(p.relative_to(tmp_path)): oct(m) for p, m in found.items() if m != (0o700 if p.is_dir() else 0o600)}
    assert not wrong
