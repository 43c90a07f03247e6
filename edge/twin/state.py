"""What the twin of one asset has learnt, and its file format (pure: no I/O).

An ``AssetState`` holds, for one asset: each signal's Kalman filter (state estimate, covariance,
anomaly score, measurement count), the identified input->output model (every candidate RLS bank:
parameters, covariance, histories, noise variance, update count; the chosen candidate and whether
the model is warm) and the fitted PCA detector (model, control limits, smoothed score, alarm).
``encode`` turns it into canonical JSON text (sorted keys, exact float round trip; NaN as
``null``, infinities as ``"inf"`` / ``"-inf"``) and ``decode`` back, raising ``StateFileError``
with ``reason`` ``"format_version"`` (a file written by another format) or ``"corrupt"``
(anything else wrong with it). ``edge.twin.persist`` does the file I/O; the format is documented
in docs/twin.md ("Saved state").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from edge.twin.state_types import AdaptiveState, AssetState, BankState, DetectorState, FilterState, GoodBank, GoodState, GuardState, ModelState, StateFileError

__all__ = [
    "FORMAT_VERSION",
    "AdaptiveState",
    "AssetState",
    "BankState",
    "DetectorState",
    "FilterState",
    "GoodBank",
    "GoodState",
    "GuardState",
    "ModelState",
    "StateFileError",
    "decode",
    "encode",
    "from_dict",
    "to_dict",
]  # the data types live in edge.twin.state_types

FORMAT_VERSION = 2  # 2: the identified model carries its guard (edge.twin.model_guard)


# -- encoding ------------------------------------------------------------------------------------


def _num(v: float) -> float | str | None:
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def _arr(a: np.ndarray) -> Any:
    if a.ndim == 0:
        return _num(float(a))
    if np.all(np.isfinite(a)):
        return a.tolist()  # Python floats: repr round-trips exactly
    return [_arr(r) for r in a] if a.ndim > 1 else [_num(v) for v in a.tolist()]


def to_dict(state: AssetState) -> dict[str, Any]:
    """The JSON document of *state* (plain lists, numbers, strings)."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "asset": state.asset,
        "config_hash": state.config_hash,
        "saved_at": state.saved_at.astimezone(UTC).isoformat(),
        "filters": {
            name: {"model": f.model, "x": _arr(f.x), "P": _arr(f.P), "score": _num(f.score), "updates": f.updates} for name, f in state.filters.items()
        },
        "model": None,
        "detector": None,
    }
    if state.model is not None:
        m = state.model
        doc["model"] = {
            "signal": m.signal,
            "choice": m.choice,
            "warm": m.warm,
            "banks": [
                {
                    "orders": list(b.orders),
                    "theta": _arr(b.theta),
                    "P": _arr(b.P),
                    "yh": _arr(b.yh),
                    "uh": _arr(b.uh),
                    "sigma2": _num(b.sigma2),
                    "updates": b.updates,
                }
                for b in m.banks
            ],
            "guard": None if m.guard is None else _guard_doc(m.guard),
        }
    if state.detector is not None:
        d = state.detector
        doc["detector"] = {
            "mean": _arr(d.mean),
            "scale": _arr(d.scale),
            "loadings": _arr(d.loadings),
            "eigvals": _arr(d.eigvals),
            "all_eigvals": _arr(d.all_eigvals),
            "t2_limit": _num(d.t2_limit),
            "q_limit": _num(d.q_limit),
            "stat": _num(d.stat),
            "history": d.history,
            "alarm": d.alarm,
        }
        if d.adaptive is not None:
            ad = d.adaptive
            doc["detector"]["adaptive"] = {
                "mean": _arr(ad.mean),
                "cov": _arr(ad.cov),
                "count": ad.count,
                "since_refit": ad.since_refit,
                "var_floor": _arr(ad.var_floor),
            }
    if state.validation is not None:  # written only when validated (files without it read as before)
        doc["validation"] = {name: _plain(v) for name, v in state.validation.items()}
    return doc


