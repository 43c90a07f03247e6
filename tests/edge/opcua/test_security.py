"""Secure endpoints, certificates, logins and roles against a real asyncua Client over loopback.

One server per module offers every secure policy x mode (no None); RSA keys for the clients are
generated once per session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp
from cryptography import x509
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.security import Pki, SecuritySettings, generate_certificate, san_of
from edge.opcua.server import OpcUaServer
from edge.opcua.users import Role, UserDirectory, UserEntry, current_role, hash_password, parse_password_hash

NS = "urn:edgetwin:security-test"
APP_URI = "urn:edgetwin:test:server"
CLIENT_URI = "urn:edgetwin:test:client"
PASSWORDS = {"vera": ("viewer-pw", Role.VIEWER), "otto": ("operator-pw", Role.OPERATOR), "ada": ("admin-pw", Role.ADMIN)}
POLICIES = {
    "Basic256Sha256": sp.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": sp.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": sp.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}


class ClientCert:
    def __init__(self, root: Path, name: str) -> None:
        self.key = root / f"{name}_key.pem"
        self.cert = root / f"{name}_cert.der"
        self.x509 = generate_certificate(self.key, self.cert, common_name=name, application_uri=CLIENT_URI, hostnames=["localhost"], days=30, server=False)


@pytest.fixture(scope="session")
def client_certs(tmp_path_factory) -> dict[str, ClientCert]:
    """RSA keygen is slow: two client identities for the whole test session."""
    root = tmp_path_factory.mktemp("client-pki")
    return {"trusted": ClientCert(root, "trusted-client"), "stranger": ClientCert(root, "stranger-client")}


class _Writes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    async def __call__(self, key: str, value: object) -> int:
        self.calls.append((key, value))
        return Status.Good


class _Methods:
    """A stand-in extension that adds two methods guarded by roles, the way the methods module does."""

    def __init__(self) -> None:
        self.seen_roles: list[Role | None] = []
        self.ids: dict[str, ua.NodeId] = {}

    async def attach(self, server: OpcUaServer) -> None:
        root = server.ua_server.get_node(server.path_node_id(()))

        async def handler(parent: ua.NodeId) -> list[ua.Variant]:
            self.seen_roles.append(current_role())
            return [ua.Variant(True, ua.VariantType.Boolean)]

        for name, role in (("OperatorThing", Role.OPERATOR), ("AdminThing", Role.ADMIN)):
            method = await root.add_method(server.path_node_id((name,)), ua.QualifiedName(name, server.namespace_index), handler, [], [ua.VariantType.Boolean])
            server.require_role(method.nodeid, role)
            self.ids[name] = method.nodeid

    async def detach(self) -> None:
        return None


def _registry() -> TagRegistry:
    reg = TagRegistry()
    reg.add(TagInfo("plc.temp", ("Devices", "plc", "temp"), "float64", "degC", -20.0, 150.0, "tank temperature", device="plc"))
    reg.add(TagInfo("plc.sp", ("Devices", "plc", "sp"), "float64", "%", 0.0, 100.0, "setpoint", writable=True, device="plc"))
    return reg


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secure(tmp_path_factory, free_port_factory, client_certs):
    state = tmp_path_factory.mktemp("state")
    users = UserDirectory([UserEntry(name, parse_password_hash(hash_password(pw, n=1024)), role) for name, (pw, role) in PASSWORDS.items()])
    security = SecuritySettings(policies=tuple(POLICIES), modes=tuple(MODES), state_dir=state, application_uri=APP_URI, hostnames=("localhost", "127.0.0.1"))
    reg = _registry()
    writes, methods = _Writes(), _Methods()
    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(
        reg, endpoint=url, namespace_uri=NS, gateway_name="gw", write_handler=writes, extensions=[methods], security=security, users=users
    ) as server:
        now = utcnow()
        reg.publish([TagSample("plc.temp", 21.5, Status.Good, now, now), TagSample("plc.sp", 40.0, Status.Good, now, now)])
        await server.drain()
        shutil.copy(client_certs["trusted"].cert, server.pki.trusted / "trusted-client.der")
        yield server, url, writes, methods


def _client(url: str) -> Client:
    client = Client(url, timeout=5)
    client.application_uri = CLIENT_URI
    return client


async def _secure_client(url: str, cert: ClientCert, policy: str = "Basic256Sha256", mode: str = "SignAndEncrypt", user: str | None = "otto") -> Client:
    client = _client(url)
    if user is not None:
        client.set_user(user)
        client.set_password(PASSWORDS[user][0])
    await client.set_security(POLICIES[policy], str(cert.cert), str(cert.key), mode=MODES[mode])
    return client


async def _node(client: Client, path: str):
    ns = await client.get_namespace_index(NS)
    return client.get_node(ua.NodeId(f"gw/{path}", ns))


# -- endpoints and certificates ---------------------------------------------------------------
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("policy", list(POLICIES))
async def test_every_secure_policy_and_mode_connects_with_a_trusted_certificate(secure, client_certs, policy, mode) -> None:
    _, url, _, _ = secure
    client = await _secure_client(url, client_certs["trusted"], policy, mode)
    async with client:
        assert client.security_policy.URI == POLICIES[policy].URI
        assert client.security_policy.Mode == MODES[mode]
        assert (await (await _node(client, "Devices/plc/temp")).read_value()) == 21.5


@pytest.mark.asyncio(loop_scope="module")
async def test_endpoints_offer_exactly_the_configured_policies_and_no_none(secure) -> None:
    _, url, _, _ = secure
    client = _client(url)
    endpoints = await client.connect_and_get_server_endpoints()
    offered = {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints}
    assert offered == {(p.URI, m) for p in POLICIES.values() for m in MODES.values()}
    for e in endpoints:
        assert {t.TokenType for t in e.UserIdentityTokens} == {ua.UserTokenType.UserName}  # anonymous is off


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unsecured_session_is_refused(secure) -> None:
    """No session over a None channel when None is not configured (asyncua 2.1 alone would allow one:
    its channel falls back to None). GetEndpoints over None still works, as discovery needs it."""
    _, url, _, _ = secure
    client = _client(url)  # asyncua's connect() would refuse on its own: no None endpoint is listed
    await client.connect_socket()
    try:
        await client.send_hello()
        await client.open_secure_channel()
        assert len(await client.get_endpoints()) == len(POLICIES) * len(MODES)
        with pytest.raises(ua.UaStatusCodeError) as info:
            await client.uaclient.create_session(ua.CreateSessionParameters(EndpointUrl=url, SessionName="x", RequestedSessionTimeout=10000))
    finally:
        client.disconnect_socket()
    assert info.value.code == ua.StatusCodes.BadSecurityPolicyRejected


@pytest.mark.asyncio(loop_scope="module")
async def test_server_certificate_has_the_application_uri_host_names_and_a_private_key(secure) -> None:
    server, _, _, _ = secure
    pki: Pki = server.pki
    cert = x509.load_der_x509_certificate(pki.cert.read_bytes())
    uris, hosts = san_of(cert)
    assert uris == [APP_URI] and {"localhost", "127.0.0.1"} <= set(hosts)
    assert pki.key.stat().st_mode & 0o777 == 0o600
    assert server.ua_server.get_application_uri() == APP_URI


@pytest.mark.asyncio(loop_scope="module")
async def test_untrusted_certificate_is_refused_kept_in_rejected_and_accepted_once_moved_to_trusted(secure, client_certs) -> None:
    server, url, _, _ = secure
    stranger = client_certs["stranger"]
    with capture_logs() as logs, pytest.raises(ua.UaStatusCodeError) as info:
        async with await _secure_client(url, stranger):
            pass
    assert info.value.code == ua.StatusCodes.BadCertificateUntrusted
    rejected = list(server.pki.rejected.glob("stranger-client *.der"))
    assert len(rejected) == 1 and rejected[0].read_bytes() == stranger.cert.read_bytes()
    assert [e["event"] for e in logs if e["event"].startswith("client_certificate")] == ["client_certificate_rejected"]
    # the administrator's move: no restart needed
    rejected[0].rename(server.pki.trusted / rejected[0].name)
    async with await _secure_client(url, stranger) as client:
        assert (await (await _node(client, "Devices/plc/temp")).read_value()) == 21.5


# -- logins -----------------------------------------------------------------------------------
@pytest.mark.asyncio(loop_scope="module")
async def test_wrong_password_and_unknown_user_are_refused_at_activate_session(secure, client_certs) -> None:
    _, url, _, _ = secure
    for user, password in (("otto", "not-the-password"), ("mallory", "operator-pw")):
        client = await _secure_client(url, client_certs["trusted"], user=None)
        client.set_user(user)
        client.set_password(password)
        with capture_logs() as logs, pytest.raises(ua.UaStatusCodeError) as info:
            async with client:
                pass
        assert info.value.code == ua.StatusCodes.BadUserAccessDenied
        assert any(e["event"] == "login_failed" and e["user"] == user and e["log_level"] == "warning" for e in logs)


@pytest.mark.asyncio(loop_scope="module")
async def test_anonymous_login_is_refused_when_off(secure, client_certs) -> None:
    _, url, _, _ = secure
    with pytest.raises(ua.UaStatusCodeError) as info:
        async with await _secure_client(url, client_certs["trusted"], user=None):
            pass
    assert info.value.code == ua.StatusCodes.BadIdentityTokenRejected


# -- roles ------------------------------------------------------------------------------------
@pytest.mark.asyncio(loop_scope="module")
async def test_viewer_browses_reads_subscribes_but_may_not_write(secure, client_certs) -> None:
    _, url, writes, _ = secure
    writes.calls.clear()
    async with await _secure_client(url, client_certs["trusted"], user="vera") as client:
        sp_node = await _node(client, "Devices/plc/sp")
        assert {(await c.read_browse_name()).Name for c in await (await _node(client, "Devices/plc")).get_children()} == {"temp", "sp"}
        assert await sp_node.read_value() == 40.0
        sub = await client.create_subscription(50, None)
        await sub.subscribe_data_change(sp_node)
        await sub.delete()
        user_level = (await sp_node.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
        assert not user_level & ua.AccessLevel.CurrentWrite.mask
        with capture_logs() as logs, pytest.raises(ua.UaStatusCodeError) as info:
            await sp_node.write_value(ua.DataValue(ua.Variant(50.0, ua.VariantType.Double)))
        assert info.value.code == ua.StatusCodes.BadUserAccessDenied
        assert writes.calls == []
        (event,) = [e for e in logs if e["event"] == "write_rejected"]
        assert (event["user"], event["role"], event["tag"], event["old"], event["new"], event["status"]) == (
            "vera", "viewer", "plc.sp", 40.0, 50.0, "BadUserAccessDenied"
        )  # fmt: skip


@pytest.mark.asyncio(loop_scope="module")
async def test_operator_writes_setpoints_within_limits_only(secure, client_certs) -> None:
    _, url, writes, _ = secure
    writes.calls.clear()
    async with await _secure_client(url, client_certs["trusted"], user="otto") as client:
        sp_node = await _node(client, "Devices/plc/sp")
        user_level = (await sp_node.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
        assert user_level & ua.AccessLevel.CurrentWrite.mask
        with capture_logs() as logs:
            await sp_node.write_value(ua.DataValue(ua.Variant(55.0, ua.VariantType.Double)))
        assert writes.calls == [("plc.sp", 55.0)]
        (event,) = [e for e in logs if e["event"] == "write_done"]
        assert (event["user"], event["node"], event["old"], event["new"], event["status"]) == ("otto", sp_node.nodeid.to_string(), 40.0, 55.0, "Good")
        for bad in (100.5, -0.1, float("nan")):
            with pytest.raises(ua.UaStatusCodeError) as info:
                await sp_node.write_value(ua.DataValue(ua.Variant(bad, ua.VariantType.Double)))
            assert info.value.code == ua.StatusCodes.BadOutOfRange
        with pytest.raises(ua.UaStatusCodeError) as info:
            await (await _node(client, "Devices/plc/temp")).write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
        assert info.value.code == ua.StatusCodes.BadNotWritable
        with pytest.raises(ua.UaStatusCodeError) as info:
            await sp_node.write_attribute(ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText("x"), ua.VariantType.LocalizedText)))
        assert info.value.code == ua.StatusCodes.BadUserAccessDenied
        assert writes.calls == [("plc.sp", 55.0)]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("user", "operator_thing", "admin_thing"),
    [("vera", "BadUserAccessDenied", "BadUserAccessDenied"), ("otto", "Good", "BadUserAccessDenied"), ("ada", "Good", "Good")],
)
async def test_methods_are_guarded_by_role_and_handlers_see_the_callers_role(secure, client_certs, user, operator_thing, admin_thing) -> None:
    _, url, _, methods = secure
    methods.seen_roles.clear()
    async with await _secure_client(url, client_certs["trusted"], user=user) as client:
        root = await _node(client, "")
        root = client.get_node(ua.NodeId("gw", root.nodeid.NamespaceIndex))
        for name, expected in (("OperatorThing", operator_thing), ("AdminThing", admin_thing)):
            method = client.get_node(methods.ids[name])
            executable = (await method.read_attribute(ua.AttributeIds.UserExecutable)).Value.Value
            assert executable is (expected == "Good")
            if expected == "Good":
                assert await root.call_method(method) is True
            else:
                with pytest.raises(ua.UaStatusCodeError) as info:
                    await root.call_method(method)
                assert ua.StatusCode(info.value.code).name == expected
    assert methods.seen_roles == [PASSWORDS[user][1]] * [operator_thing, admin_thing].count("Good")


@pytest.mark.asyncio(loop_scope="module")
async def test_admin_may_write_but_may_not_reshape_the_address_space(secure, client_certs) -> None:
    _, url, writes, _ = secure
    writes.calls.clear()
    async with await _secure_client(url, client_certs["trusted"], user="ada") as client:
        await (await _node(client, "Devices/plc/sp")).write_value(ua.DataValue(ua.Variant(60.0, ua.VariantType.Double)))
        assert writes.calls == [("plc.sp", 60.0)]
        with pytest.raises(ua.UaStatusCodeError) as info:
            await client.nodes.objects.add_folder(ua.NodeId("intruder", 2), "intruder")
        assert info.value.code == ua.StatusCodes.BadUserAccessDenied
