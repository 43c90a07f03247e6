"""Config files for reload tests: the simulated plant as the device, two assets on different ticks."""

from __future__ import annotations

from pathlib import Path

NS = "urn:edgetwin:reload"

TEMPLATE = """
[gateway]
name = "edgetwin"
endpoint = "opc.tcp://127.0.0.1:{opc_port}/edgetwin"
namespace_uri = "{ns}"
state_dir = "{state}"

[opcua]
security_policies = ["None"]
allow_anonymous = true
anonymous_role = "operator"

[simulator]
enabled = true
port = {mb_port}
tick_s = 0.05

[history]
flush_interval_s = 0.2

[[devices]]
name = "tank1_plc"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {mb_port}
timeout_s = 1.0
poll_interval_s = 0.1

  [[devices.tags]]
  name = "temperature"
  address = "ir:0"
  type = "int16"
  scale = 0.1
  units = "degC"
  historize = true

  [[devices.tags]]
  name = "level"
  address = "ir:2"
  type = "int16"
  scale = 0.1
  units = "%"
{level_extra}
{pump_speed}
{flow}
{meter}
[[assets]]
name = "tank"
tick_s = 0.1
warmup_ticks = 3
alarm_threshold = {tank_threshold}

  [[assets.signals]]
  name = "temperature"
  tag = "tank1_plc.temperature"

[[assets]]
name = "vessel"
tick_s = 0.2
warmup_ticks = 3

  [[assets.signals]]
  name = "level"
  tag = "tank1_plc.level"
"""

PUMP_SPEED = """
  [[devices.tags]]
  name = "pump_speed"
  address = "ir:3"
  type = "int16"
  units = "rpm"
  historize = true
  alarm_high = 2900.0
"""

METER = """
[[devices]]
name = "meter"
driver = "modbus_tcp"
host = "127.0.0.1"
port = {mb_port}
poll_interval_s = 0.2

  [[devices.tags]]
  name = "power"
  address = "ir:3"
  type = "int16"
"""

FLOW = """
  [[devices.tags]]
  name = "flow"
  address = "ir:10"
  type = "float32"
  units = "l/min"
"""


def gateway_toml(opc_port: int, mb_port: int, state: Path, *, version: int = 1) -> str:
    """Version 1: device tank1_plc (temperature, level, pump_speed with a limit alarm) and device
    meter. Version 2: pump_speed removed, flow added, level historized, the meter device removed,
    the tank asset's alarm threshold changed (the vessel asset unchanged)."""
    v2 = version == 2
    return TEMPLATE.format(
        opc_port=opc_port,
        mb_port=mb_port,
        ns=NS,
        state=state,
        level_extra="  historize = true\n" if v2 else "",
        pump_speed="" if v2 else PUMP_SPEED,
        flow=FLOW if v2 else "",
        meter="" if v2 else METER.format(mb_port=mb_port),
        tank_threshold=12.0 if v2 else 9.0,
    )
