"""A Modbus TCP fault-injection proxy, and a device that accepts connections but never answers.

``FaultProxy`` sits between the gateway and a device on 127.0.0.1 and acts per frame: Modbus TCP
frames are length-prefixed by their MBAP header (transaction id, protocol id, length, unit id),
so each direction is cut into whole frames and each frame may be

* dropped (``drop``): lost on the way, as on a lossy radio or a congested serial gateway;
* delayed (``delay_s`` plus up to ``jitter_s``): a slow device or link; frames keep their order;
* truncated (``truncate``): the PDU cut short, the MBAP length fixed to match, so the stream stays
  framed but the response is too short for what was asked;
* corrupted (``corrupt``): one byte after the function code (byte count or data) changed; the
  MBAP header and the function code are kept (TCP would never deliver a broken header, and a
  changed function code reads as an exception response, which a receiver must believe). Modbus
  TCP has no checksum of its own, so a changed data byte is a wrong value no receiver can detect;
* duplicated (``duplicate``): sent twice.

``direction`` limits the faults to requests or responses (default: both). Decisions come from one
``random.Random(seed)``, so a run is reproducible as far as the order of frames is. ``counts`` says
what was done. ``set_faults`` changes the faults of a running proxy; ``pause`` refuses new
connections and cuts the open ones (a device that goes away), ``resume`` accepts again.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from tests.drivers.loopback import LoopbackServer

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id, length (unit id + PDU), unit id


@dataclass(frozen=True)
class Faults:
    drop: float = 0.0
    delay_s: float = 0.0
    jitter_s: float = 0.0
    truncate: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    direction: Literal["both", "requests", "responses"] = "both"


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """One whole Modbus TCP frame (raises IncompleteReadError at the end of the stream)."""
    header = await reader.readexactly(MBAP.size)
    _, _, length, _ = MBAP.unpack(header)
    return header + await reader.readexactly(max(length - 1, 0))


class FaultProxy(LoopbackServer):
    """Listens on 127.0.0.1:*port* (0: any free port) and forwards to 127.0.0.1:*upstream_port*."""

    close_wait_s = 2.0

    def __init__(self, upstream_port: int, faults: Faults = Faults(), *, seed: int = 1, port: int = 0) -> None:
        super().__init__(port)
        self.upstream_port = upstream_port
        self.faults = faults
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults

    async def pause(self) -> None:
        """Stop listening and cut every open connection (the device goes away)."""
        await self.stop()

    async def resume(self) -> None:
        """Listen again on the same port."""
        await self.start()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self.track(up_writer)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(reader, up_writer, "requests"), name="proxy:requests")
                tg.create_task(self._pump(up_reader, writer, "responses"), name="proxy:responses")
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if up_writer is not None:
                self._writers.discard(up_writer)
                up_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        """Forward frames one by one, applying the faults; closing one side closes the other."""
        try:
            while True:
                frame = await read_frame(reader)
                self.counts[f"{direction}_frames"] += 1
                delay_s, frames = self._apply(frame, direction)
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                for out in frames:
                    writer.write(out)
                await writer.drain()
        finally:
            writer.close()

    def _apply(self, frame: bytes, direction: str) -> tuple[float, list[bytes]]:
        """The delay before sending, and the frames to send in place of *frame*."""
        f, rng = self.faults, self.rng
        if f.direction not in ("both", direction):
            return 0.0, [frame]
        if f.drop and rng.random() < f.drop:
            self.counts[f"{direction}_dropped"] += 1
            return 0.0, []
        if f.truncate and rng.random() < f.truncate and len(frame) > MBAP.size + 1:
            self.counts[f"{direction}_truncated"] += 1
            keep = rng.randrange(1, len(frame) - MBAP.size)  # PDU bytes kept, at least the function code
            tid, proto, _, unit = MBAP.unpack(frame[: MBAP.size])
            frame = MBAP.pack(tid, proto, keep + 1, unit) + frame[MBAP.size : MBAP.size + keep]
        if f.corrupt and rng.random() < f.corrupt and len(frame) > MBAP.size + 1:
            self.counts[f"{direction}_corrupted"] += 1
            i = rng.randrange(MBAP.size + 1, len(frame))
            frame = frame[:i] + bytes([frame[i] ^ rng.randrange(1, 256)]) + frame[i + 1 :]
        frames = [frame]
        if f.duplicate and rng.random() < f.duplicate:
            self.counts[f"{direction}_duplicated"] += 1
            frames.append(frame)
        return f.delay_s + (rng.random() * f.jitter_s if f.jitter_s else 0.0), frames


class HalfOpenDevice(LoopbackServer):
    """Accepts TCP connections on 127.0.0.1 and reads whatever comes, but never answers."""

    close_wait_s = 2.0

    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self.connections = 0
        self.frames = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            await read_frame(reader)
            self.frames += 1
