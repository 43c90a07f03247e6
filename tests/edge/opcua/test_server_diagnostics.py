"""Server/ServerDiagnostics/ServerDiagnosticsSummary counts what really happened: sessions created,
refused (and refused for security), aborted; subscriptions; refused requests."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, ua

from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.server import OpcUaServer
from edge.opcua.server_diagnostics import ServerCounters
from edge.opcua.users import Role, UserDirectory, UserEntry, hash_password, parse_password_hash

FAST = {"n": 1024}  # the lowest cost the config accepts: keeps these tests quick


def test_faults_are_counted_as_requests_and_sessions_by_kind() -> None:
    c = ServerCounters()
    c.fault(ua.StatusCodes.BadUserAccessDenied, session_request=True)
    c.fault(ua.StatusCodes.BadTooManyOperations, session_request=False)
    c.fault(ua.StatusCodes.BadCertificateUntrusted, session_request=False)
    c.fault(ua.StatusCodes.BadTimeout, session_request=True)
    assert (c.rejected_requests, c.security_rejected_requests, c.rejected_sessions, c.security_rejected_sessions) == (4, 2, 2, 1)


async def _summary(client: Client) -> ua.ServerDiagnosticsSummaryDataType:
    return await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerDiagnostics_ServerDiagnosticsSummary)).read_value()


async def test_a_client_reads_a_summary_true_to_what_happened(free_port: int) -> None:
    reg = TagRegistry()
    reg.add(TagInfo("plc.a", ("Devices", "plc", "a"), "float64", device="plc", sampling_interval_s=0.1))
    url = f"opc.tcp://127.0.0.1:{free_port}/edgetwin"
    users = UserDirectory([UserEntry("otto", parse_password_hash(hash_password("pw", **FAST)), Role.VIEWER)])
    async with OpcUaServer(reg, endpoint=url, namespace_uri="urn:test:diag", gateway_name="gw", users=users) as server:
        for password in ("wrong", "also wrong"):  # refused at ActivateSession: security
            bad = Client(url, timeout=5)
            bad.set_user("otto")
            bad.set_password(password)
            with pytest.raises(ua.UaError):
                await bad.connect()
            await bad.disconnect()
        client = Client(url, timeout=5)
        client.set_user("otto")
        client.set_password("pw")
        async with client:
            sub_a = await client.create_subscription(100, None)
            sub_b = await client.create_subscription(500, None)
            await sub_b.delete()
            await sub_a.subscribe_data_change(client.get_node(ua.NodeId("gw/Devices/plc/a", server.namespace_index)))
            with pytest.raises(ua.UaStatusCodeError):
                await _refused_request(client)
            await asyncio.sleep(1.3)  # the summary is written once a second
            s = await _summary(client)
            assert s.CurrentSessionCount == 1
            assert s.CumulatedSessionCount == 3
            assert (s.RejectedSessionCount, s.SecurityRejectedSessionCount) == (2, 2)
            assert (s.CurrentSubscriptionCount, s.CumulatedSubscriptionCount, s.PublishingIntervalCount) == (1, 2, 1)
            assert s.RejectedRequestsCount == s.SecurityRejectedRequestsCount == 3  # the query: BadUserAccessDenied for a viewer
            assert s.ServerViewCount == 0 and s.SessionTimeoutCount == 0
            leaf = ua.ObjectIds.Server_ServerDiagnostics_ServerDiagnosticsSummary_CumulatedSessionCount
            assert await client.get_node(ua.NodeId(leaf)).read_value() == 3
            assert await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerDiagnostics_EnabledFlag)).read_value() is True
        # a session dropped without CloseSession is an abort
        dropped = Client(url, timeout=5)
        dropped.set_user("otto")
        dropped.set_password("pw")
        await dropped.connect()
        dropped.uaclient.protocol.transport.close()
        await asyncio.sleep(0.3)
        assert server.summary is not None
        assert server.summary.counters.session_aborts == 1
        await dropped.disconnect()


async def _refused_request(client: Client) -> None:
    """A request the server answers with a ServiceFault (QueryFirst, which a viewer may not use)."""
    await client.uaclient.session._send_request(ua.QueryFirstRequest())