def _plain(v: Any) -> Any:
    """A validation document with NaN/inf encoded as for the other numbers."""
    if isinstance(v, float):
        return _num(v)
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _guard_doc(g: GuardState) -> dict[str, Any]:
    good = None
    if g.good is not None:
        good = [{"theta": _arr(b.theta), "P": _arr(b.P), "sigma2": _num(b.sigma2)} for b in g.good.banks]
    return {
        "seen_lo": _num(g.seen_lo),
        "seen_hi": _num(g.seen_hi),
        "quantile": _num(g.quantile),
        "miss": _num(g.miss),
        "restores": g.restores,
        "good": good,
        "kappa": _num(g.kappa),
        "step_quantile": _num(g.step_quantile),
    }


def encode(state: AssetState) -> str:
    """Canonical JSON text of *state* (sorted keys, strict JSON, one trailing newline)."""
    return json.dumps(to_dict(state), sort_keys=True, allow_nan=False) + "\n"  # one line: the C encoder (indent would be pure Python, 10x slower)


# -- decoding ------------------------------------------------------------------------------------


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(doc, Mapping):
        raise StateFileError("corrupt", f"{where} must be an object")
    if key not in doc:
        raise StateFileError("corrupt", f"{where}.{key} is missing")
    v = doc[key]
    if (kind is int and isinstance(v, bool)) or not isinstance(v, kind):
        raise StateFileError("corrupt", f"{where}.{key} has the wrong type ({type(v).__name__})")
    return v


