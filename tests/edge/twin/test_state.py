"""The saved-state file format (edge.twin.state): exact round trip, strict JSON, and a located
``StateFileError`` for every kind of bad document."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.twin.state import (
    FORMAT_VERSION,
    AdaptiveState,
    AssetState,
    BankState,
    DetectorState,
    FilterState,
    ModelState,
    StateFileError,
    decode,
    encode,
    to_dict,
)

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


def arrays(shape: tuple[int, ...], elements: st.SearchStrategy[float] = floats) -> st.SearchStrategy[np.ndarray]:
    n = math.prod(shape)
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64).reshape(shape))


@st.composite
def filter_states(draw: st.DrawFn) -> FilterState:
    s = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["random_walk", "constant_velocity"]))
    return FilterState(kind, draw(arrays((s,))), draw(arrays((s, s))), draw(floats), draw(st.integers(0, 2**40)))


@st.composite
def bank_states(draw: st.DrawFn) -> BankState:
    na, nb, nk = draw(st.integers(0, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    p = na + nb + 1
    return BankState(
        (na, nb, nk), draw(arrays((p,))), draw(arrays((p, p))), draw(arrays((na,))), draw(arrays((nk + nb - 1,))), draw(floats), draw(st.integers(0, 10**9))
    )


@st.composite
def model_states(draw: st.DrawFn) -> ModelState:
    banks = draw(st.lists(bank_states(), min_size=1, max_size=3))
    return ModelState(draw(st.text(min_size=1, max_size=8)), draw(st.integers(0, len(banks) - 1)), draw(st.booleans()), tuple(banks))


@st.composite
def detector_states(draw: st.DrawFn) -> DetectorState:
    p, a = draw(st.integers(2, 5)), draw(st.integers(1, 2))
    adaptive = draw(
        st.none()
        | st.builds(
            lambda m, c, n, k, f: AdaptiveState(m, c, n, k, f), arrays((p,)), arrays((p, p)), st.integers(1, 10**9), st.integers(0, 10**6), arrays((p,))
        )
    )
    return DetectorState(
        draw(arrays((p,))), draw(arrays((p,))), draw(arrays((p, a))), draw(arrays((a,))), draw(arrays((p,))), draw(finite), draw(finite), draw(floats),
        draw(st.integers(0, 2**64 - 1)), draw(st.booleans()), adaptive,
    )  # fmt: skip


@st.composite
def asset_states(draw: st.DrawFn) -> AssetState:
    names = draw(st.lists(st.text(min_size=1, max_size=10), max_size=4, unique=True))
    saved = T + timedelta(microseconds=draw(st.integers(-(10**15), 10**15)))
    return AssetState(
        draw(st.text(max_size=12)),
        draw(st.text(max_size=72)),
        saved,
        {n: draw(filter_states()) for n in names},
        draw(st.none() | model_states()),
        draw(st.none() | detector_states()),
    )


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float64
    np.testing.assert_array_equal(a, b)  # NaN equals NaN here; floats must be bit-for-bit equal otherwise


@settings(max_examples=100, deadline=None)
@given(asset_states())
def test_every_state_survives_the_round_trip_exactly(state: AssetState) -> None:
    text = encode(state)
    back = decode(text)
    assert encode(back) == text
    assert (back.asset, back.config_hash, back.saved_at) == (state.asset, state.config_hash, state.saved_at)
    assert sorted(back.filters) == sorted(state.filters)
    for name, f in state.filters.items():
        g = back.filters[name]
        assert (g.model, g.updates) == (f.model, f.updates) and (g.score == f.score or (math.isnan(g.score) and math.isnan(f.score)))
        _same(f.x, g.x)
        _same(f.P, g.P)
    assert (back.model is None) == (state.model is None)
    if state.model is not None and back.model is not None:
        assert (back.model.signal, back.model.choice, back.model.warm) == (state.model.signal, state.model.choice, state.model.warm)
        for b1, b2 in zip(state.model.banks, back.model.banks, strict=True):
            assert b1.orders == b2.orders and b1.updates == b2.updates
            for name in ("theta", "P", "yh", "uh"):
                _same(getattr(b1, name), getattr(b2, name))
    assert (back.detector is None) == (state.detector is None)
    if state.detector is not None and back.detector is not None:
        d1, d2 = state.detector, back.detector
        assert (d1.t2_limit, d1.q_limit, d1.history, d1.alarm) == (d2.t2_limit, d2.q_limit, d2.history, d2.alarm)
        for name in ("mean", "scale", "loadings", "eigvals", "all_eigvals"):
            _same(getattr(d1, name), getattr(d2, name))
        assert (d1.adaptive is None) == (d2.adaptive is None)
        if d1.adaptive is not None and d2.adaptive is not None:
            assert (d1.adaptive.count, d1.adaptive.since_refit) == (d2.adaptive.count, d2.adaptive.since_refit)
            for name in ("mean", "cov", "var_floor"):
                _same(getattr(d1.adaptive, name), getattr(d2.adaptive, name))


@settings(max_examples=25, deadline=None)
@given(asset_states())
def test_the_text_is_strict_json_with_the_format_version(state: AssetState) -> None:
    doc = json.loads(encode(state), parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert doc["format_version"] == FORMAT_VERSION
    assert list(doc) == sorted(doc)


def _doc() -> dict:
    f = FilterState("random_walk", np.array([1.0]), np.array([[0.5]]), 1.0, 3)
    b = BankState((1, 1, 1), np.array([0.9, 0.1, 0.0]), np.eye(3), np.array([20.0]), np.array([40.0]), 0.01, 50)
    ad = AdaptiveState(np.zeros(3), np.eye(3), 400, 3, np.zeros(3))
    d = DetectorState(np.zeros(3), np.ones(3), np.ones((3, 1)), np.ones(1), np.ones(3), 9.0, 0.5, 0.7, 1, False, ad)
    return to_dict(AssetState("tank", "sha256:x", T, {"level": f}, ModelState("temperature", 0, True, (b,)), d))


def _set(path: str, value: object):
    def edit(doc: dict) -> dict:
        *keys, last = path.split(".")
        d = doc
        for k in keys:
            d = d[int(k)] if isinstance(d, list) else d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
        return doc

    return edit


@pytest.mark.parametrize(
    ("edit", "reason", "message"),
    [
        (_set("format_version", 1), "format_version", "format_version 1"),
        (_set("format_version", KeyError), "format_version", "format_version None"),
        (_set("asset", 5), "corrupt", "state.asset has the wrong type"),
        (_set("config_hash", KeyError), "corrupt", "state.config_hash is missing"),
        (_set("saved_at", "yesterday"), "corrupt", "not an ISO 8601 time"),
        (_set("saved_at", "2026-03-01T12:00:00"), "corrupt", "no time zone"),
        (_set("filters", []), "corrupt", "state.filters has the wrong type"),
        (_set("filters.level.x", "1.0"), "corrupt", "filters.level.x has the wrong type"),
        (_set("filters.level.x", ["one"]), "corrupt", "filters.level.x: 'one' is not a number"),
        (_set("filters.level.x", [True]), "corrupt", "is not a number"),
        (_set("filters.level.P", [[1.0, 2.0], [3.0]]), "corrupt", "filters.level.P is ragged"),
        (_set("filters.level.P", [1.0]), "corrupt", "filters.level.P must be a 2-D array"),
        (_set("filters.level.updates", -1), "corrupt", "filters.level.updates is negative"),
        (_set("filters.level.updates", True), "corrupt", "filters.level.updates has the wrong type"),
        (_set("filters.level.score", KeyError), "corrupt", "filters.level.score is missing"),
        (_set("model.choice", 1), "corrupt", "does not name one of 1 candidates"),
        (_set("model.banks", []), "corrupt", "does not name one of 0 candidates"),
        (_set("model.banks.0.orders", [1, 1]), "corrupt", "model.banks[0].orders must be [na, nb, nk]"),
        (_set("model.warm", 1), "corrupt", "model.warm has the wrong type"),
        (_set("detector.history", -3), "corrupt", "detector.history is negative"),
        (_set("detector.alarm", KeyError), "corrupt", "detector.alarm is missing"),
        (_set("detector.adaptive.count", 0), "corrupt", "count must be >= 1"),
        (_set("detector.adaptive.cov", [1.0]), "corrupt", "detector.adaptive.cov must be a 2-D array"),
        (_set("detector.adaptive.var_floor", KeyError), "corrupt", "detector.adaptive.var_floor is missing"),
    ],
)
def test_a_bad_document_says_what_is_wrong(edit, reason: str, message: str) -> None:
    with pytest.raises(StateFileError, match=re.escape(message)) as err:
        decode(json.dumps(edit(_doc())))
    assert err.value.reason == reason


@pytest.mark.parametrize("text", ["", "[]", "null", "{", '{"format_version": NaN}', b"\xff\xfe"], ids=repr)
def test_text_that_is_not_a_state_object_is_corrupt(text: str | bytes) -> None:
    with pytest.raises(StateFileError) as err:
        decode(text)
    assert err.value.reason in ("corrupt", "format_version")


def test_the_sample_document_decodes() -> None:
    state = decode(json.dumps(_doc()))
    assert state.asset == "tank" and state.model is not None and state.model.banks[0].updates == 50
    assert state.age_s(T + timedelta(seconds=90)) == 90.0
    assert state.age_s(T - timedelta(seconds=90)) == 0.0  # a clock set back: not a negative age
