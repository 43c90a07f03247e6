"""End to end: upstream asyncua server (secured, with a login) -> the gateway (run_gateway, an opcua
device in subscription mode) -> a northbound asyncua client subscription.

The northbound node shows the upstream value, its status code and its SourceTimestamp unchanged;
writes travel the other way and come back with the upstream server's status.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua

from drivers.sample import Status
from edge.config import load_config
from tests.drivers.opcua_client.upstream import PLANT, ServerCert, Upstream
from tests.gateway_task import running_gateway

pytestmark = pytest.mark.slow


class _Changes:
    def __init__(self) -> None:
        self.seen: dict[str, list[ua.DataValue]] = {}

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.seen.setdefault(node.nodeid.Identifier, []).append(data.monitored_item.Value)

    def last(self, nid: str) -> ua.DataValue | None:
        return self.seen.get(nid, [None])[-1]


def _config(tmp_path: Path, upstream: Upstream, cert: ServerCert, gateway_port: int) -> Path:
    shutil.copy(cert.cert, tmp_path / "plc.der")
    (tmp_path / "boiler.pw").write_text("s3cret\n")
    text = f"""
[gateway]
name = "gw"
endpoint = "opc.tcp://127.0.0.1:{gateway_port}/gw"
state_dir = "state"
backoff_initial_s = 0.1
backoff_max_s = 0.5

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "operator"

[[devices]]
name = "boiler"
driver = "opcua"
endpoint = "{upstream.endpoint}"
security_policy = "Basic256Sha256"
security_mode = "SignAndEncrypt"
server_certificate = "plc.der"
username = "alice"
password_file = "boiler.pw"
publishing_interval_s = 0.05
sampling_interval_s = 0.0
watchdog_s = 0.2

  [[devices.tags]]
  name = "temperature"
  node = "nsu={PLANT};s=Boiler.Temperature"
  type = "float64"
  units = "degC"

  [[devices.tags]]
  name = "setpoint"
  node = "nsu={PLANT};s=Boiler.Setpoint"
  type = "float64"
  writable = true

  [[devices.tags]]
  name = "small"
  node = "nsu={PLANT};s=Boiler.Small"
  type = "int8"

  [[devices.tags]]
  name = "vector"
  node = "nsu={PLANT};s=Boiler.Vector"
  type = "float64"
  array = true
"""
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


async def test_upstream_to_gateway_to_northbound_client(free_port_factory: Any, server_cert: ServerCert, tmp_path: Path) -> None:
    upstream = Upstream(free_port_factory(), policies=[("Basic256Sha256", "SignAndEncrypt")], cert=server_cert, users={"alice": "s3cret"})
    await upstream.start()
    cfg = load_config(_config(tmp_path, upstream, server_cert, free_port_factory()))
    try:
        async with running_gateway(cfg, ready_s=15), Client(cfg.gateway.endpoint, timeout=5) as client:
            ns = await client.get_namespace_index(cfg.gateway.namespace_uri)
            temp_id = "gw/Devices/boiler/temperature"
            temp = client.get_node(ua.NodeId(temp_id, ns))
            changes = _Changes()
            sub = await client.create_subscription(50, changes)
            await sub.subscribe_data_change(temp)

            async def until(cond: Any, what: str, timeout: float = 10.0) -> None:
                try:
                    async with asyncio.timeout(timeout):
                        while not cond():
                            await asyncio.sleep(0.02)
                except TimeoutError:
                    raise AssertionError(f"timed out waiting for {what}; seen {changes.seen.get(temp_id)}") from None

            def last() -> ua.DataValue | None:
                return changes.last(temp_id)

            await until(lambda: last() is not None and last().StatusCode.is_good() and last().Value.Value == 21.5, "the initial value")
            then = datetime(2023, 3, 4, 5, 6, 7, tzinfo=UTC)
            await upstream.set("Temperature", 30.25, source_time=then)
            await until(lambda: last().Value.Value == 30.25, "a change")
            dv = last()
            assert dv.SourceTimestamp.replace(tzinfo=UTC) == then
            assert dv.ServerTimestamp.replace(tzinfo=UTC) > then
            await upstream.set("Temperature", status=Status.BadSensorFailure, source_time=then)
            await until(lambda: last().StatusCode.value == Status.BadSensorFailure, "the upstream Bad status")
            assert last().Value.Value is None

            # the new node types: SByte, an array of Double
            small = client.get_node(ua.NodeId("gw/Devices/boiler/small", ns))
            assert await small.read_data_type_as_variant_type() == ua.VariantType.SByte
            assert await small.read_value() == -5
            vector = client.get_node(ua.NodeId("gw/Devices/boiler/vector", ns))
            assert await vector.read_value_rank() == ua.ValueRank.OneDimension
            assert await vector.read_value() == [1.0, 2.0, 3.0]

            # writes: through to the upstream node; its refusal comes back to the writer
            setpoint = client.get_node(ua.NodeId("gw/Devices/boiler/setpoint", ns))
            await setpoint.write_value(ua.DataValue(ua.Variant(75.0, ua.VariantType.Double)))
            assert await upstream.get("Setpoint") == 75.0
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await setpoint.write_value(ua.DataValue(ua.Variant(250.0, ua.VariantType.Double)))
            assert refused.value.code == Status.BadOutOfRange
            await sub.delete()
    finally:
        await upstream.stop()
    assert (cfg.state_path / "pki" / "client" / "own" / "cert.der").exists()
