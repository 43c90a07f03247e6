"""``MetricsEndpoint``: the Prometheus HTTP endpoint, served on the gateway's event loop.

Served by ``asyncio.start_server`` rather than prometheus_client's threaded HTTP server, so a
scrape reads the counters on the thread that updates them (no dict changing size under a reader)
and there is no server thread to stop; only the text formatting of the collected samples runs in
a worker thread (``asyncio.to_thread``), so a large scrape does not stall the poll loops. ``GET /metrics`` answers the text exposition format of the
registry given (our own ``CollectorRegistry``: the gateway's collector plus process RSS and file
descriptors); any other path is 404, any other method 405. One request per connection
(``Connection: close``); a client that sends no complete request head within
``REQUEST_TIMEOUT_S`` is dropped.

Use as ``async with MetricsEndpoint(host, port, registry):``; leaving it closes the listener and
cancels (and awaits) any scrape still in flight, each a task named ``metrics:scrape``. A port that
cannot be bound raises ``MetricsEndpointError`` (an OSError) naming ``metrics.listen``.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Iterable
from contextlib import suppress

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from edge.metrics.collector import GatewayCollector

log = structlog.get_logger("edge.metrics")

REQUEST_TIMEOUT_S = 10.0
MAX_REQUEST_HEAD = 16 * 1024


class MetricsEndpointError(OSError):
    """The metrics endpoint could not listen (address in use, not an address of this machine)."""


def metrics_registry(collector: GatewayCollector) -> CollectorRegistry:
    """A registry of our own (never prometheus_client's global one): *collector* and the process
    figures (``process_resident_memory_bytes``, ``process_open_fds``, CPU seconds...)."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """Serve *registry* at ``http://host:port/metrics`` while the context is entered."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.scrapes = 0
        self.last_scrape_s = 0.0  # how long the last /metrics took to build
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def listen(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def __aenter__(self) -> MetricsEndpoint:
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port, limit=MAX_REQUEST_HEAD)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise MetricsEndpointError(f"metrics.listen {self.listen}: cannot listen: {reason}") from exc
        if self.port == 0:  # an ephemeral port (tests): report the one bound
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics_endpoint_started", url=f"http://{self.listen}/metrics")
        return self

    async def __aexit__(self, *exc: object) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        clients = list(self._clients)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        await server.wait_closed()
        log.info("metrics_endpoint_stopped", scrapes=self.scrapes)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.set_name("metrics:scrape")
        self._clients.add(task)
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return  # no complete request: nothing to answer
            status, body, content_type = await self._respond(head.split(b"\r\n", 1)[0])
            writer.write(_response(status, body, content_type))
            with suppress(ConnectionError):
                await writer.drain()
        finally:
            writer.close()
            self._clients.discard(task)

    async def _respond(self, request_line: bytes) -> tuple[str, bytes, str]:
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", b"bad request\n", "text/plain; charset=utf-8"
        method, target = parts[0], parts[1].split("?", 1)[0]
        if target != "/metrics":
            return "404 Not Found", b"not found: the metrics are at /metrics\n", "text/plain; charset=utf-8"
        if method != "GET":
            return "405 Method Not Allowed", b"only GET\n", "text/plain; charset=utf-8"
        started = time.perf_counter()
        # read the counters here, on the loop that updates them; format the text (most of the
        # cost: about 1 ms per 10 devices) in a worker thread, from those immutable samples
        families = list(self.registry.collect())
        body = await asyncio.to_thread(generate_latest, _Collected(families))
        self.last_scrape_s = time.perf_counter() - started
        self.scrapes += 1
        # text format 0.0.4: what every Prometheus release (and most other scrapers) reads; our
        # metric names are plain ASCII, so the body is the same in the newer 1.0.0 format
        return "200 OK", body, CONTENT_TYPE_PLAIN_0_0_4


class _Collected(Collector):
    """Metric families already collected (``generate_latest`` takes any collector)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _response(status: str, body: bytes, content_type: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    if status.startswith("405"):
        head += "Allow: GET\r\n"
    return (head + "\r\n").encode("latin-1") + body
