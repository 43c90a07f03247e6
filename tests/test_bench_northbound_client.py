"""The northbound benchmark's lean subscriber reads what asyncua encodes: the same count and the
same latencies whether a body is read as one record array or notification by notification."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.ua.ua_binary import struct_to_binary

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("northbound_client", ROOT / "benchmarks" / "northbound_client.py")
assert _spec is not None and _spec.loader is not None
client = importlib.util.module_from_spec(_spec)
sys.modules["northbound_client"] = client
_spec.loader.exec_module(client)


def _body(values: list[ua.DataValue]) -> bytes:
    items = [ua.MonitoredItemNotification(ClientHandle=i, Value=dv) for i, dv in enumerate(values)]
    return struct_to_binary(ua.DataChangeNotification(MonitoredItems=items))


def _read(raw: bytes, uniform: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[float]]:
    if not uniform:
        monkeypatch.setattr(client, "_uniform_records", lambda raw, pos, n: None)
    tally = client.Tally(counting=True)
    n = client.count_items(raw, 0, 1.7e9, tally)
    monkeypatch.undo()
    return n, list(tally.latencies)


T0 = datetime(2023, 11, 14, 22, 13, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "values",
    [
        [ua.DataValue(ua.Variant(float(i), ua.VariantType.Double), SourceTimestamp=T0 + timedelta(milliseconds=i), ServerTimestamp=T0) for i in range(50)],
        [
            ua.DataValue(ua.Variant(i, ua.VariantType.Int32), ua.StatusCode(ua.StatusCodes.Uncertain), SourceTimestamp=T0 - timedelta(seconds=i))
            for i in range(7)
        ],
        # mixed layouts: a Bad value (no variant) in the middle, a string
        [
            ua.DataValue(ua.Variant(1.0, ua.VariantType.Double), SourceTimestamp=T0, ServerTimestamp=T0),
            ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadCommunicationError), SourceTimestamp=T0, ServerTimestamp=T0),
            ua.DataValue(ua.Variant("x", ua.VariantType.String), SourceTimestamp=T0, ServerTimestamp=T0),
            ua.DataValue(ua.Variant(2.0, ua.VariantType.Double), SourceTimestamp=T0, ServerTimestamp=T0),
        ],
    ],
    ids=["doubles", "uncertain-int32", "mixed"],
)
def test_records_and_items_read_alike(values: list[ua.DataValue], monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _body(values)
    uniform = len({(dv.Value.VariantType if dv.Value else None, dv.StatusCode.value) for dv in values}) == 1
    assert (client._uniform_records(raw, 4, len(values)) is not None) == uniform  # the record path is taken when it can be
    fast = _read(raw, True, monkeypatch)
    slow = _read(raw, False, monkeypatch)
    assert fast[0] == slow[0] == len(values)
    assert fast[1] == pytest.approx(slow[1], abs=1e-6)
    expected = [(1.7e9 - dv.SourceTimestamp.timestamp()) for dv in values]
    assert slow[1] == pytest.approx(expected, abs=1e-3)
