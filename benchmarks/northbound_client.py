"""A lean OPC UA subscriber for the northbound benchmark: counts data-change notifications and
their latency without building a Python object per notification.

asyncua's client decodes every MonitoredItemNotification into dataclasses (tens of µs each), so
it cannot take 100,000 notifications/s. This client uses asyncua only to connect, open the session
and create the subscription and its monitored items (one request per 1,000 items); then it runs
its own publish loop with several PublishRequests in flight (asyncua's has one, which adds a round
trip to every publishing cycle) and reads each PublishResponse in place:

* the response header is decoded with asyncua (once per response);
* for each DataChangeNotification (ExtensionObject 811) it walks the MonitoredItemNotifications
  with ``struct.unpack_from``: client handle, the DataValue's mask, the variant's size (fixed-size
  scalars and strings skipped by length; anything else decoded by asyncua), status code and the
  source timestamp. Every notification counts; its latency is the arrival time of its response
  (``time.time()`` when the response is read) minus its source timestamp.

Used as a module (``measure``) by ``bench_northbound.py``, or alone:

    python benchmarks/northbound_client.py opc.tcp://127.0.0.1:4840/edgetwin urn:ns gw/Devices/load/t 1000
"""

from __future__ import annotations

import asyncio
import struct
import sys
import time
from array import array
from dataclasses import dataclass, field

import numpy as np
from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import nodeid_from_binary, struct_from_binary, variant_from_binary

EPOCH_TICKS = 116444736000000000  # 1601-01-01 -> 1970-01-01 in 100 ns ticks
DATA_CHANGE = 811  # DataChangeNotification_Encoding_DefaultBinary
# scalar variant types of a fixed size: Boolean .. Double, DateTime, Guid, StatusCode
FIXED = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 8, 9: 8, 10: 4, 11: 8, 13: 8, 14: 16, 19: 4}
LENGTH_PREFIXED = {12, 15, 16}  # String, ByteString, XmlElement
_I32 = struct.Struct("<i")
_Q = struct.Struct("<q")


@dataclass
class Tally:
    """What one client received while counting."""

    counting: bool = False
    notifications: int = 0
    responses: int = 0
    latencies: array = field(default_factory=lambda: array("d"))


def _skip_variant(raw: bytes, pos: int) -> int:
    enc = raw[pos]
    kind = enc & 0x3F
    if not enc & 0x80:
        size = FIXED.get(kind)
        if size is not None:
            return pos + 1 + size
        if kind in LENGTH_PREFIXED:
            n = _I32.unpack_from(raw, pos + 1)[0]
            return pos + 5 + max(n, 0)
    buf = Buffer(raw, pos)
    variant_from_binary(buf)
    return buf._cur_pos  # asyncua's Buffer: the read position


def _uniform_records(raw: bytes, pos: int, n: int) -> np.ndarray | None:
    """The *n* notifications at *pos* as one record array when they all share the first one's
    layout (same mask and fixed-size scalar variant type, no picoseconds), else None."""
    mask = raw[pos + 4]
    if n < 2 or mask & 0x30 or not mask & 1 or raw[pos + 5] & 0xC0 or (raw[pos + 5] & 0x3F) not in FIXED:
        return None
    fields: list[tuple[str, str]] = [("handle", "<u4"), ("mask", "u1"), ("vtype", "u1"), ("value", f"V{FIXED[raw[pos + 5] & 0x3F]}")]
    fields += [("status", "<u4")] if mask & 2 else []
    fields += [("source", "<i8")] if mask & 4 else []
    fields += [("server", "<i8")] if mask & 8 else []
    dtype = np.dtype(fields)
    if pos + n * dtype.itemsize > len(raw):
        return None
    rec = np.frombuffer(raw, dtype=dtype, count=n, offset=pos)
    if (rec["mask"] != mask).any() or (rec["vtype"] != raw[pos + 5]).any():
        return None
    return rec


def count_items(raw: bytes, pos: int, arrived: float, tally: Tally) -> int:
    """Walk the MonitoredItemNotifications of a DataChangeNotification body at *pos*; return
    how many there were. Notifications that all share one fixed layout (a server encoding a
    batch of Doubles) are read as one record array; any other body item by item."""
    n = _I32.unpack_from(raw, pos)[0]
    pos += 4
    lat = tally.latencies if tally.counting else None
    now_ticks = arrived * 1e7 + EPOCH_TICKS
    rec = _uniform_records(raw, pos, n)
    if rec is not None:
        if lat is not None and "source" in rec.dtype.names:
            lat.extend(((now_ticks - rec["source"]) / 1e7).tolist())
        return n
    for _ in range(max(n, 0)):
        mask = raw[pos + 4]
        pos += 5
        if mask & 1:
            pos = _skip_variant(raw, pos)
        if mask & 2:
            pos += 4
        if mask & 4:
            if lat is not None:
                lat.append((now_ticks - _Q.unpack_from(raw, pos)[0]) / 1e7)
            pos += 8
        if mask & 16:
            pos += 2
        if mask & 8:
            pos += 8
        if mask & 32:
            pos += 2
    return max(n, 0)


