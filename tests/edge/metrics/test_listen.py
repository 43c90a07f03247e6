"""``[metrics] listen`` syntax (edge/metrics/listen.py): every accepted and refused form."""

from __future__ import annotations

import pytest

from edge.metrics.listen import parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("localhost:65535", ("localhost", 65535)),
        ("ipc-01.plant.local:9108", ("ipc-01.plant.local", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("[::]:9108", ("::", 9108)),
        (" 127.0.0.1:9108 ", ("127.0.0.1", 9108)),
    ],
)
def test_accepted(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be 'host:port'"),
        ("9108", "must be 'host:port'"),
        (":9108", "must be 'host:port'"),
        ("127.0.0.1", "must be 'host:port'"),
        ("127.0.0.1:", "is not a number"),
        ("127.0.0.1:http", "is not a number"),
        ("127.0.0.1:-1", "is not a number"),
        ("127.0.0.1:0", "outside 1..65535"),
        ("127.0.0.1:65536", "outside 1..65535"),
        ("300.0.0.1:9108", "not an IPv4 address"),
        ("::1:9108", "in brackets"),
        ("[::1]9108", "'[address]:port'"),
        ("[nothost]:9108", "not an IPv6 address"),
        ("bad_host!:9108", "not a host name"),
    ],
)
def test_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_listen(text)
