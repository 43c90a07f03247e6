"""TwinRunner: feeds measured tags to the Kalman kernels and publishes the twin's outputs.

Channels of all assets that share a tick period, model and process noise are stacked into one
``KalmanBank`` so each tick is one kernel call per kind, not one per signal.

Per signal it publishes (registry keys ``<asset>.<signal>.<output>``, nodes
``Assets/<asset>/<signal>/<Output>``): Measured (the device tag mirrored), Estimate, Forecast (at
the configured horizon), Residual (innovation: measured minus one-step prediction) and
AnomalyScore (EWMA of the normalized innovation squared: about 1 in normal operation). Per asset:
AnomalyScore (the largest of its signals') and Alarm (score above ``alarm_threshold``, released
below 80 % of it).

Status of twin outputs: BadWaitingForInitialData until the signal has had ``warmup_ticks``
measurements; then Good while the input is Good, UncertainSubNormal while it is not (stale,
uncertain or missing: the estimate then runs on prediction alone).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import structlog

import kernels
from drivers.sample import Status, TagSample, is_bad, is_good, utcnow
from edge.config import AssetConfig
from edge.registry import TagInfo, TagRegistry

log = structlog.get_logger("edge.twin")

OUTPUTS = ("Estimate", "Forecast", "Residual", "AnomalyScore")
ALARM_RELEASE = 0.8


@dataclass(slots=True)
class _Channel:
    asset: str
    signal: str
    tag: str  # input registry key
    r: float  # measurement variance
    horizon_steps: int
    warmup: int
    last_source: datetime | None = None
    last_mirrored: tuple[datetime, int] | None = None
    updates: int = 0


def signal_infos(asset: AssetConfig, registry: TagRegistry) -> list[TagInfo]:
    """The registry entries an asset's twin publishes (declared before the server builds its tree)."""
    out = []
    for sig in asset.signals:
        src = registry.info(sig.tag)
        unit = sig.units or src.units
        base = ("Assets", asset.name, sig.name)
        out.append(TagInfo(f"{asset.name}.{sig.name}.measured", (*base, "Measured"), "float64", unit, src.low, src.high, f"measured {sig.tag}"))
        out.append(TagInfo(f"{asset.name}.{sig.name}.estimate", (*base, "Estimate"), "float64", unit, src.low, src.high, f"{sig.model} Kalman estimate"))
        out.append(TagInfo(f"{asset.name}.{sig.name}.forecast", (*base, "Forecast"), "float64", unit, src.low, src.high, f"forecast {sig.forecast_horizon_s:g} s ahead"))
        out.append(TagInfo(f"{asset.name}.{sig.name}.residual", (*base, "Residual"), "float64", unit, description="measured minus one-step prediction"))
        out.append(TagInfo(f"{asset.name}.{sig.name}.anomaly_score", (*base, "AnomalyScore"), "float64", "1", description="EWMA of normalized innovation squared (about 1 when normal)"))
    out.append(TagInfo(f"{asset.name}.anomaly_score", ("Assets", asset.name, "AnomalyScore"), "float64", "1", description="largest signal anomaly score"))
    out.append(TagInfo(f"{asset.name}.alarm", ("Assets", asset.name, "Alarm"), "bool", description=f"anomaly score above {asset.alarm_threshold:g}"))
    return out


class _Group:
    """One kernel bank: channels sharing a model, process noise and tick period."""

    def __init__(self, model: str, q: float, tick_s: float, channels: list[_Channel], alpha: np.ndarray):
        self.channels = channels
        self.alpha = alpha
        self.bank = kernels.KalmanBank(model, len(channels), tick_s, q, np.array([c.r for c in channels]))
        self.z = np.full(len(channels), np.nan)
        self.horizons = sorted({c.horizon_steps for c in channels})