def read_publish_response(data: Buffer, tally: Tally) -> tuple[int, int, bool]:
    """(subscription id, sequence number or 0 for a keep-alive, more notifications) of one
    PublishResponse; its notifications go to *tally*."""
    arrived = time.time()
    nodeid_from_binary(data)
    header = struct_from_binary(ua.ResponseHeader, data)
    header.ServiceResult.check()
    raw = bytes(data)
    sub_id, n_avail = struct.unpack_from("<Ii", raw, 0)
    pos = 8 + 4 * max(n_avail, 0)
    more = bool(raw[pos])
    seq, _publish_time, n_data = struct.unpack_from("<Iqi", raw, pos + 1)
    pos += 17
    for _ in range(max(n_data, 0)):
        buf = Buffer(raw, pos)
        type_id = nodeid_from_binary(buf)
        pos = buf._cur_pos
        encoding = raw[pos]
        pos += 1
        if not encoding & 1:
            continue
        length = _I32.unpack_from(raw, pos)[0]
        pos += 4
        if type_id.Identifier == DATA_CHANGE and type_id.NamespaceIndex == 0:
            got = count_items(raw, pos, arrived, tally)
            if tally.counting:
                tally.notifications += got
        pos += length
    if tally.counting:
        tally.responses += 1
    return sub_id, (seq if n_data > 0 else 0), more


async def subscribe(client: Client, ns: int, paths: list[str], publishing_ms: float, queue: int) -> int:
    session = client.uaclient.session
    request = ua.CreateSubscriptionRequest()
    request.Parameters = ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=publishing_ms, RequestedLifetimeCount=10_000, RequestedMaxKeepAliveCount=1_000, PublishingEnabled=True
    )
    response = struct_from_binary(ua.CreateSubscriptionResponse, await session._send_request(request))
    response.ResponseHeader.ServiceResult.check()
    sub_id = response.Parameters.SubscriptionId
    for start in range(0, len(paths), 1000):
        items = [
            ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=ua.NodeId(p, ns), AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting,
                RequestedParameters=ua.MonitoringParameters(ClientHandle=start + i, SamplingInterval=-1, QueueSize=queue, DiscardOldest=True),
            )
            for i, p in enumerate(paths[start : start + 1000])
        ]
        req = ua.CreateMonitoredItemsRequest()
        req.Parameters = ua.CreateMonitoredItemsParameters(SubscriptionId=sub_id, TimestampsToReturn=ua.TimestampsToReturn.Both, ItemsToCreate=items)
        resp = struct_from_binary(ua.CreateMonitoredItemsResponse, await session._send_request(req))
        resp.ResponseHeader.ServiceResult.check()
        bad = [r.StatusCode for r in resp.Results if not r.StatusCode.is_good()]
        if bad:
            raise RuntimeError(f"{len(bad)} monitored items refused, first {bad[0]}")
    return sub_id


async def publish_loop(client: Client, tally: Tally, acks: list[ua.SubscriptionAcknowledgement]) -> None:
    """One of the publish requests kept in flight: send, read, acknowledge on the next request."""
    session = client.uaclient.session
    while True:
        request = ua.PublishRequest()
        request.Parameters.SubscriptionAcknowledgements = acks[:]
        acks.clear()
        data = await session._send_request(request, timeout=0)
        sub_id, seq, _ = read_publish_response(data, tally)
        if seq:
            acks.append(ua.SubscriptionAcknowledgement(SubscriptionId=sub_id, SequenceNumber=seq))


@dataclass
class LeanClient:
    """One connected client with one subscription on *paths*, counting while ``tally.counting``."""

    url: str
    ns_uri: str
    paths: list[str]
    publishing_ms: float = 100.0
    queue: int = 1
    in_flight: int = 4
    tally: Tally = field(default_factory=Tally)

    async def run(self, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
        # a long watchdog: asyncua's 1 s server-state probe drops the connection of a busy server
        async with Client(self.url, timeout=120, watchdog_intervall=30.0) as client:
            ns = await client.get_namespace_index(self.ns_uri)
            await subscribe(client, ns, self.paths, self.publishing_ms, self.queue)
            acks: list[ua.SubscriptionAcknowledgement] = []
            async with asyncio.TaskGroup() as tg:
                loops = [tg.create_task(publish_loop(client, self.tally, acks), name=f"bench:publish:{i}") for i in range(self.in_flight)]
                if ready is not None:
                    ready.set()
                await (stop.wait() if stop is not None else asyncio.Event().wait())
                for task in loops:
                    task.cancel()


async def measure(url: str, ns_uri: str, paths: list[str], *, clients: int = 1, seconds: float = 10.0, warmup: float = 3.0) -> list[Tally]:
    """Run *clients* lean clients on *paths*; after *warmup* seconds count for *seconds*."""
    lean = [LeanClient(url, ns_uri, paths) for _ in range(clients)]
    ready = [asyncio.Event() for _ in lean]
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for i, (c, r) in enumerate(zip(lean, ready, strict=True)):
            tg.create_task(c.run(r, stop), name=f"bench:client:{i}")
        for r in ready:
            await r.wait()
        await asyncio.sleep(warmup)
        for c in lean:
            c.tally.counting = True
        await asyncio.sleep(seconds)
        for c in lean:
            c.tally.counting = False
        stop.set()
    return [c.tally for c in lean]


def main() -> None:
    url, ns_uri, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    clients = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    seconds = 10.0
    t0 = time.process_time()
    tallies = asyncio.run(measure(url, ns_uri, [f"{prefix}{i}" for i in range(n)], clients=clients, seconds=seconds))
    got = sorted(x for t in tallies for x in t.latencies)
    total = sum(t.notifications for t in tallies)
    print(f"{total / seconds:,.0f} notifications/s over {clients} client(s); client CPU {time.process_time() - t0:.1f} s", end="")
    if got:
        print(f"; latency p50 {1e3 * got[len(got) // 2]:.0f} ms p99 {1e3 * got[int(len(got) * 0.99)]:.0f} ms")
    else:
        print()


if __name__ == "__main__":
    main()