def _float(v: Any, where: str) -> float:
    if v is None:
        return math.nan
    if v in ("inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise StateFileError("corrupt", f"{where}: {v!r} is not a number")
    return float(v)


def _array(v: Any, ndim: int, where: str) -> np.ndarray:
    def walk(x: Any, depth: int) -> Any:
        if depth == 0:
            return _float(x, where)
        if not isinstance(x, list):
            raise StateFileError("corrupt", f"{where} must be a {ndim}-D array")
        return [walk(e, depth - 1) for e in x]

    rows = walk(v, ndim)
    try:
        a = np.array(rows, dtype=np.float64)
    except ValueError:
        raise StateFileError("corrupt", f"{where} is ragged") from None
    if a.ndim != ndim and a.size:
        raise StateFileError("corrupt", f"{where} must be a {ndim}-D array")
    return a.reshape((0,) * ndim) if a.size == 0 else a


def _number(doc: Any, key: str, where: str) -> float:
    return _float(_get(doc, key, (int, float, str, type(None)), where), f"{where}.{key}")


def _filter(doc: Any, where: str) -> FilterState:
    updates = _get(doc, "updates", int, where)
    if updates < 0:
        raise StateFileError("corrupt", f"{where}.updates is negative")
    x = _array(_get(doc, "x", list, where), 1, f"{where}.x")
    P = _array(_get(doc, "P", list, where), 2, f"{where}.P")
    return FilterState(_get(doc, "model", str, where), x, P, _number(doc, "score", where), updates)


def _bank(doc: Any, where: str) -> BankState:
    orders = _get(doc, "orders", list, where)
    if len(orders) != 3 or not all(isinstance(o, int) and not isinstance(o, bool) for o in orders):
        raise StateFileError("corrupt", f"{where}.orders must be [na, nb, nk]")
    updates = _get(doc, "updates", int, where)
    if updates < 0:
        raise StateFileError("corrupt", f"{where}.updates is negative")
    return BankState(
        (orders[0], orders[1], orders[2]),
        _array(_get(doc, "theta", list, where), 1, f"{where}.theta"),
        _array(_get(doc, "P", list, where), 2, f"{where}.P"),
        _array(_get(doc, "yh", list, where), 1, f"{where}.yh"),
        _array(_get(doc, "uh", list, where), 1, f"{where}.uh"),
        _number(doc, "sigma2", where),
        updates,
    )


def _model(doc: Any) -> ModelState:
    w = "model"
    banks = _get(doc, "banks", list, w)
    choice = _get(doc, "choice", int, w)
    if not banks or not 0 <= choice < len(banks):
        raise StateFileError("corrupt", f"model.choice {choice} does not name one of {len(banks)} candidates")
    g = doc.get("guard")
    return ModelState(
        _get(doc, "signal", str, w),
        choice,
        _get(doc, "warm", bool, w),
        tuple(_bank(b, f"model.banks[{i}]") for i, b in enumerate(banks)),
        None if g is None else _guard(g),
    )


def _guard(doc: Any) -> GuardState:
    w = "model.guard"
    restores = _get(doc, "restores", int, w)
    if restores < 0:
        raise StateFileError("corrupt", f"{w}.restores is negative")
    good = doc.get("good") if isinstance(doc, Mapping) else None
    banks = None
    if good is not None:
        if not isinstance(good, list):
            raise StateFileError("corrupt", f"{w}.good must be a list")
        banks = GoodState(
            tuple(
                GoodBank(
                    _array(_get(b, "theta", list, f"{w}.good[{i}]"), 1, f"{w}.good[{i}].theta"),
                    _array(_get(b, "P", list, f"{w}.good[{i}]"), 2, f"{w}.good[{i}].P"),
                    _number(b, "sigma2", f"{w}.good[{i}]"),
                )
                for i, b in enumerate(good)
            )
        )
    q, kappa = _number(doc, "quantile", w), _number(doc, "kappa", w)
    step_q = _number(doc, "step_quantile", w) if isinstance(doc, Mapping) and "step_quantile" in doc else math.nan  # absent before it existed
    return GuardState(_number(doc, "seen_lo", w), _number(doc, "seen_hi", w), q, _number(doc, "miss", w), restores, banks, kappa, step_q)


def _detector(doc: Any) -> DetectorState:
    w = "detector"
    history = _get(doc, "history", int, w)
    if history < 0:
        raise StateFileError("corrupt", "detector.history is negative")
    return DetectorState(
        _array(_get(doc, "mean", list, w), 1, "detector.mean"),
        _array(_get(doc, "scale", list, w), 1, "detector.scale"),
        _array(_get(doc, "loadings", list, w), 2, "detector.loadings"),
        _array(_get(doc, "eigvals", list, w), 1, "detector.eigvals"),
        _array(_get(doc, "all_eigvals", list, w), 1, "detector.all_eigvals"),
        _number(doc, "t2_limit", w),
        _number(doc, "q_limit", w),
        _number(doc, "stat", w),
        history,
        _get(doc, "alarm", bool, w),
        None if doc.get("adaptive") is None else _adaptive(doc["adaptive"]),
    )


def _adaptive(doc: Any) -> AdaptiveState:
    w = "detector.adaptive"
    count, since = _get(doc, "count", int, w), _get(doc, "since_refit", int, w)
    if count < 1 or since < 0:
        raise StateFileError("corrupt", f"{w}: count must be >= 1 and since_refit >= 0, got {count}, {since}")
    return AdaptiveState(
        _array(_get(doc, "mean", list, w), 1, f"{w}.mean"),
        _array(_get(doc, "cov", list, w), 2, f"{w}.cov"),
        count,
        since,
        _array(_get(doc, "var_floor", list, w), 1, f"{w}.var_floor"),
    )


def from_dict(doc: Any) -> AssetState:
    """The ``AssetState`` of a JSON document; raises ``StateFileError``."""
    if not isinstance(doc, Mapping):
        raise StateFileError("corrupt", "the file is not a JSON object")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise StateFileError("format_version", f"format_version {version!r}, this gateway reads {FORMAT_VERSION}")
    w = "state"
    try:
        saved_at = datetime.fromisoformat(_get(doc, "saved_at", str, w))
    except ValueError:
        raise StateFileError("corrupt", f"saved_at {doc['saved_at']!r} is not an ISO 8601 time") from None
    if saved_at.tzinfo is None:
        raise StateFileError("corrupt", "saved_at has no time zone")
    filters = _get(doc, "filters", Mapping, w)
    model, detector = doc.get("model"), doc.get("detector")
    validation = doc.get("validation")
    if validation is not None and not (isinstance(validation, Mapping) and all(isinstance(v, Mapping) for v in validation.values())):
        raise StateFileError("corrupt", "validation must be an object of objects")
    return AssetState(
        _get(doc, "asset", str, w),
        _get(doc, "config_hash", str, w),
        saved_at,
        {str(k): _filter(v, f"filters.{k}") for k, v in filters.items()},
        None if model is None else _model(model),
        None if detector is None else _detector(detector),
        None if validation is None else {str(k): dict(v) for k, v in validation.items()},
    )


def decode(text: str | bytes) -> AssetState:
    """Parse the text of a state file; raises ``StateFileError``."""
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise StateFileError("corrupt", f"not valid JSON: {exc}") from None
    return from_dict(doc)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
