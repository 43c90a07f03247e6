"""Sensor validation inside the twin runner: feeds ``edge.twin.validation`` and publishes its flags.

Assets with ``[assets.validation]`` or a signal with ``related`` tags get one ``SignalValidator``
per signal. Each tick, before the Kalman filters run (``before``):

* each fresh reading is validated; a reading held back as a possible spike is marked as already
  seen in the Kalman and identification groups, so neither ever sees it;
* each signal with ``related`` tags is checked against them (values scaled to the tags' low/high);
* the flags are published: ``<asset>.<signal>.sensor_fault`` (``Assets/<asset>/<signal>/SensorFault``,
  String: "", "stuck", "spike", "drift" or "contradiction") and ``<asset>.sensor_fault``
  (``Assets/<asset>/SensorFault``: "temperature: drift, flow: contradiction"), each on change; the
  asset's anomaly alarm event carries the latter in its message (edge/opcua/alarms.py).

After the identified models ran (``after_models``), each validated identified signal's a-priori
model residual feeds the drift test. ``trusted(asset, signal)`` is the learn flag for the
identified model; ``asset_flags`` says which assets have a flagged signal (they raise the alarm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import structlog

from drivers.sample import Status, TagSample
from edge.config import AssetConfig
from edge.config.models import SignalConfig, ValidationConfig
from edge.core import names
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.identified import ModelGroup
from edge.twin.io import STALE, sample
from edge.twin.kalman import KalmanGroup
from edge.twin.validation import BalanceTest, SignalValidator, ValidationParams

log = structlog.get_logger("edge.twin.validation")

GOOD = int(Status.Good)
BAD_WAITING = int(Status.BadWaitingForInitialData)
UNCERTAIN = int(Status.UncertainSubNormal)


def validation_of(asset: AssetConfig) -> ValidationConfig | None:
    """The asset's validation settings, or None when it is not validated."""
    if asset.validation is not None:
        return asset.validation
    return ValidationConfig() if any(s.related or s.explained_by for s in asset.signals) else None


def params_of(cfg: ValidationConfig) -> ValidationParams:
    return ValidationParams(**{k: v for k, v in cfg.model_dump().items() if k != "alarm"})


def validation_infos(asset: AssetConfig) -> list[TagInfo]:
    """Registry entries of the asset's SensorFault variables (none when it is not validated)."""
    if validation_of(asset) is None:
        return []
    a = asset.name
    out = [TagInfo(names.sensor_fault_key(a), names.sensor_fault_path(a), "string", description="flagged sensors: '<signal>: <kind>, ...' ('' when none)")]
    for sig in asset.signals:
        text = 'sensor validation: "", "stuck", "spike", "drift" or "contradiction"'
        out.append(TagInfo(names.sensor_fault_key(a, sig.name), names.sensor_fault_path(a, sig.name), "string", description=text))
    return out


class _Channel:
    __slots__ = ("alarm", "asset", "balance_tags", "input", "kalman", "key", "last_source", "model", "published", "related", "scale", "signal", "tag", "v")

    def __init__(self, asset: str, signal: str, tag: str, v: SignalValidator, related: list[str], scale: list[tuple[float, float]], alarm: bool) -> None:
        self.asset, self.signal, self.tag, self.v = asset, signal, tag, v
        self.related, self.scale, self.alarm = related, scale, alarm
        self.kalman: tuple[KalmanGroup, int] | None = None
        self.model: tuple[ModelGroup, int] | None = None
        self.input: str | None = None  # the identified model's input tag (its moves suspend the drift test's ramp view)
        self.balance_tags: list[str] = []  # the tags of the drift test's balance view (explained_by)
        self.last_source: datetime | None = None
        self.key = names.sensor_fault_key(asset, signal)
        self.published: tuple[str, int] | None = None


def _good_value(registry: TagRegistry, tag: str) -> float:
    """The tag's latest value when Good, else NaN."""
    r = registry.latest(tag)
    return float(r.value) if r.value is not None and ((int(r.status) >> 30) & 3) == 0 else math.nan  # type: ignore[arg-type]


def _span(info: TagInfo | None) -> float:
    """The tag's high - low (1 for a bool; NaN when not known)."""
    if info is not None and info.data_type == "bool":
        return 1.0
    if info is None or info.low is None or info.high is None or not info.high > info.low:
        return math.nan
    return float(info.high) - float(info.low)


