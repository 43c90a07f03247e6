"""PeerLogFilter: asyncua warnings once per (peer, logger, template) per window, with a count."""

from __future__ import annotations

import logging

from edge.opcua.peer_logs import PeerLogFilter, current_peer


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def record(msg: str, *args: object, level: int = logging.WARNING, name: str = "asyncua.server.uaprocessor") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_repeats_of_one_peer_are_dropped_and_counted_then_reported() -> None:
    clock = Clock()
    f = PeerLogFilter(60.0, clock=clock)
    token = current_peer.set("10.0.0.7:50000")
    try:
        first = record("Received a request of type %d without an existing session", 631)
        assert f.filter(first)
        assert first.getMessage() == "Received a request of type 631 without an existing session (peer 10.0.0.7:50000)"
        assert not any(f.filter(record("Received a request of type %d without an existing session", 631)) for _ in range(99))
        assert f.suppressed == 99
        clock.t = 60.0
        later = record("Received a request of type %d without an existing session", 527)
        assert f.filter(later)
        assert later.getMessage().endswith("[99 similar suppressed]")
    finally:
        current_peer.reset(token)


def test_other_peers_templates_and_lower_levels_are_not_affected() -> None:
    f = PeerLogFilter(60.0, clock=Clock())
    for peer in ("a:1", "b:2"):
        token = current_peer.set(peer)
        try:
            assert f.filter(record("same text"))
            assert f.filter(record("other text"))
            assert f.filter(record("same text", name="asyncua.server.binary_server_asyncio"))
            assert all(f.filter(record("chatty", level=logging.INFO)) for _ in range(10))
        finally:
            current_peer.reset(token)
    assert f.suppressed == 0


def test_without_a_peer_the_template_alone_is_limited() -> None:
    f = PeerLogFilter(60.0, clock=Clock())
    assert f.filter(record("boom"))
    assert not f.filter(record("boom"))
