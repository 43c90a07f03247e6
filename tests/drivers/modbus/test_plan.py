"""Read planning: gap bridging, request limits, unit/area grouping, and the covering property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.address import Area, RegisterPoint, make_point
from drivers.modbus.limits import MAX_GAP
from drivers.modbus.plan import ReadRequest, covered, plan_reads, split


def hr(address: int, type_: str = "uint16", *, unit_id: int = 1, name: str | None = None, **kw) -> RegisterPoint:
    return make_point(name=name or f"hr{address}", unit_id=unit_id, address=f"hr:{address}", type=type_, **kw)


def spans(requests: list[ReadRequest]) -> list[tuple[int, Area, int, int]]:
    return [(r.unit_id, r.area, r.start, r.count) for r in requests]


def test_empty() -> None:
    assert plan_reads([]) == []


def test_contiguous_points_share_one_request() -> None:
    pts = [hr(0), hr(1, "float32"), hr(3, "uint64")]
    (req,) = plan_reads(pts)
    assert (req.start, req.count, req.points) == (0, 7, tuple(pts))
    assert req.end == 7
    assert [req.offset_of(p) for p in pts] == [0, 1, 3]


@pytest.mark.parametrize(
    ("second", "max_gap", "expected"),
    [
        (11, 10, [(1, Area.HOLDING, 0, 12)]),  # 10 unused registers (1..10): bridged
        (12, 10, [(1, Area.HOLDING, 0, 1), (1, Area.HOLDING, 12, 1)]),  # 11 unused: split
        (1, 0, [(1, Area.HOLDING, 0, 2)]),  # adjacent is always merged
        (2, 0, [(1, Area.HOLDING, 0, 1), (1, Area.HOLDING, 2, 1)]),
    ],
)
def test_gap_bridging(second: int, max_gap: int, expected: list) -> None:
    assert spans(plan_reads([hr(0), hr(second)], max_gap=max_gap)) == expected


def test_register_limit() -> None:
    """A block never exceeds max_registers, even when the gap would be bridged."""
    pts = [hr(0), hr(100, "float32"), hr(124, "float32")]
    assert spans(plan_reads(pts, max_gap=MAX_GAP)) == [(1, Area.HOLDING, 0, 102), (1, Area.HOLDING, 124, 2)]
    assert spans(plan_reads(pts, max_gap=MAX_GAP, max_registers=10)) == [
        (1, Area.HOLDING, 0, 1),
        (1, Area.HOLDING, 100, 2),
        (1, Area.HOLDING, 124, 2),
    ]
    exact = [hr(0), hr(124)]  # exactly 125 registers
    assert spans(plan_reads(exact, max_gap=MAX_GAP)) == [(1, Area.HOLDING, 0, 125)]


def test_bit_limit() -> None:
    spread = [make_point(name=f"c{a}", address=f"coil:{a}", type="bool") for a in range(0, 2001, 100)]
    assert spans(plan_reads(spread, max_gap=MAX_GAP)) == [(1, Area.COIL, 0, 1901), (1, Area.COIL, 2000, 1)]
    coils = [make_point(name=f"c{a}", address=f"coil:{a}", type="bool") for a in (0, 5, 1999, 2000)]
    assert spans(plan_reads(coils, max_gap=MAX_GAP, max_bits=6)) == [
        (1, Area.COIL, 0, 6),
        (1, Area.COIL, 1999, 2),
    ]


def test_mixed_units_and_areas_never_share_a_request() -> None:
    pts = [
        hr(0, unit_id=2),
        make_point(name="i0", address="ir:0"),
        hr(0, name="a"),
        make_point(name="c0", address="coil:0", type="bool"),
        make_point(name="d0", address="di:0", type="bool"),
        hr(1, name="b"),
    ]
    assert spans(plan_reads(pts)) == [
        (1, Area.COIL, 0, 1),
        (1, Area.DISCRETE_INPUT, 0, 1),
        (1, Area.HOLDING, 0, 2),
        (1, Area.INPUT, 0, 1),
        (2, Area.HOLDING, 0, 1),
    ]


def test_overlapping_points_share_registers() -> None:
    """A uint32 and bits inside its registers are read once."""
    pts = [hr(10, "uint32"), make_point(name="b3", address="hr:10.3", type="bool"), make_point(name="b", address="hr:11.0", type="bool")]
    (req,) = plan_reads(pts)
    assert (req.start, req.count, set(req.points)) == (10, 2, set(pts))


def test_unsorted_input_and_repeats() -> None:
    a, b = hr(50), hr(0)
    requests = plan_reads([a, b, a], max_gap=0)
    assert spans(requests) == [(1, Area.HOLDING, 0, 1), (1, Area.HOLDING, 50, 1)]
    assert covered(requests) == [b, a]


def test_point_wider_than_limit_is_refused() -> None:
    s = make_point(name="serial", address="hr:0", type="string", length=20)
    with pytest.raises(ValueError, match=r"tag 'serial' needs 20 registers, more than the limit of 10"):
        plan_reads([s], max_registers=10)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_registers": 0}, "max_registers 0 is outside 1..125"),
        ({"max_registers": 126}, "max_registers 126 is outside 1..125"),
        ({"max_bits": 2001}, "max_bits 2001 is outside 1..2000"),
        ({"max_gap": -1}, "max_gap -1 is outside 0..124"),
        ({"max_gap": 125}, "max_gap 125 is outside 0..124"),
    ],
)
def test_limits_are_checked(kw: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        plan_reads([hr(0)], **kw)
    assert str(info.value) == message


def test_split_isolates_spans() -> None:
    """split() gives one request per distinct address span; points on the same span stay together."""
    u32 = hr(10, "uint32")
    bit_a = make_point(name="a", address="hr:12.0", type="bool")
    bit_b = make_point(name="b", address="hr:12.5", type="bool")
    far = hr(20)
    (req,) = plan_reads([u32, bit_a, bit_b, far])
    parts = split(req)
    assert spans(parts) == [(1, Area.HOLDING, 10, 2), (1, Area.HOLDING, 12, 1), (1, Area.HOLDING, 20, 1)]
    assert parts[1].points == (bit_a, bit_b)
    assert sorted(covered(parts), key=lambda p: p.name) == sorted(req.points, key=lambda p: p.name)
    assert split(parts[1]) == [parts[1]]


# -- properties ----------------------------------------------------------------------------------

_TYPES = st.sampled_from(["uint16", "int32", "float32", "float64", "uint64"])


@st.composite
def points(draw: st.DrawFn) -> list[RegisterPoint]:
    n = draw(st.integers(0, 40))
    result = []
    for i in range(n):
        unit_id = draw(st.integers(1, 3))
        kind = draw(st.sampled_from(["hr", "ir", "coil", "di", "bit"]))
        address = draw(st.integers(0, 600))
        if kind in ("coil", "di"):
            p = make_point(name=f"p{i}", unit_id=unit_id, address=f"{kind}:{address}", type="bool")
        elif kind == "bit":
            p = make_point(name=f"p{i}", unit_id=unit_id, address=f"hr:{address}.{draw(st.integers(0, 15))}", type="bool")
        else:
            p = make_point(name=f"p{i}", unit_id=unit_id, address=f"{kind}:{address}", type=draw(_TYPES))
        result.append(p)
    return result


@settings(max_examples=150, deadline=None)
@given(
    pts=points(),
    max_registers=st.integers(4, 125),
    max_bits=st.integers(1, 2000),
    max_gap=st.integers(0, 30),
)
def test_every_point_covered_once_within_limits(pts: list[RegisterPoint], max_registers: int, max_bits: int, max_gap: int) -> None:
    """Every point lands in exactly one request, inside its span, and no request exceeds its limit."""
    requests = plan_reads(pts, max_registers=max_registers, max_bits=max_bits, max_gap=max_gap)
    served = covered(requests)
    assert len(served) == len(set(served)) == len(set(pts))
    assert set(served) == set(pts)
    for r in requests:
        limit = max_bits if r.area.is_bit else max_registers
        assert 1 <= r.count <= limit
        assert r.start >= 0 and r.end <= 65536
        for p in r.points:
            assert (p.unit_id, p.area) == (r.unit_id, r.area)
            assert r.start <= p.address and p.end <= r.end
        # the block is tight: it starts at its first point and ends at its last point's end
        assert r.start == min(p.address for p in r.points)
        assert r.end == max(p.end for p in r.points)
    # blocks of one (unit, area) come in address order (they overlap only when overlapping
    # points could not fit one block)
    for a, b in itertools.pairwise(requests):
        if (a.unit_id, a.area) == (b.unit_id, b.area):
            assert a.start <= b.start


def test_overlapping_points_that_do_not_fit_one_block() -> None:
    """Overlapping points that together exceed the limit are read in two (overlapping) requests."""
    wide, tail = hr(0, "uint64"), hr(3, "float32")
    assert spans(plan_reads([wide, tail], max_registers=4)) == [(1, Area.HOLDING, 0, 4), (1, Area.HOLDING, 3, 2)]
