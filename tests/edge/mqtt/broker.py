"""A real Mosquitto broker on a loopback port for the MQTT tests, and a Sparkplug subscriber.

``Mosquitto`` writes its config into a temporary folder and runs ``/usr/sbin/mosquitto`` as a
subprocess (plain listener, optional password file, optional TLS listener); ``stop``/``start``
restart the same broker on the same port. ``Recorder`` is the tests' own subscriber: it decodes
every Sparkplug payload with the gateway's schema and keeps (topic, payload) in arrival order.
"""

from __future__ import annotations

import asyncio
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from edge.mqtt.sparkplug import Payload

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def require_mosquitto() -> str:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run does it)")
    return MOSQUITTO


class Mosquitto:
    def __init__(
        self, folder: Path, port: int, *, passwords: dict[str, str] | None = None, tls: dict[str, Path] | None = None, tls_port: int | None = None
    ) -> None:
        self.exe = require_mosquitto()
        self.folder = folder
        self.port = port
        self.tls_port = tls_port
        self.proc: subprocess.Popen[bytes] | None = None
        # as root mosquitto would switch to the user "mosquitto", who cannot read the test's files
        lines = [f"user {getpass.getuser()}", "per_listener_settings false", "persistence false", "log_dest stderr", "log_type error", "log_type warning"]
        if passwords:
            pw = folder / "passwords"
            pw.write_text("".join(f"{u}:{p}\n" for u, p in passwords.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(pw)], check=True, capture_output=True)
            pw.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        lines += [f"listener {port} 127.0.0.1"]
        if tls is not None and tls_port is not None:
            lines += [f"listener {tls_port} 127.0.0.1", f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.log = folder / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Recorder:
    """Subscribe to *topic* and keep every message, decoded (Sparkplug) or raw (STATE, JSON)."""

    def __init__(self, port: int, topic: str = "spBv1.0/#", **client: Any) -> None:
        self.port = port
        self.topic = topic
        self.client_args = client
        self.messages: list[tuple[str, Any]] = []
        self.arrived: list[float] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run(), name="test:recorder")
        async with asyncio.timeout(10):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, **self.client_args) as client:
                    self.client = client
                    await client.subscribe(self.topic, qos=1)
                    self._ready.set()
                    async for msg in client.messages:
                        data = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                        topic = str(msg.topic)
                        decoded: Any = data
                        if topic.startswith("spBv1.0/") and "/STATE/" not in topic:
                            decoded = Payload.FromString(data)
                        self.messages.append((topic, decoded))
                        self.arrived.append(time.time())
                        self._changed.set()
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.1)

    def of(self, kind: str) -> list[tuple[str, Any]]:
        return [(t, p) for t, p in self.messages if t.split("/")[2:3] == [kind]]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                result = predicate()
                if result:
                    return result
                self._changed.clear()
                try:  # a message arrived, or look again (for conditions outside the recorder)
                    async with asyncio.timeout(0.05):
                        await self._changed.wait()
                except TimeoutError:
                    pass
