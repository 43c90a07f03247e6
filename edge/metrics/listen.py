"""``[metrics] listen``: the address of the Prometheus endpoint. Pure: no socket is opened here."""

from __future__ import annotations

import ipaddress
import re

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def parse_listen(text: str) -> tuple[str, int]:
    """``"host:port"`` (IPv4, hostname, or ``[IPv6]:port``) -> (host, port); ValueError saying what is wrong.

    The host is required (``0.0.0.0`` to listen on every interface, ``127.0.0.1`` for this machine
    only); the port is 1..65535.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be 'host:port', e.g. '127.0.0.1:9108'")
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r}: an IPv6 address is written '[address]:port', e.g. '[::1]:9108'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{text!r}: must be 'host:port', e.g. '127.0.0.1:9108'")
        if ":" in host:
            raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. '[::1]:9108'")
        if not _HOSTNAME.match(host):
            raise ValueError(f"{text!r}: {host!r} is not a host name or IPv4 address")
        if host.replace(".", "").isdigit():
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{text!r}: {host!r} is not an IPv4 address") from None
    if not port_text.isdigit():
        raise ValueError(f"{text!r}: the port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: the port {port} is outside 1..65535")
    return host, port