class TwinRunner:
    """Runs every asset whose tick period is ``tick_s``."""

    def __init__(self, assets: Sequence[AssetConfig], registry: TagRegistry, tick_s: float) -> None:
        self.assets = list(assets)
        self.registry = registry
        self.tick_s = tick_s
        self.last_tick_s = 0.0
        grouped: dict[tuple[str, float], list[tuple[_Channel, float]]] = defaultdict(list)
        for asset in self.assets:
            for sig in asset.signals:
                ch = _Channel(
                    asset.name,
                    sig.name,
                    sig.tag,
                    sig.measurement_noise**2,
                    round(sig.forecast_horizon_s / tick_s),
                    asset.warmup_ticks,
                )
                grouped[(sig.model, sig.process_noise)].append((ch, asset.score_alpha))
        self.groups = [
            _Group(model, q, tick_s, [c for c, _ in members], np.array([a for _, a in members]))
            for (model, q), members in grouped.items()
        ]
        self._alarm = {a.name: False for a in self.assets}

    async def run(self) -> None:
        next_due = time.monotonic()
        while True:
            started = time.perf_counter()
            self.registry.publish(self.tick())
            self.last_tick_s = time.perf_counter() - started
            next_due += self.tick_s
            now = time.monotonic()
            if next_due < now:
                next_due = now
            await asyncio.sleep(next_due - now)

    def tick(self) -> list[TagSample]:
        """One step of every bank; returns the samples to publish."""
        now = utcnow()
        out: list[TagSample] = []
        asset_scores: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for g in self.groups:
            inputs = [self.registry.latest(c.tag) for c in g.channels]
            for i, (c, s) in enumerate(zip(g.channels, inputs)):
                fresh = s.value is not None and s.source_time != c.last_source and s.status != Status.UncertainNoCommunicationLastUsableValue
                g.z[i] = float(s.value) if fresh else math.nan
                if fresh:
                    c.last_source = s.source_time
                    c.updates += 1
            g.bank.step(g.z)
            g.bank.update_score(g.alpha)
            est, innov, score = g.bank.estimate, g.bank.innovation, g.bank.score
            forecasts = {h: g.bank.forecast(h)[0] for h in g.horizons}
            for i, (c, s) in enumerate(zip(g.channels, inputs)):
                prefix = f"{c.asset}.{c.signal}"
                if (s.source_time, s.status) != c.last_mirrored:
                    c.last_mirrored = (s.source_time, s.status)
                    out.append(TagSample(f"{prefix}.measured", _float(s.value), s.status, s.source_time, now))
                status = _output_status(c, s)
                warm = not is_bad(status)
                fields = [("estimate", est[i]), ("forecast", forecasts[c.horizon_steps][i]), ("anomaly_score", score[i])]
                if math.isfinite(innov[i]):  # a residual exists only where a measurement arrived
                    fields.append(("residual", innov[i]))
                for name, value in fields:
                    out.append(TagSample(f"{prefix}.{name}", float(value) if warm else None, status, now, now))
                asset_scores[c.asset].append((float(score[i]), status))
        for asset in self.assets:
            out.extend(self._asset_outputs(asset, asset_scores[asset.name], now))
        return out

    def _asset_outputs(self, asset: AssetConfig, scores: list[tuple[float, int]], now: datetime) -> list[TagSample]:
        warm = [(v, st) for v, st in scores if not is_bad(st)]
        if not warm:
            return [
                TagSample(f"{asset.name}.anomaly_score", None, Status.BadWaitingForInitialData, now, now),
                TagSample(f"{asset.name}.alarm", None, Status.BadWaitingForInitialData, now, now),
            ]
        value = max(v for v, _ in warm)
        status = Status.Good if len(warm) == len(scores) and all(is_good(st) for _, st in warm) else Status.UncertainSubNormal
        was = self._alarm[asset.name]
        active = value > asset.alarm_threshold if not was else value > ALARM_RELEASE * asset.alarm_threshold
        if active != was:
            self._alarm[asset.name] = active
            log.warning("twin_alarm" if active else "twin_alarm_cleared", asset=asset.name, score=round(value, 2), threshold=asset.alarm_threshold)
        return [
            TagSample(f"{asset.name}.anomaly_score", value, status, now, now),
            TagSample(f"{asset.name}.alarm", active, status, now, now),
        ]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _output_status(c: _Channel, latest: TagSample) -> int:
    if c.updates < c.warmup:
        return Status.BadWaitingForInitialData
    return Status.Good if is_good(latest.status) else Status.UncertainSubNormal


def build_runners(assets: Sequence[AssetConfig], registry: TagRegistry) -> list[TwinRunner]:
    by_tick: dict[float, list[AssetConfig]] = defaultdict(list)
    for a in assets:
        by_tick[a.tick_s].append(a)
    return [TwinRunner(group, registry, tick) for tick, group in by_tick.items()]
