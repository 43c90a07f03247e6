"""Data-change notifications of Double values encoded as arrays: one ``tobytes`` per block.

A MonitoredItemNotification of a scalar Double with a status and both timestamps is, in asyncua's
encoding (``wire.encode_datavalue``), a fixed record: ClientHandle (u4), the DataValue mask (u1,
0x0F: value, status, both timestamps), the variant type (u1, 11 = Double), the value (f8), the
status code (u4), SourceTimestamp and ServerTimestamp (i8 ticks): 34 bytes. A Bad value has a
null variant (mask 0x0F, variant type 0, no value): 26 bytes. ``encode_rows`` fills a packed NumPy
structured array of each record type and returns its bytes; the order of the notifications in a
DataChangeNotification carries no meaning, so the Bad records follow the others.

``ColumnBlock`` is what a columnar monitored-item group (``edge.opcua.column_items``) puts into a
subscription's queue of data changes (``InternalSubscription._triggered_datachanges``, under a
negative key no monitored item has): a MonitoredItemNotification standing for all the
notifications of the group pending for the next publish. ``wire.pack_data_change`` writes its
bytes (``block.wire``) and counts its ``count`` notifications. ``tests/edge/opcua/test_column_wire.py``
compares the bytes with asyncua's encoder over generated values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from asyncua import ua

__all__ = ["BAD_RECORD", "GOOD_RECORD", "ColumnBlock", "encode_rows"]

GOOD_RECORD = np.dtype([("handle", "<u4"), ("mask", "u1"), ("vtype", "u1"), ("value", "<f8"), ("status", "<u4"), ("source", "<i8"), ("server", "<i8")])
BAD_RECORD = np.dtype([("handle", "<u4"), ("mask", "u1"), ("vtype", "u1"), ("status", "<u4"), ("source", "<i8"), ("server", "<i8")])
assert GOOD_RECORD.itemsize == 34 and BAD_RECORD.itemsize == 26  # packed: no alignment padding
_DOUBLE = int(ua.VariantType.Double)
_BAD = np.uint32(0x80000000)
_new = object.__new__


def encode_rows(handles: np.ndarray, values: np.ndarray, status: np.ndarray, source: np.ndarray, server: np.ndarray) -> bytes:
    """The MonitoredItemNotifications (ClientHandle + DataValue) of these rows, as asyncua encodes
    them; a row whose status is Bad has a null value."""
    bad = (status & _BAD) != 0
    if not bad.any():
        good_rows = _records(GOOD_RECORD, handles, status, source, server)
        good_rows["vtype"] = _DOUBLE
        good_rows["value"] = values
        return good_rows.tobytes()
    ok = ~bad
    good_rows = _records(GOOD_RECORD, handles[ok], status[ok], source[ok], server[ok])
    good_rows["vtype"] = _DOUBLE
    good_rows["value"] = values[ok]
    bad_rows = _records(BAD_RECORD, handles[bad], status[bad], source[bad], server[bad])
    bad_rows["vtype"] = 0
    return good_rows.tobytes() + bad_rows.tobytes()


def _records(dtype: np.dtype, handles: np.ndarray, status: np.ndarray, source: np.ndarray, server: np.ndarray) -> np.ndarray:
    rows = np.empty(len(handles), dtype=dtype)
    rows["handle"] = handles
    rows["mask"] = 0x0F
    rows["status"] = status
    rows["source"] = source
    rows["server"] = server
    return rows


class ColumnBlock(ua.MonitoredItemNotification):
    """The pending notifications of one columnar group, encoded when first asked for (``freeze``)."""

    __slots__ = ("count", "group", "wire")

    count: int
    group: Any
    wire: bytes | None

    @classmethod
    def open(cls, group: Any) -> ColumnBlock:
        block = _new(cls)  # no dataclass __init__: ClientHandle and Value are never read (asyncua_patches.check_fast_path)
        block.ClientHandle = 0
        block.Value = None
        block.group, block.wire, block.count = group, None, 0
        return block

    def freeze(self) -> bytes:
        """The block's bytes; from now on the group starts a new block for what comes next."""
        if self.wire is None:
            self.wire, self.count = self.group.take(self)
            self.group = None
        return self.wire