def _scale(info: TagInfo | None) -> tuple[float, float]:
    """``(offset, span)`` mapping a related tag's low..high onto 0..1 (identity when not known)."""
    span = _span(info)
    if info is None or info.low is None or math.isnan(span):
        return 0.0, 1.0
    return float(info.low), span


def _balance_of(sig: SignalConfig, registry: TagRegistry, tick_s: float, params: ValidationParams) -> tuple[BalanceTest | None, list[str]]:
    """The drift test's balance view of a signal with ``explained_by`` tags, and those tags (each once)."""
    if not sig.explained_by:
        return None, []
    tags: list[str] = []
    for a, b, _ in sig.balance_terms:
        tags += [t for t in (a, b) if t is not None and t not in tags]
    terms = [(tags.index(a), None if b is None else tags.index(b), op) for a, b, op in sig.balance_terms]
    spans = [_span(registry.info(t) if t in registry else None) for t in tags]
    return BalanceTest(tick_s, terms, spans, params.drift_window_s, params.balance_sigma), tags


class RunnerValidation:
    """The sensor validation of one runner's assets."""

    def __init__(
        self,
        assets: Sequence[AssetConfig],
        registry: TagRegistry,
        tick_s: float,
        kalman_of: Mapping[tuple[str, str], tuple[KalmanGroup, int]],
        models: Mapping[str, tuple[ModelGroup, int]],
    ) -> None:
        self.tick_s = tick_s
        self.channels: list[_Channel] = []
        self.by_asset: dict[str, list[_Channel]] = {}
        self._asset_index = {a.name: i for i, a in enumerate(assets)}
        self._asset_published: dict[str, tuple[str, int]] = {}
        for asset in assets:
            cfg = validation_of(asset)
            if cfg is None:
                continue
            params = params_of(cfg)
            chans = []
            for sig in asset.signals:
                info = registry.info(sig.tag) if sig.tag in registry else None
                low = -math.inf if info is None or info.low is None else float(info.low)
                span = _span(info)
                balance, balance_tags = _balance_of(sig, registry, tick_s, params)
                v = SignalValidator(sig.name, params, sig.measurement_noise, tick_s, low, len(sig.related), span, ramp=sig.input is not None, balance=balance)
                scale = [_scale(registry.info(t) if t in registry else None) for t in sig.related]
                ch = _Channel(asset.name, sig.name, sig.tag, v, list(sig.related), scale, cfg.alarm)
                ch.kalman = kalman_of.get((asset.name, sig.name))
                ch.input = sig.input
                ch.balance_tags = balance_tags
                g_i = models.get(asset.name)
                if g_i is not None and g_i[0].channels[g_i[1]].signal == sig.name:
                    ch.model = g_i
                chans.append(ch)
            self.channels += chans
            self.by_asset[asset.name] = chans

    def __bool__(self) -> bool:
        return bool(self.channels)

    # -- per tick -----------------------------------------------------------------------------
    def before(self, registry: TagRegistry, now: datetime) -> list[TagSample]:
        """Validate this tick's readings (before the filters); returns the flags that changed."""
        if not self.channels:
            return []
        out: list[TagSample] = []
        for ch in self.channels:
            v = ch.v
            v.advance(self.tick_s)
            if ch.input is not None and ch.input in registry:
                u = registry.latest(ch.input)
                if u.value is not None and ((int(u.status) >> 30) & 3) == 0:
                    v.observe_input(float(u.value))  # type: ignore[arg-type]
            s = registry.latest(ch.tag)
            fresh = s.source_time != ch.last_source and s.value is not None and s.status != STALE and ((int(s.status) >> 30) & 3) < 2
            held = False
            if fresh:
                ch.last_source = s.source_time
                z = float(s.value)  # type: ignore[arg-type]
                if not v.observe(z):  # held back: the filter and the identification never see it
                    held = True
                    if ch.kalman is not None:
                        g, i = ch.kalman
                        g.last_source[i] = s.source_time
                    if ch.model is not None:
                        mg, mi = ch.model
                        mg.last_source[mi] = s.source_time
                if ch.related:
                    xs = [(_good_value(registry, tag) - off) / span for tag, (off, span) in zip(ch.related, ch.scale)]
                    v.check_related(z, xs)
            if ch.balance_tags:
                good = s.value is not None and s.status != STALE and ((int(s.status) >> 30) & 3) == 0 and not held
                v.observe_balance(float(s.value) if good else None, [_good_value(registry, t) for t in ch.balance_tags])  # type: ignore[arg-type]
            status = BAD_WAITING if not v.warm else (GOOD if ((int(s.status) >> 30) & 3) == 0 else UNCERTAIN)
            kind = v.kind
            if ch.published != (kind, status):
                if ch.published is None or ch.published[0] != kind:
                    if kind:
                        log.warning("sensor_fault", asset=ch.asset, signal=ch.signal, kind=kind, flags=v.flags)
                    elif ch.published is not None and ch.published[0]:
                        log.info("sensor_fault_cleared", asset=ch.asset, signal=ch.signal)
                ch.published = (kind, status)
                out.append(sample(ch.key, kind if status != BAD_WAITING else None, status, now, now))
        for asset, chans in self.by_asset.items():
            text = ", ".join(f"{c.signal}: {c.v.kind}" for c in chans if c.v.kind)
            warm = any(c.v.warm for c in chans)
            st = GOOD if warm else BAD_WAITING
            if self._asset_published.get(asset) != (text, st):
                self._asset_published[asset] = (text, st)
                out.append(sample(names.sensor_fault_key(asset), text if warm else None, st, now, now))
        return out

    def after_models(self) -> None:
        """Feed the identified models' residuals of this model period to the drift test."""
        for ch in self.channels:
            if ch.model is None:
                continue
            mg, mi = ch.model
            if mg.ticks % mg.period_ticks or not mg.warm[mi]:
                continue
            b = mg.bank_of(mi)
            o = mg.candidates[int(mg.choice[mi])]
            horizon = max(1, round(ch.v.params.drift_horizon_s / mg.period_s))
            ch.v.model_period(float(b.yh[mi, 0]), float(b.uh[mi, 0]), b.theta[mi].tolist(), (o.na, o.nb, o.nk), horizon, float(b.sigma2[mi]), mg.period_s)

    def asset_flags(self, n_assets: int) -> np.ndarray:
        """Per asset of the runner (in its order): has a flagged signal that raises the alarm."""
        out = np.zeros(n_assets, dtype=bool)
        for asset, chans in self.by_asset.items():
            out[self._asset_index[asset]] = any(c.alarm and c.v.raised for c in chans)
        return out

    def trusted(self, asset: str, signal: str) -> bool:
        """Whether the signal's reading may be learnt from (True when it is not validated)."""
        for c in self.by_asset.get(asset, ()):
            if c.signal == signal:
                return c.v.trusted
        return True

    def model_learn(self, mg: ModelGroup) -> np.ndarray:
        """The learn flag of each channel of *mg*: its output signal is trusted."""
        return np.array([self.trusted(c.asset, c.signal) for c in mg.channels], dtype=bool)

    # -- saved state ------------------------------------------------------------------------
    def export_state(self, asset: str) -> dict[str, Any] | None:
        chans = self.by_asset.get(asset)
        return None if chans is None else {c.signal: c.v.export() for c in chans}

    def import_state(self, asset: str, doc: Mapping[str, Any] | None) -> None:
        """Load an asset's saved validation state; ValueError when it does not fit the config."""
        chans = self.by_asset.get(asset)
        if doc is None:
            return
        if chans is None:
            raise ValueError("the saved state has sensor validation the config does not")
        if sorted(doc) != sorted(c.signal for c in chans):
            raise ValueError(f"saved validation signals {sorted(doc)} are not the configured {sorted(c.signal for c in chans)}")
        for c in chans:
            c.v.restore(doc[c.signal])

    def forget(self, asset: str) -> None:
        for c in self.by_asset.get(asset, ()):
            v = c.v
            b = v.balance
            balance = None if b is None else BalanceTest(v.tick_s, b.terms, b.spans, v.params.drift_window_s, v.params.balance_sigma)
            c.v = SignalValidator(v.name, v.params, v.noise_std0, v.tick_s, v.low, len(v.related), v.span, ramp=v.ramp is not None, balance=balance)
