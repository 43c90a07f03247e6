"""The MQTT connection: building the aiomqtt client (TLS, password file, Will), publishing with an
acknowledgement that gives up when the link drops, and describing connection errors.

Reconnection is not here: the sink's session loop owns it (one owner of each reconnect loop).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from edge.mqtt.settings import MqttSection, parse_broker

# MQTT 3.1.1 CONNACK codes of a refused login
REFUSED = {4: "bad user name or password", 5: "not authorized"}
PENDING_CALLS_WARNING = 2000  # aiomqtt warns above this many publishes waiting: the spool is sent pipelined


def tls_context(settings: MqttSection, resolve: Callable[[str], Path]) -> ssl.SSLContext:
    """Verify the broker with ``ca_file`` (default: the system's CAs); present the client certificate if set."""
    ctx = ssl.create_default_context(cafile=str(resolve(settings.ca_file)) if settings.ca_file else None)
    if settings.cert_file and settings.key_file:
        ctx.load_cert_chain(str(resolve(settings.cert_file)), str(resolve(settings.key_file)))
    return ctx


def read_password(settings: MqttSection, resolve: Callable[[str], Path]) -> str | None:
    """The first line of ``password_file`` (read at each connect, so a new password needs no restart)."""
    if settings.password_file is None:
        return None
    text = resolve(settings.password_file).read_text(encoding="utf-8")
    return text.splitlines()[0] if text else ""


def make_client(settings: MqttSection, url: str, resolve: Callable[[str], Path], will: tuple[str, bytes] | None) -> aiomqtt.Client:
    """A client for broker *url* with the Will *will* (topic, payload; QoS 1, not retained)."""
    scheme, host, port = parse_broker(url)
    client = aiomqtt.Client(
        host,
        port,
        username=settings.username,
        password=read_password(settings, resolve),
        identifier=settings.client_id,
        will=aiomqtt.Will(will[0], will[1], qos=1, retain=False) if will is not None else None,
        tls_context=tls_context(settings, resolve) if scheme == "mqtts" else None,
        keepalive=settings.keepalive_s,
        timeout=settings.connect_timeout_s,
        clean_session=True,
        max_inflight_messages=100,
    )
    client.pending_calls_threshold = PENDING_CALLS_WARNING
    return client


def link_lost(client: aiomqtt.Client) -> asyncio.Future[Any]:
    """aiomqtt's own future that is done when the client's link is gone (aiomqtt 2.x, pinned in setup.py)."""
    return client._disconnected


async def publish_acked(client: aiomqtt.Client, lost: asyncio.Future[Any], topic: str, payload: bytes, *, qos: int, retain: bool = False) -> None:
    """Publish one message; with QoS 1 return once the broker acknowledged it. A lost link ends the
    wait at once with MqttError (aiomqtt alone would wait for the acknowledgement until its timeout).

    The message is handed to the client when the publish task first runs; tasks run in creation
    order, so concurrent calls keep their order on the wire.
    """
    if lost.done():
        raise aiomqtt.MqttError("not connected")
    pub = asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain))
    try:
        await asyncio.wait((pub, lost), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        pub.cancel()
        raise
    if not pub.done():
        pub.cancel()
        raise aiomqtt.MqttError("connection lost before the broker acknowledged a message")
    pub.result()


def describe(exc: BaseException) -> str:
    """The error text of a connection problem, with its cause when aiomqtt wraps one."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, aiomqtt.MqttError) and cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return text


def refused(exc: BaseException) -> bool:
    """Whether the broker refused the login (as opposed to being unreachable)."""
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    text = str(exc).lower()
    return value in REFUSED or "not authorized" in text or "bad user name" in text
