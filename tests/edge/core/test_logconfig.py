"""Log output as it is written: JSON lines that always parse (NaN and infinities as strings, at any
depth; library records too), levels per component, journald priority prefixes."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog

from edge.core.logconfig import configure_logging, json_safe
from edge.core.loglevels import check_component, level_for


def _strict(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"not valid JSON: {constant} in {line!r}")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def log_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real file as the log stream; structlog and the stdlib root logger are restored afterwards."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("asyncua").level)
    path = tmp_path / "log.jsonl"
    try:
        yield path
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("asyncua").setLevel(saved[2])


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_non_finite_floats_are_strings_at_any_depth(log_file: Path) -> None:
    with log_file.open("w") as stream:
        configure_logging("info", json=True, stream=stream)
        log = structlog.get_logger("edge.opcua.writes")
        log.warning(
            "write_rejected",
            value=math.nan,
            limits=(-math.inf, math.inf),
            nested={"a": [1.5, {"b": float("nan")}], "c": {np.float32("inf")}},
            numpy=np.float64("-inf"),
            numpy32=np.float32("nan"),
            fine=2.5,
            count=3,
        )
        logging.getLogger("asyncua.server").warning("library says %s", float("nan"))
    lines = _lines(log_file)
    assert len(lines) == 2
    event = _strict(lines[0])
    assert event["event"] == "write_rejected" and event["level"] == "warning" and event["logger"] == "edge.opcua.writes"
    assert event["value"] == "NaN" and event["limits"] == ["-Infinity", "Infinity"]
    assert event["nested"] == {"a": [1.5, {"b": "NaN"}], "c": ["Infinity"]}
    assert event["numpy"] == "-Infinity" and event["numpy32"] == "NaN" and event["fine"] == 2.5 and event["count"] == 3
    library = _strict(lines[1])  # a library's stdlib record: JSON as well
    assert library["event"] == "library says nan" and library["logger"] == "asyncua.server" and library["level"] == "warning"


def test_exceptions_are_one_json_line(log_file: Path) -> None:
    with log_file.open("w") as stream:
        configure_logging("info", json=True, stream=stream)
        try:
            raise ValueError("broken")
        except ValueError as exc:
            structlog.get_logger("edge.core.tasks").error("task_crashed", error=repr(exc), exc_info=exc)
    (line,) = _lines(log_file)
    assert "ValueError: broken" in _strict(line)["exception"]


def test_levels_per_component(log_file: Path) -> None:
    with log_file.open("w") as stream:
        configure_logging("warning", levels={"drivers.modbus": "debug", "edge.core": "error", "asyncua": "info"}, json=True, stream=stream)
        structlog.get_logger("drivers.modbus.bus").debug("modbus_transport_closed")  # component at debug
        structlog.get_logger("drivers.opcua_client").info("dropped_info")  # default: warning
        structlog.get_logger("drivers.opcua_client").warning("kept_warning")
        structlog.get_logger("edge.core.supervisor").warning("dropped_warning")  # edge.core at error
        structlog.get_logger("edge.core.supervisor").error("kept_error")
        structlog.get_logger("edge.app").info("dropped_app_info")
        logging.getLogger("asyncua.client").info("asyncua_info")  # library component at info
        logging.getLogger("pymodbus.logging").info("dropped_pymodbus_info")
    events = [_strict(line)["event"] for line in _lines(log_file)]
    assert events == ["modbus_transport_closed", "kept_warning", "kept_error", "asyncua_info"]


def test_journal_stream_gets_syslog_priorities(log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with log_file.open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        configure_logging("debug", json=True, stream=stream)
        structlog.get_logger("edge.app").info("gateway_ready")
        structlog.get_logger("edge.app").warning("device_unreachable")
        structlog.get_logger("edge.app").error("gateway_failed")
        logging.getLogger("asyncua").error("library_error")
    lines = _lines(log_file)
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>", "<3>"]
    assert [_strict(line[3:])["event"] for line in lines] == ["gateway_ready", "device_unreachable", "gateway_failed", "library_error"]


def test_another_stream_gets_no_priorities(log_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")  # the journal is some other file
    with log_file.open("w") as stream:
        configure_logging("info", json=True, stream=stream)
        structlog.get_logger("edge.app").info("gateway_ready")
    assert _strict(_lines(log_file)[0])["event"] == "gateway_ready"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("drivers.modbus.bus", 10), ("drivers.modbus", 10), ("drivers.modbusx", 30), ("drivers", 30), ("edge.core.tasks", 40), ("", 30)],
)
def test_level_for_takes_the_longest_prefix(name: str, expected: int) -> None:
    assert level_for(name, 30, {"drivers.modbus": 10, "edge.core": 40, "edge": 20}) == expected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("drivers.modbus", None),
        ("edge.core.supervisor", None),
        ("edge", None),
        ("asyncua", None),
        ("pymodbus.logging", None),
        ("drivers.modbsu", "did you mean 'drivers.modbus'"),
        ("edge.nothing_here", "unknown component"),
        ("no_such_library_xyz", "no module 'no_such_library_xyz'"),
        ("edge..core", "is not a logger name"),
        ("", "is not a logger name"),
    ],
)
def test_components(name: str, problem: str | None) -> None:
    got = check_component(name)
    assert (got is None) if problem is None else (got is not None and problem in got)


def test_json_safe_keeps_finite_values() -> None:
    value = {"a": 1, "b": [1.0, "x", None, True], "c": (2,)}
    assert json_safe(value) == {"a": 1, "b": [1.0, "x", None, True], "c": [2]}
