"""CPU cost of the northbound publish path per value, measured inside the server process, so that
it holds on a loaded machine where wall-clock throughput does not.

    python benchmarks/bench_publish_cost.py [--tags 2000] [--seconds 8] [--paths rows columns]

An ``OpcUaServer`` with K Double tags in this process; one lean subscriber
(``northbound_client.py``, another process) with one monitored item per tag (publishing interval
100 ms, queue 1); this process publishes a batch of all K tags every 100 ms through the registry,
as a driver does: a list of ``TagSample`` (``rows``) or one ``SampleColumns`` (``columns``, the
columnar path of ``edge.opcua.columnar``). Measured with ``time.process_time`` (CPU, not wall time):

* write: ``NodeWriter.write_batch`` per sample (DataValue, node, monitored items);
* pack: the publish callback's counting and bulk encoding of the notifications
  (``stats.notifications_in`` and ``wire.pack_result``) per notification sent;
* send: ``UaProcessor.send_response`` of the PublishResponses (encoding and the transport write)
  per notification sent (``SubscriptionStats.notifications_sent``);

printed as µs per value, with the notifications the client counted.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_opcua_mirror import _free_port  # noqa: E402


async def main(n: int, seconds: float, path: str) -> None:
    import numpy as np
    from asyncua import ua
    from asyncua.server.uaprocessor import UaProcessor

    from drivers.columns import SampleColumns
    from drivers.sample import Status, TagSample
    from edge.core.registry import TagInfo, TagRegistry
    from edge.opcua import stats
    from edge.opcua.publish import NodeWriter
    from edge.opcua.server import OpcUaServer

    acc = {"write": 0.0, "samples": 0, "send": 0.0, "responses": 0, "pack": 0.0}
    write_batch, send_response = NodeWriter.write_batch, UaProcessor.send_response
    pack_result, notifications_in = stats.pack_result, stats.notifications_in

    def timed_pack(result: ua.PublishResult) -> None:
        t = time.process_time()
        pack_result(result)
        acc["pack"] += time.process_time() - t

    def timed_count(result: ua.PublishResult) -> int:
        t = time.process_time()
        count = notifications_in(result)
        acc["pack"] += time.process_time() - t
        return count

    stats.pack_result, stats.notifications_in = timed_pack, timed_count  # type: ignore[assignment]

    async def timed_write(self: NodeWriter, batch: list[TagSample]) -> None:
        t = time.process_time()
        await write_batch(self, batch)
        acc["write"] += time.process_time() - t
        acc["samples"] += len(batch)

    def timed_send(self: UaProcessor, requesthandle: int, seqhdr: object, response: object, msgtype: object = ua.MessageType.SecureMessage) -> None:
        t = time.process_time()
        send_response(self, requesthandle, seqhdr, response, msgtype)
        if isinstance(response, ua.PublishResponse):
            acc["send"] += time.process_time() - t
            acc["responses"] += 1

    NodeWriter.write_batch = timed_write  # type: ignore[method-assign]
    UaProcessor.send_response = timed_send  # type: ignore[method-assign]
    reg = TagRegistry()
    keys = tuple(f"load.t{i}" for i in range(n))
    offsets = np.arange(n, dtype=np.float64)
    for i in range(n):
        reg.add(TagInfo(f"load.t{i}", ("Devices", "load", f"t{i}"), "float64", device="load", sampling_interval_s=0.1))
    port = _free_port()
    url = f"opc.tcp://127.0.0.1:{port}/edgetwin"
    async with OpcUaServer(reg, endpoint=url, namespace_uri="urn:bench:cost", gateway_name="gw") as server:
        assert server.subscriptions is not None
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).parent / "northbound_client.py"), url, "urn:bench:cost", "gw/Devices/load/t", str(n),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        value, started = 0.0, time.monotonic()
        while client.returncode is None and time.monotonic() - started < seconds + 60:
            if time.monotonic() - started > 12 and not acc.get("counting"):  # the client is subscribed and warm: count
                acc.update(write=0.0, samples=0, send=0.0, responses=0, pack=0.0, counting=1, sent0=server.subscriptions.notifications_sent)
            value += 1.0
            now = datetime.now(UTC)
            if path == "columns":
                reg.publish(SampleColumns.stamped(keys, offsets + value, Status.Good, now))
            else:
                reg.publish([TagSample(f"load.t{i}", value + i, Status.Good, now, now) for i in range(n)])
            await asyncio.sleep(0.1)
            if client.stdout is not None and client.stdout.at_eof():
                break
        sent = server.subscriptions.notifications_sent - acc.get("sent0", 0)
        out = (await client.communicate())[0].decode().strip()
    print(f"K = {n:,} tags, {path}: client: {out}")
    print(
        f"  write {1e6 * acc['write'] / max(acc['samples'], 1):6.1f} µs CPU per sample ({acc['samples']:,} samples); "
        f"pack {1e6 * acc['pack'] / max(sent, 1):6.1f} µs; "
        f"send {1e6 * acc['send'] / max(sent, 1):6.1f} µs CPU per notification ({sent:,} notifications in {acc['responses']} responses)"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--paths", nargs="+", default=["rows", "columns"], choices=["rows", "columns"], help="how the batches are published")
    args = ap.parse_args()
    for path in args.paths:
        asyncio.run(main(args.tags, args.seconds, path))
