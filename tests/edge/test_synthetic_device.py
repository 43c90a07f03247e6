"""A gateway serves a synthetic device over OPC UA: a subscribed client sees every change, and a
writable tag takes a write within its limits and refuses one outside them."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import Client, ua

from edge.config import parse_config
from tests.gateway_task import running_gateway


async def test_a_gateway_serves_a_synthetic_device_to_a_subscribed_client_and_takes_writes(tmp_path, free_port) -> None:
    text = f"""
[gateway]
endpoint = "opc.tcp://127.0.0.1:{free_port}/edgetwin"
state_dir = "{tmp_path}"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "operator"

[[devices]]
name = "load"
driver = "synthetic"
interval_s = 0.05
pattern = "sine"
period_s = 2.0

  [[devices.tags]]
  name = "wave"
  units = "degC"

  [[devices.tags]]
  name = "sp"
  pattern = "constant"
  offset = 20.0
  writable = true
  low = 0.0
  high = 100.0
"""
    cfg = parse_config(text, str(tmp_path / "g.toml"))
    async with running_gateway(cfg, stop_s=10), Client(cfg.gateway.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(cfg.gateway.namespace_uri)
        wave = client.get_node(ua.NodeId(f"{cfg.gateway.name}/Devices/load/wave", ns))
        sp = client.get_node(ua.NodeId(f"{cfg.gateway.name}/Devices/load/sp", ns))
        seen: list[float] = []

        class Handler:
            def datachange_notification(self, node, val, data) -> None:
                seen.append(val)

        sub = await client.create_subscription(50, Handler())
        await sub.subscribe_data_change(wave)
        await asyncio.sleep(1.0)
        assert len(set(seen)) >= 8 and all(-1.0 <= v <= 1.0 for v in seen)  # a sine of amplitude 1 around 0
        await sp.write_value(ua.DataValue(ua.Variant(42.0, ua.VariantType.Double)))

        async def written() -> bool:
            return await sp.read_value() == 42.0

        async with asyncio.timeout(3):
            while not await written():
                await asyncio.sleep(0.05)
        with pytest.raises(ua.UaStatusCodeError) as info:
            await sp.write_value(ua.DataValue(ua.Variant(101.0, ua.VariantType.Double)))
        assert info.value.code == ua.StatusCodes.BadOutOfRange
        await sub.delete()
