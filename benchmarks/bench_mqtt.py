"""10,000 tags changing every second published as Sparkplug B to Mosquitto, and the catch-up after an outage.

    python benchmarks/bench_mqtt.py [--tags 10000] [--seconds 20] [--outage 60]

Three processes on loopback, so each side's CPU is its own:

    broker      /usr/sbin/mosquitto on a free port (config in a temporary folder)
    gateway     this process: a registry with N float64 tags on 10 devices, a producer that changes
                every tag once a second (spread over 10 batches a second, each sample stamped with
                the wall clock), and the MQTT sink (edge.mqtt) with its defaults (QoS 1, 0.2 s batches)
    subscriber  this script with ``--subscribe``: decodes every DDATA and reports metrics per second
                and the latency (arrival minus the metric's timestamp) of the live ones

It prints: metrics/s delivered, latency p50/p99, the gateway's CPU (user+system over the window,
as % of one core; the producer alone is measured first and shown apart) and RSS; then, after
stopping the broker for ``--outage`` seconds while the producer goes on, the time from the
broker's restart until every spooled metric arrived and the catch-up rate (historical metrics/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MOSQUITTO = "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- subscriber (its own process) -------------------------------------------------------------------
async def subscribe(port: int) -> None:
    """Count DDATA metrics per second (live and historical) and live latencies; print JSON lines each second."""
    import aiomqtt

    from edge.mqtt.sparkplug import Payload

    live = hist = 0
    lat: list[float] = []
    last = time.monotonic()
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port, identifier="bench-sub", max_queued_incoming_messages=0) as client:
                await client.subscribe("spBv1.0/bench/DDATA/#", qos=1)
                print(json.dumps({"ready": True}), flush=True)
                async for msg in client.messages:
                    now_ms = time.time() * 1000
                    p = Payload.FromString(msg.payload)
                    for m in p.metrics:
                        if m.is_historical:
                            hist += 1
                        else:
                            live += 1
                            lat.append(now_ms - m.timestamp)
                    if time.monotonic() - last >= 1.0:
                        last = time.monotonic()
                        print(json.dumps({"t": time.time(), "live": live, "hist": hist, "lat": lat}), flush=True)
                        lat = []
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


# -- gateway side ---------------------------------------------------------------------------------
class Broker:
    def __init__(self, folder: Path, port: int) -> None:
        self.port = port
        self.conf = folder / "mosquitto.conf"
        import getpass

        self.conf.write_text(f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None


class Subscriber:
    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--subscribe", str(port)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.reports: list[dict] = []

    async def read(self) -> None:
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, self.proc.stdout.readline)
            if not line:
                return
            self.reports.append(json.loads(line))

    def counts(self) -> tuple[int, int]:
        last = next((r for r in reversed(self.reports) if "live" in r), {"live": 0, "hist": 0})
        return last["live"], last["hist"]

    def rate(self, since: float, until: float) -> float:
        """Live metrics per second between the first and the last report in [since, until] (the subscriber's clock)."""
        window = [r for r in self.reports if "live" in r and since <= r["t"] <= until]
        if len(window) < 2:
            return float("nan")
        return (window[-1]["live"] - window[0]["live"]) / (window[-1]["t"] - window[0]["t"])

    def latencies(self, since: float) -> list[float]:
        return [x for r in self.reports if r.get("t", 0) >= since for x in r["lat"]]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def produce(registry, keys: list[str], stop: asyncio.Event) -> None:
    """Change every tag once a second, in 10 batches a second."""
    from drivers.sample import Status, TagSample

    batches = [keys[i::10] for i in range(10)]
    tick = 0
    start = time.monotonic()
    while not stop.is_set():
        batch = batches[tick % 10]
        now = datetime.now(UTC)
        value = float(tick)
        registry.publish([TagSample(k, value, Status.Good, now, now) for k in batch])
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.1 - time.monotonic()))


