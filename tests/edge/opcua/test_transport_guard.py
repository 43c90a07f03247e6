"""ConnectionGuard admission, as a table: caps per address and overall, idle connections evicted first."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edge.opcua.transport import ConnectionGuard, TransportSettings


@dataclass(eq=False)
class Conn:
    address: str
    authenticated: bool = False
    opened: float = 0.0
    evicted: list[str] = field(default_factory=list)

    def evict(self, reason: str) -> None:
        self.evicted.append(reason)


def guard(total: int = 4, per_address: int = 2) -> ConnectionGuard:
    return ConnectionGuard(TransportSettings(max_connections=total, max_connections_per_address=per_address))


def test_below_the_caps_every_connection_is_admitted() -> None:
    g = guard()
    conns = [Conn("a"), Conn("a"), Conn("b"), Conn("b")]
    assert all(g.admit(c) for c in conns)
    assert g.connections == conns and g.counters["accepted"] == 4


def test_per_address_cap_evicts_that_address_oldest_idle_connection() -> None:
    g = guard(total=10, per_address=2)
    old, authed = Conn("a"), Conn("a", authenticated=True)
    other = Conn("b")
    for c in (old, authed, other):
        assert g.admit(c)
    new = Conn("a")
    assert g.admit(new)
    assert old.evicted and not authed.evicted and not other.evicted
    assert g.connections == [authed, other, new] and g.counters["evicted"] == 1


def test_total_cap_evicts_the_oldest_idle_connection_of_any_address() -> None:
    g = guard(total=3, per_address=3)
    a_auth, b_idle, c_idle = Conn("a", True), Conn("b"), Conn("c")
    for c in (a_auth, b_idle, c_idle):
        g.admit(c)
    client = Conn("d")
    assert g.admit(client)
    assert b_idle.evicted and not c_idle.evicted and not a_auth.evicted


@pytest.mark.parametrize(
    ("existing", "new_address", "admitted"),
    [
        ([("a", True), ("a", True)], "a", False),  # per-address cap, all have sessions
        ([("a", True), ("b", True), ("c", True), ("d", True)], "e", False),  # total cap, all have sessions
        ([("a", True), ("b", True), ("c", True), ("d", False)], "e", True),  # one idle: it goes
        ([("a", False), ("a", True)], "a", True),
    ],
)
def test_refused_only_when_every_candidate_has_a_session(existing: list[tuple[str, bool]], new_address: str, admitted: bool) -> None:
    g = guard(total=4, per_address=2)
    for addr, auth in existing:
        assert g.admit(Conn(addr, auth))
    assert g.admit(Conn(new_address)) is admitted
    assert g.counters["refused"] == (0 if admitted else 1)


def test_both_caps_at_once_evict_two_connections() -> None:
    g = guard(total=3, per_address=2)
    a1, a2, b1 = Conn("a"), Conn("a", True), Conn("b")
    for c in (a1, a2, b1):
        g.admit(c)
    # per-address: a1 goes; the total is then 2 < 3, so b1 stays
    assert g.admit(Conn("a"))
    assert a1.evicted and not b1.evicted and len(g.connections) == 3


def test_release_forgets_a_closed_connection_and_is_idempotent() -> None:
    g = guard()
    c = Conn("a")
    g.admit(c)
    g.release(c)
    g.release(c)
    assert g.connections == []


@pytest.mark.parametrize(
    "kwargs",
    [{"max_connections": 0}, {"max_connections_per_address": 0}, {"max_chunk_bytes": 1000}, {"max_message_bytes": 10_000}],
)
def test_bad_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        TransportSettings(**kwargs)


def test_asyncua_limits_allow_max_message_bytes_in_chunks() -> None:
    limits = TransportSettings(max_chunk_bytes=65535, max_message_bytes=1_000_000).asyncua_limits()
    assert limits.max_recv_buffer == 65535 and limits.max_message_size == 1_000_000
    assert limits.max_chunk_count * limits.max_recv_buffer >= 1_000_000


def test_config_limits_reach_the_server_options() -> None:
    from edge.config.models import OpcUaLimitsSection
    from edge.opcua.settings import limit_options

    defaults = limit_options(OpcUaLimitsSection())
    assert defaults["transport"] == TransportSettings()
    opts = limit_options(OpcUaLimitsSection(max_connections=7, max_connections_per_address=3, max_nodes_per_read=42, login_backoff_s=1.5))
    assert opts["transport"].max_connections == 7 and opts["transport"].max_connections_per_address == 3
    assert opts["operation_limits"].max_nodes_per_read == 42 and opts["logins"].initial_s == 1.5
