"""Test helper: the base of the small TCP servers the driver tests stage on 127.0.0.1.

A ``LoopbackServer`` listens on 127.0.0.1:*port* (0: any free port, read back into ``port``) and
owns its connections: ``stop`` closes the listener and every open connection and waits for their
handlers, so a test ends without leaked tasks. A subclass implements ``handle``; the end of the
peer's stream (``IncompleteReadError``, ``ConnectionError``) ends a connection quietly.
"""

from __future__ import annotations

import asyncio
from typing import Self


class LoopbackServer:
    close_wait_s = 1.0  # how long stop waits for the connection handlers to finish

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, cut every open connection and wait for their handlers. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            w.close()  # each handler then ends on its own (IncompleteReadError)
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=self.close_wait_s)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def track(self, writer: asyncio.StreamWriter) -> None:
        """Have ``stop`` close *writer* too (a connection the handler opened itself)."""
        self._writers.add(writer)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            self._conns.discard(task)
            writer.close()
