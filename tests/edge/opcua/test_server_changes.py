"""Adding and deleting nodes on a running server (config reload), seen by a real asyncua Client."""

from __future__ import annotations

import asyncio

from asyncua import Client, ua

from drivers.sample import Status, TagSample, utcnow
from edge.core.health import DeviceHealth
from edge.core.registry import TagInfo, TagRegistry
from edge.opcua.server import OpcUaServer

NS = "urn:edgetwin:changes"


def _device(reg: TagRegistry, device: str, *tags: str, writable: bool = False) -> list[TagInfo]:
    infos = [TagInfo(f"{device}.{t}", ("Devices", device, t), "float64", "degC", 0.0, 100.0, writable=writable, device=device) for t in tags]
    infos += DeviceHealth(device).infos()
    for info in infos:
        reg.add(info)
    return infos


class _Changes:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    def datachange_notification(self, node, val, data) -> None:
        self.statuses.append(data.monitored_item.Value.StatusCode.value)


async def _children(client: Client, ns: int, *path: str) -> set[str]:
    node = client.get_node(ua.NodeId("/".join(("gw", *path)), ns))
    return {(await c.read_browse_name()).Name for c in await node.get_children()}


async def test_nodes_added_and_deleted_while_a_session_stays(free_port_factory) -> None:
    """Added keys get the NodeIds the builder gives at start (with the device's object, its
    diagnostics and their mirrors); deleted keys and the objects they leave empty are gone; a
    subscription on a deleted node gets BadNodeIdUnknown; writes follow the new set of nodes."""
    reg = TagRegistry()
    _device(reg, "plc", "temp", "level")
    writes: list[tuple[str, object]] = []

    async def handler(key: str, value: object) -> int:
        writes.append((key, value))
        return Status.Good

    url = f"opc.tcp://127.0.0.1:{free_port_factory()}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri=NS, gateway_name="gw", write_handler=handler) as server, Client(url, timeout=5) as client:
        ns = await client.get_namespace_index(NS)
        level = client.get_node(ua.NodeId("gw/Devices/plc/level", ns))
        changes = _Changes()
        sub = await client.create_subscription(20, changes)
        await sub.subscribe_data_change([level])

        # a new device with a writable tag, and a tag less on the old one
        added = _device(reg, "pump", "speed", writable=True)
        await server.add_tags(added)
        await server.remove_tags(["plc.level"])
        reg.remove(["plc.level"])
        await server.prune()

        assert "pump" in await _children(client, ns, "Devices") and "pump" in await _children(client, ns, "Diagnostics")
        assert {"speed", "LinkState", "ReadsOk"} <= await _children(client, ns, "Devices", "pump")  # tag and diagnostics mirror
        assert "level" not in await _children(client, ns, "Devices", "plc")
        dv = await level.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown
        for _ in range(50):
            if ua.StatusCodes.BadNodeIdUnknown in changes.statuses:
                break
            await asyncio.sleep(0.05)
        assert ua.StatusCodes.BadNodeIdUnknown in changes.statuses

        speed = client.get_node(ua.NodeId("gw/Devices/pump/speed", ns))
        now = utcnow()
        reg.publish([TagSample("pump.speed", 42.0, Status.Good, now, now), TagSample("pump.speed", 42.0, Status.Good, now, now)])
        await server.drain()
        assert (await speed.read_value()) == 42.0
        await speed.write_value(ua.DataValue(ua.Variant(50.0, ua.VariantType.Double)))
        assert writes == [("pump.speed", 50.0)]
        eu = await speed.get_child(["0:EngineeringUnits"])
        assert (await eu.read_value()).DisplayName.Text == "°C"

        # the whole device goes: its object, its diagnostics folder and the mirrors
        pump_keys = [i.key for i in added]
        await server.remove_tags(pump_keys)
        reg.remove(pump_keys)
        await server.prune()
        assert "pump" not in await _children(client, ns, "Devices") and "pump" not in await _children(client, ns, "Diagnostics")
        with_status = await speed.read_data_value(raise_on_bad_status=False)
        assert with_status.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown

        # and comes back with the same NodeIds
        await server.add_tags(_device(reg, "pump", "speed", writable=True))
        assert (await client.nodes.objects.get_child([f"{ns}:gw", f"{ns}:Devices", f"{ns}:pump", f"{ns}:speed"])).nodeid == speed.nodeid
        temp = await client.get_node(ua.NodeId("gw/Devices/plc/temp", ns)).read_data_value(raise_on_bad_status=False)
        assert temp.StatusCode.value == ua.StatusCodes.BadWaitingForInitialData  # untouched
        await sub.delete()
