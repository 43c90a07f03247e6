"""End to end over real sockets on loopback:

simulated plant (pymodbus server) -> Modbus TCP driver -> registry -> twin kernels -> OPC UA server
-> asyncua client (browse, read, subscribe, write-through, fault detection, clean shutdown).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from edge.config import load_config
from tests.gateway_task import running_gateway
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
NS = "urn:edgetwin:demo"

pytestmark = pytest.mark.slow


def _config(modbus_port: int, opcua_port: int, state_dir: Path, *, time_scale: float = 20.0):
    """The shipped demo config on free ports and a private state directory, with plant time running fast."""
    cfg = load_config(ROOT / "config" / "demo.toml")
    sim = cfg.simulator.model_copy(update={"port": modbus_port, "time_scale": time_scale, "tick_s": 0.05})
    gw = cfg.gateway.model_copy(update={"endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/edgetwin", "state_dir": str(state_dir)})
    dev = cfg.devices[0].model_copy(update={"port": modbus_port, "poll_interval_s": 0.05})
    asset = cfg.assets[0].model_copy(update={"tick_s": 0.1, "warmup_ticks": 10})
    return cfg.model_copy(update={"simulator": sim, "gateway": gw, "devices": [dev], "assets": [asset]})


class _Values:
    def __init__(self) -> None:
        self.seen: dict[str, list[ua.DataValue]] = {}

    def datachange_notification(self, node, val, data) -> None:
        self.seen.setdefault(node.nodeid.Identifier, []).append(data.monitored_item.Value)


async def test_plant_to_opcua_client(free_port_factory, tmp_path: Path) -> None:
    cfg = _config(free_port_factory(), free_port_factory(), tmp_path / "state")
    async with running_gateway(cfg, ready_s=15, stop_s=10) as gateway, Client(cfg.gateway.endpoint, timeout=5) as client:
        ns = await client.get_namespace_index(NS)

        def node(path: str):
            return client.get_node(ua.NodeId(f"edgetwin/{path}", ns))

        # --- browse: devices, assets, diagnostics
        root = await client.nodes.objects.get_child([f"{ns}:edgetwin"])
        assert {(await c.read_browse_name()).Name for c in await root.get_children()} == {"Devices", "Assets", "Diagnostics"}
        tags = {(await c.read_browse_name()).Name for c in await node("Devices/tank1_plc").get_children()}
        assert {"temperature", "flow", "motor_current", "pumped_volume", "heater_setpoint", "pump_enable"} <= tags
        outputs = {(await c.read_browse_name()).Name for c in await node("Assets/tank1/vibration").get_children()}
        assert outputs == {"Measured", "Estimate", "Forecast", "Residual", "AnomalyScore", "SensorFault"}
        diagnosis = {(await c.read_browse_name()).Name for c in await node("Assets/tank1/Diagnosis").get_children()}
        assert diagnosis == {"Fault", "Confidence", "Contributors", "Action", "RunnerUp", "RunnerUpConfidence"}
        assert await node("Assets/tank1/Diagnosis/Fault").read_value() == ""  # a normal plant

        # --- read: every device tag Good with a plausible engineering value
        async def all_good() -> bool:
            dvs = [await node(f"Devices/tank1_plc/{t}").read_data_value(raise_on_bad_status=False) for t in tags]
            return all(dv.StatusCode.is_good() for dv in dvs)

        await wait_for(all_good, 10, "every device tag to read Good")
        temp = await node("Devices/tank1_plc/temperature").read_data_value()
        assert 15.0 < temp.Value.Value < 60.0 and temp.SourceTimestamp is not None
        current = (await node("Devices/tank1_plc/motor_current").read_data_value()).Value.Value
        assert 0.5 < current < 50.0  # a CDAB float decoded in the wrong order would be absurd
        assert (await node("Diagnostics/tank1_plc/LinkState").read_value()) == "connected"
        assert (await node("Diagnostics/Gateway/KernelImplementation").read_value()) in ("cython", "numpy")

        # --- subscribe: measured and twin values change; twin warms up to Good
        handler = _Values()
        sub = await client.create_subscription(50, handler)
        watched = ["Devices/tank1_plc/vibration", "Assets/tank1/vibration/Estimate", "Assets/tank1/AnomalyScore", "Assets/tank1/Alarm"]
        await sub.subscribe_data_change([node(p) for p in watched])

        async def twin_warm() -> bool:
            dv = await node("Assets/tank1/AnomalyScore").read_data_value(raise_on_bad_status=False)
            return dv.StatusCode.is_good()

        await wait_for(twin_warm, 10, "the twin to warm up")
        await asyncio.sleep(3.0)  # a baseline of normal operation
        baseline = [dv.Value.Value for dv in handler.seen.get("edgetwin/Assets/tank1/AnomalyScore", []) if dv.StatusCode.is_good()]
        assert len(baseline) > 10
        estimates = {dv.Value.Value for dv in handler.seen["edgetwin/Assets/tank1/vibration/Estimate"] if dv.Value.Value is not None}
        measured = {dv.Value.Value for dv in handler.seen["edgetwin/Devices/tank1_plc/vibration"]}
        assert len(estimates) > 5 and len(measured) > 5
        assert max(baseline) < cfg.assets[0].alarm_threshold
        assert (await node("Assets/tank1/Alarm").read_value()) is False

        # --- write-through: operator sets the fault register via OPC UA, the plant obeys
        await node("Devices/tank1_plc/fault_select").write_value(ua.DataValue(ua.Variant(1, ua.VariantType.UInt16)))
        # write then read: the node shows the written value at once, Good (the next poll confirms it)
        written = await node("Devices/tank1_plc/fault_select").read_data_value()
        assert (written.Value.Value, written.StatusCode.is_good()) == (1, True)

        # out-of-range write is refused before it reaches the device
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await node("Devices/tank1_plc/heater_setpoint").write_value(ua.DataValue(ua.Variant(150.0, ua.VariantType.Double)))
        assert refused.value.code == ua.StatusCodes.BadOutOfRange

        # --- detection: bearing wear drives the anomaly score above its normal range
        async def alarm() -> bool:
            return (await node("Assets/tank1/Alarm").read_value()) is True

        await wait_for(alarm, 20, "the bearing-wear fault to raise the twin alarm")
        score = (await node("Assets/tank1/AnomalyScore").read_data_value()).Value.Value
        assert score > max(cfg.assets[0].alarm_threshold, 3 * max(baseline))
        await sub.delete()
    assert gateway.exception() is None


def test_cli_demo_starts_prints_endpoint_and_stops_cleanly_on_sigterm(tmp_path: Path, free_port_factory) -> None:
    """`edgetwin run` prints where to point a client and exits 0 within seconds of SIGTERM."""
    opcua_port, modbus_port = free_port_factory(), free_port_factory()
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace("127.0.0.1:4840", f"127.0.0.1:{opcua_port}").replace("port = 5020", f"port = {modbus_port}")
    cfg = tmp_path / "demo.toml"
    cfg.write_text(text)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "stderr.log"
    log_file = log_path.open("w")  # a file, not a pipe: an unread pipe would fill and block the gateway
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "Point your OPC UA client at" not in line:
            assert time.monotonic() < deadline, "no ready line"
            line = proc.stdout.readline()
            assert line or proc.poll() is None, log_path.read_text()
        assert f"opc.tcp://127.0.0.1:{opcua_port}/edgetwin" in line
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gateway did not stop within 10 s of SIGTERM; its log:\n{log_path.read_text()}")
        assert code == 0, log_path.read_text()
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_file.close()
    err = log_path.read_text()
    assert "gateway_stopped" in err and "Traceback" not in err
