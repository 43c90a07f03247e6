"""ReconnectPolicy: capped delays for a device that was healthy a moment ago; probes end the wait
only when the port goes from closed to open."""

from __future__ import annotations

from edge.core.backoff import Backoff
from edge.core.reconnect import ReconnectPolicy


def policy() -> ReconnectPolicy:
    return ReconnectPolicy(Backoff(0.5, 30.0, jitter=0.0), recent_s=60.0, recent_cap_s=1.0)


def test_a_device_never_healthy_backs_off_to_the_maximum() -> None:
    p = policy()
    delays = []
    for _ in range(8):
        p.on_outage(0.0, healthy_before=False, connect_failed=True)
        delays.append(p.next_delay(1.0))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_recently_healthy_caps_the_delay_then_the_backoff_resumes() -> None:
    p = policy()
    p.on_data()
    p.on_outage(100.0, healthy_before=True, connect_failed=False)
    early = [p.next_delay(100.0 + t) for t in (1, 5, 20, 50)]
    late = p.next_delay(170.0)
    assert early == [0.5, 1.0, 1.0, 1.0] and late == 8.0
    p.on_data()  # data again: the backoff starts afresh
    assert p.next_delay(171.0) == 0.5


def test_a_probe_ends_the_wait_only_when_the_port_opens_after_being_closed() -> None:
    p = policy()
    p.on_outage(0.0, healthy_before=True, connect_failed=True)  # connection refused: port closed
    assert [p.probe_result(False), p.probe_result(False), p.probe_result(True)] == [False, False, True]


def test_a_port_open_all_along_does_not_end_the_wait() -> None:
    """A device that accepts and then does not answer (half-open) is retried at the backoff's pace."""
    p = policy()
    p.on_outage(0.0, healthy_before=True, connect_failed=False)  # the link died after connecting
    assert [p.probe_result(True) for _ in range(5)] == [False] * 5


def test_a_connect_that_fails_right_after_a_successful_probe_needs_a_new_close_open_change() -> None:
    """The port answers but the device refuses the session (e.g. no free connection slot): no storm."""
    p = policy()
    p.on_outage(0.0, healthy_before=False, connect_failed=True)
    assert p.probe_result(True)  # closed (connect failed) -> open: try now
    p.on_outage(1.0, healthy_before=False, connect_failed=True)  # and it failed again
    assert not p.probe_result(True)
    assert not p.probe_result(False) and p.probe_result(True)