async def run(args: argparse.Namespace) -> None:
    from edge.core.registry import TagInfo, TagRegistry
    from edge.mqtt.settings import MqttSection
    from edge.mqtt.sink import MqttSink

    folder = Path(tempfile.mkdtemp(prefix="bench_mqtt_"))
    port = _free_port()
    broker = Broker(folder, port)
    broker.start()
    sub = Subscriber(port)
    reader = asyncio.create_task(sub.read(), name="bench:subscriber")
    registry = TagRegistry()
    keys = []
    for i in range(args.tags):
        dev = f"dev{i % 10}"
        key = f"{dev}.t{i}"
        registry.add(TagInfo(key, ("Devices", dev, f"t{i}"), "float64", device=None))
        keys.append(key)
    stop = asyncio.Event()
    producer = asyncio.create_task(produce(registry, keys, stop), name="bench:producer")
    try:
        while not sub.reports:
            await asyncio.sleep(0.1)
        # the producer alone
        await asyncio.sleep(1)
        c0, w0 = _cpu_s(), time.monotonic()
        await asyncio.sleep(5)
        producer_cpu = (_cpu_s() - c0) / (time.monotonic() - w0) * 100
        cfg = MqttSection(broker=[f"mqtt://127.0.0.1:{port}"], client_id="bench-gw", sparkplug_group="bench", sparkplug_node="gw")
        async with MqttSink(cfg, registry, state_dir=folder / "state") as sink:
            await asyncio.sleep(3)  # births and warm-up
            c0, w0, t0 = _cpu_s(), time.monotonic(), time.time()
            await asyncio.sleep(args.seconds)
            wall = time.monotonic() - w0
            cpu = (_cpu_s() - c0) / wall * 100
            lat = sub.latencies(t0)
            delivered = sub.rate(t0, time.time())
            print(f"tags {args.tags}, each changing once a second, QoS 1, batches of {cfg.publish_interval_s} s")
            print(f"  delivered       {delivered:,.0f} metrics/s")
            print(f"  latency         p50 {_pct(lat, 0.5):.0f} ms, p99 {_pct(lat, 0.99):.0f} ms (production to the subscriber)")
            print(f"  gateway CPU     {cpu:.1f} % of one core (producer alone {producer_cpu:.1f} %, so the sink {cpu - producer_cpu:.1f} %)")
            print(f"  gateway RSS     {_rss_mb():.0f} MB")
            if args.outage > 0:
                _, hist0 = sub.counts()
                broker.stop()
                await asyncio.sleep(args.outage)
                produced_during = args.tags * args.outage
                broker.start()
                restarted = time.monotonic()
                while sink.stats.link_state in ("disconnected", "connecting"):
                    await asyncio.sleep(0.05)
                connected = time.monotonic()
                while sink.stats.link_state != "online":
                    await asyncio.sleep(0.05)
                drained = time.monotonic()
                while time.monotonic() - drained < 60:
                    await asyncio.sleep(0.5)
                    _, hist = sub.counts()
                    if hist - hist0 >= produced_during:
                        break
                _, hist = sub.counts()
                delivered = hist - hist0
                print(f"  outage          {args.outage:.0f} s: {delivered:,} historical metrics delivered ({produced_during:,.0f} produced during the outage)")
                print(f"  reconnect       {connected - restarted:.1f} s after the broker came back (the session's backoff)")
                rate = delivered / max(drained - connected, 1e-9)
                print(f"  catch-up        spool sent in {drained - connected:.1f} s: {rate:,.0f} historical metrics/s")
                print(f"  gateway RSS     {_rss_mb():.0f} MB after the catch-up")
    finally:
        stop.set()
        await producer
        sub.stop()
        reader.cancel()
        broker.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tags", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--outage", type=float, default=60.0)
    p.add_argument("--subscribe", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.subscribe:
        asyncio.run(subscribe(args.subscribe))
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
