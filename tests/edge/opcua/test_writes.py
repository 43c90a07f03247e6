"""Write-through from an OPC UA client to a real Modbus TCP server, through the whole daemon.

``run_gateway`` with a secure config (Basic256Sha256 SignAndEncrypt, an operator login, certificates
generated into a temporary state directory) polls an in-process pymodbus server; the client writes
over OPC UA and the test reads the registers on the Modbus side.
"""

from __future__ import annotations

import shutil

import pytest
import pytest_asyncio
from asyncua import Client, ua
from asyncua.crypto import security_policies as sp

from drivers.modbus.address import Area
from edge.config import parse_config
from edge.opcua.security import generate_certificate
from edge.opcua.users import hash_password
from tests.drivers.modbus_servers import PymodbusServer
from tests.gateway_task import running_gateway
from tests.waiting import wait_for

NS = "urn:edgetwin:writes-test"
CLIENT_URI = "urn:edgetwin:test:writer"

CONFIG = """
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{opcua_port}/edgetwin"
namespace_uri = "{ns}"
state_dir = "{state}"

[opcua]
security_policies = ["Basic256Sha256"]
security_modes = ["SignAndEncrypt"]
hostnames = ["127.0.0.1"]

  [[opcua.users]]
  name = "otto"
  password_hash = "{hash}"
  role = "operator"

[[devices]]
name = "plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 0.5
poll_interval_s = 0.05

  [[devices.tags]]
  name = "sp"
  address = "hr:5"
  type = "int16"
  scale = 0.1
  units = "%"
  low = 0.0
  high = 100.0
  writable = true

  [[devices.tags]]
  name = "run"
  address = "coil:3"
  type = "bool"
  writable = true
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def plant(tmp_path_factory, free_port_factory):
    root = tmp_path_factory.mktemp("writes")
    modbus = PymodbusServer(free_port_factory())
    await modbus.start()
    opcua_port = free_port_factory()
    text = CONFIG.format(opcua_port=opcua_port, modbus_port=modbus.port, ns=NS, state=root / "state", hash=hash_password("pw", n=1024))
    cfg = parse_config(text, str(root / "gateway.toml"))
    key, cert = root / "client_key.pem", root / "client_cert.der"
    generate_certificate(key, cert, common_name="writer", application_uri=CLIENT_URI, hostnames=["localhost"], days=1, server=False)
    try:
        async with running_gateway(cfg, ready_s=15, stop_s=10):
            trusted = root / "state" / "pki" / "trusted" / "certs"
            shutil.copy(cert, trusted / "writer.der")
            client = Client(cfg.gateway.endpoint, timeout=5)
            client.application_uri = CLIENT_URI
            client.set_user("otto")
            client.set_password("pw")
            await client.set_security(sp.SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt)
            async with client:
                ns = await client.get_namespace_index(NS)
                yield modbus, client, lambda path: client.get_node(ua.NodeId(f"gw/{path}", ns))
    finally:
        await modbus.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_allowed_write_reaches_the_register_and_reads_back(plant) -> None:
    modbus, _, node = plant
    sp_node = node("Devices/plc/sp")
    await sp_node.write_value(ua.DataValue(ua.Variant(42.5, ua.VariantType.Double)))
    assert await modbus.get(Area.HOLDING, 5, 1) == [425]

    async def read_back() -> bool:
        return await sp_node.read_value() == pytest.approx(42.5)

    await wait_for(read_back, 5, "the written setpoint to read back")
    await node("Devices/plc/run").write_value(ua.DataValue(ua.Variant(True, ua.VariantType.Boolean)))
    assert await modbus.get(Area.COIL, 3, 1) == [True]


@pytest.mark.asyncio(loop_scope="module")
async def test_refused_writes_never_reach_the_device(plant) -> None:
    modbus, _, node = plant
    before = await modbus.get(Area.HOLDING, 5, 1)
    for variant, code in (
        (ua.Variant(100.1, ua.VariantType.Double), ua.StatusCodes.BadOutOfRange),
        (ua.Variant(50, ua.VariantType.Int16), ua.StatusCodes.BadTypeMismatch),
        (ua.Variant([1.0, 2.0], ua.VariantType.Double), ua.StatusCodes.BadTypeMismatch),  # an array for a scalar with limits
        (ua.Variant([[1.0], [2.0]], ua.VariantType.Double, [2, 1]), ua.StatusCodes.BadTypeMismatch),  # a matrix
    ):
        with pytest.raises(ua.UaStatusCodeError) as info:
            await node("Devices/plc/sp").write_value(ua.DataValue(variant))
        assert info.value.code == code
    with pytest.raises(ua.UaStatusCodeError) as info:
        await node("Devices/plc/LinkState").write_value(ua.DataValue(ua.Variant("x", ua.VariantType.String)))
    assert info.value.code == ua.StatusCodes.BadNotWritable
    with pytest.raises(ua.UaStatusCodeError) as info:
        await node("Devices/plc/no_such_tag").write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
    assert info.value.code == ua.StatusCodes.BadNodeIdUnknown
    assert await modbus.get(Area.HOLDING, 5, 1) == before


@pytest.mark.asyncio(loop_scope="module")
async def test_write_while_the_device_is_down_returns_bad_no_communication(plant) -> None:
    """Runs last in the module: it stops the Modbus server."""
    modbus, _, node = plant
    await modbus.stop()

    async def down() -> bool:
        return await node("Diagnostics/plc/LinkState").read_value() != "connected"

    await wait_for(down, 5, "the gateway to notice the outage")
    with pytest.raises(ua.UaStatusCodeError) as info:
        await node("Devices/plc/sp").write_value(ua.DataValue(ua.Variant(10.0, ua.VariantType.Double)))
    assert info.value.code == ua.StatusCodes.BadNoCommunication
    dv = await node("Devices/plc/sp").read_data_value(raise_on_bad_status=False)
    assert dv.StatusCode.value == ua.StatusCodes.UncertainNoCommunicationLastUsableValue and dv.Value.Value == pytest.approx(42.5)
