"""TwinRunner: feeds measured tags to the Kalman kernels and publishes the twin's outputs.

Channels of all assets that share a tick period, model and process noise are stacked into one
``KalmanBank`` so each tick is one kernel call per kind, not one per signal.

Per signal it publishes (registry keys ``<asset>.<signal>.<output>``, nodes
``Assets/<asset>/<signal>/<Output>``): Measured (the device tag mirrored), Estimate, Forecast (at
the configured horizon), Residual (innovation: measured minus one-step prediction) and
AnomalyScore (EWMA of the normalized innovation squared: about 1 in normal operation). Per asset:
AnomalyScore (the largest of its signals') and Alarm (``edge.twin.alarm``: on above
``alarm_threshold``, released with hysteresis once the condition clears; published when its value
or status changes). A signal with a warm identified model scores by the model's one-step errors. A flagged sensor
also raises it. Assets with sensor validation publish SensorFault per signal and per asset
(``edge.twin.validation_hook``).

Status of twin outputs: BadWaitingForInitialData until the signal has had ``warmup_ticks``
measurements; then Good while the input is Good, UncertainSubNormal while it is not (stale,
uncertain or missing: the estimate then runs on prediction alone).

Signals with an ``input`` tag also get an identified input->output model (``edge.twin.identified``):
its parameters and forecast interval are published under ``<signal>/Model``, and the runner
answers what-if questions on it (``simulate``, ``reset_model``), which back
the asset's Simulate and ResetModel methods on the OPC UA server.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import structlog

from drivers.sample import Status, TagSample, utcnow
from edge.config import AssetConfig
from edge.core import names
from edge.core.gcpolicy import paused_gc
from edge.core.registry import TagInfo, TagRegistry
from edge.core.stats import Histogram
from edge.twin.alarm import AssetAlarms, ModelLinks
from edge.twin.detector import AssetDetector, detector_infos
from edge.twin.diagnosis.live import AssetDiagnoser, PatternFile, build_diagnosers, diagnosis_infos
from edge.twin.diagnosis.pca_contrib import pca_source
from edge.twin.identified import MAX_SIM_STEPS, Z95, ModelGroup
from edge.twin.io import sample, severity
from edge.twin.kalman import BAD_WAITING, GOOD, UNCERTAIN, KalmanChannel, KalmanGroup
from edge.twin.model_setup import build_model_groups, model_infos
from edge.twin.state import AssetState
from edge.twin.validation_hook import RunnerValidation, validation_infos

if TYPE_CHECKING:
    from edge.twin.persist import TwinStateStore

log = structlog.get_logger("edge.twin.runner")

OUTPUTS = ("Estimate", "Forecast", "Residual", "AnomalyScore")
DIAGNOSTICS_INTERVAL_S = 1.0  # the assets' TickTime is published at most this often, on change
# (leaf, data type, units, description) of Diagnostics/Gateway/Assets/<asset>; leaves are names.ASSET_DIAGNOSTICS
ASSET_DIAGNOSTIC_FIELDS = (("TickTime", "float64", "s", "duration of the last twin tick (shared by every asset with the same tick_s)"),)


def signal_infos(asset: AssetConfig, registry: TagRegistry) -> list[TagInfo]:
    """The registry entries an asset's twin publishes (declared before the server builds its tree)."""
    out = []
    for sig in asset.signals:
        src = registry.info(sig.tag)
        unit = sig.units or src.units
        rows = (  # (output, units, low, high, description)
            ("measured", unit, src.low, src.high, f"measured {sig.tag}"),
            ("estimate", unit, src.low, src.high, f"{sig.model} Kalman estimate"),
            ("forecast", unit, src.low, src.high, f"forecast {sig.forecast_horizon_s:g} s ahead"),
            ("residual", unit, None, None, "measured minus one-step prediction"),
            ("anomaly_score", "1", None, None, "EWMA of normalized innovation squared (about 1 when normal)"),
        )
        for output, units, low, high, text in rows:
            key, path = names.signal_output_key(asset.name, sig.name, output), names.signal_output_path(asset.name, sig.name, output)
            out.append(TagInfo(key, path, "float64", units, low, high, text))
    for sig in asset.signals:
        if sig.input is not None:
            out.extend(model_infos(asset, sig, registry))
    a = asset.name
    out.append(
        TagInfo(
            names.asset_output_key(a, "anomaly_score"), names.asset_output_path(a, "anomaly_score"), "float64", "1", description="largest signal anomaly score"
        )
    )
    out.append(
        TagInfo(names.asset_output_key(a, "alarm"), names.asset_output_path(a, "alarm"), "bool", description=f"anomaly score above {asset.alarm_threshold:g}")
    )
    out.extend(detector_infos(asset))
    out.extend(diagnosis_infos(asset))
    out.extend(validation_infos(asset))  # SensorFault variables (edge.twin.validation_hook)
    for leaf, dtype, units, text in ASSET_DIAGNOSTIC_FIELDS:
        out.append(TagInfo(names.asset_diag_key(a, leaf), names.asset_diag_path(a, leaf), dtype, units, description=text))
    return out


class TwinRunner:
    """Runs every asset whose tick period is ``tick_s``."""

    def __init__(self, assets: Sequence[AssetConfig], registry: TagRegistry, tick_s: float) -> None:
        self.assets = list(assets)
        self.registry = registry
        self.tick_s = tick_s
        self.last_tick_s = 0.0
        self.ticks = Histogram()  # every tick's duration (metrics: edgetwin_twin_tick_seconds of each asset)
        self._tick_keys = [names.asset_diag_key(a.name, "TickTime") for a in self.assets]
        self._tick_published: float | None = None
        self._diag_due = 0.0
        grouped: dict[tuple[str, float], list[tuple[KalmanChannel, float]]] = defaultdict(list)
        for asset in self.assets:
            for sig in asset.signals:
                ch = KalmanChannel(asset.name, sig.name, sig.tag, sig.measurement_noise**2, round(sig.forecast_horizon_s / tick_s), asset.warmup_ticks)
                grouped[(sig.model, sig.process_noise)].append((ch, asset.score_alpha))
        self.groups = [KalmanGroup(model, q, tick_s, [c for c, _ in members], np.array([a for _, a in members])) for (model, q), members in grouped.items()]
        # Per-asset aggregation, vectorised: each channel's asset index, in group order.
        index = {a.name: i for i, a in enumerate(self.assets)}
        self._asset_of = (
            np.concatenate([np.array([index[c.asset] for c in g.channels], dtype=np.intp) for g in self.groups]) if self.groups else np.empty(0, np.intp)
        )
        n_assets = len(self.assets)
        self._signals_per_asset = np.bincount(self._asset_of, minlength=n_assets)
        self.alarms = AssetAlarms(self.assets, self.groups, self._asset_of, tick_s)
        self._alarm = np.zeros(n_assets, dtype=bool)  # the anomaly alarm or a flagged sensor (edge.twin.alarm, validation)
        self._alarm_published: list[tuple[bool, int] | None] = [None] * n_assets
        self._asset_keys = [(names.asset_output_key(a.name, "anomaly_score"), names.asset_output_key(a.name, "alarm")) for a in self.assets]
        self.model_groups = build_model_groups(self.assets, registry, tick_s)
        self._models = {ch.asset: (g, i) for g in self.model_groups for i, ch in enumerate(g.channels)}
        self.model_links = ModelLinks(self.model_groups, self.groups, index)  # model scores; learn only out of alarm and trusted
        self.detectors = [AssetDetector(a) for a in self.assets if a.detector is not None]  # [assets.detector]
        self.diagnosers: list[tuple[int, AssetDiagnoser]] = []  # [assets.diagnosis], see build_runners
        self._kalman_of = {(c.asset, c.signal): (g, i) for g in self.groups for i, c in enumerate(g.channels)}
        self.validation = RunnerValidation(self.assets, registry, tick_s, self._kalman_of, self._models)  # per-signal sensor validation
        self.state_store: TwinStateStore | None = None  # saves periodically in run() (edge.twin.persist)
        self.config_hashes: dict[str, str] = {}  # asset -> hash of the config it was built from (TwinStateStore.attach)

    async def run(self) -> None:
        """Tick forever; with a ``state_store``, a child task ``twin-state:<tick>`` saves the state
        every ``save_interval_s`` (snapshot between ticks, file I/O in a worker thread, so a slow
        disk never delays a tick)."""
        store = self.state_store
        if store is None:
            await self._tick_forever()
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._save_forever(store), name=f"twin-state:{self.tick_s:g}s")
            await self._tick_forever()

    async def _save_forever(self, store: TwinStateStore) -> None:
        while True:
            await asyncio.sleep(store.save_interval_s)
            await store.save_async(self)

    async def _tick_forever(self) -> None:
        next_due = time.monotonic()
        while True:
            started = time.perf_counter()
            self.registry.publish(self.tick())
            self.last_tick_s = took = time.perf_counter() - started
            self.ticks.observe(took)
            next_due += self.tick_s
            now = time.monotonic()
            if now >= self._diag_due:
                self._diag_due = now + DIAGNOSTICS_INTERVAL_S
                self._publish_diagnostics()
            if next_due < now:
                next_due = now
            await asyncio.sleep(next_due - now)

    def _publish_diagnostics(self) -> None:
        """Each asset's TickTime (the last tick of this runner), if it changed since last published."""
        tick = self.last_tick_s
        if tick != self._tick_published:
            self._tick_published = tick
            now = utcnow()
            self.registry.publish([TagSample(key, tick, Status.Good, now, now) for key in self._tick_keys])

    def tick(self, now: datetime | None = None) -> list[TagSample]:
        """One step of every bank at *now* (default: the clock); returns the samples to publish."""
        # A tick allocates several samples per channel, all alive until published. With thousands
        # of channels the cyclic GC would otherwise run every few hundred allocations and walk the
        # whole registry each time (half the tick's cost at 10,000 channels); nothing here makes
        # reference cycles, so it is paused for the tick and restored after.
        with paused_gc():
            return self._tick(utcnow() if now is None else now)

    def _tick(self, now: datetime) -> list[TagSample]:
        out: list[TagSample] = self.validation.before(self.registry, now)  # before the filters: held-back spikes never reach them
        scores, statuses = [], []
        for j, mg in enumerate(self.model_groups):  # first: their scores stand in for the Kalman ones
            out += mg.tick(self.registry, now, self.model_links.learn(j, self.alarms) & self.validation.model_learn(mg))  # trusted signals only
        self.validation.after_models()
        for g, override in zip(self.groups, self.model_links.overrides()):
            samples, score, status = g.tick(self.registry, now, override)
            out += samples
            scores.append(score)
            statuses.append(status)
        if self.assets:
            out += self._asset_outputs(np.concatenate(scores) if scores else np.empty(0), np.concatenate(statuses) if statuses else np.empty(0, np.int64), now)
        for det in self.detectors:
            out += det.tick(self.registry, now)
        for i, diag in self.diagnosers:
            out += diag.tick(self.registry, now, bool(self._alarm[i]))
        return out

    def _asset_outputs(self, score: np.ndarray, status: np.ndarray, now: datetime) -> list[TagSample]:
        """Per asset: the largest score of its warm signals, and the alarm with hysteresis."""
        n_assets = len(self.assets)
        warm = status != BAD_WAITING
        value = np.full(n_assets, -np.inf)
        np.maximum.at(value, self._asset_of[warm], score[warm])
        n_warm = np.bincount(self._asset_of[warm], minlength=n_assets)
        n_good = np.bincount(self._asset_of[severity(status) == 0], minlength=n_assets)
        any_warm = n_warm > 0
        asset_status = np.where(~any_warm, BAD_WAITING, np.where(n_good == self._signals_per_asset, GOOD, UNCERTAIN))
        was = self._alarm
        # where each signal is now: its new reading, else its estimate (a slowly following filter
        # estimate would look "back to normal" while the readings keep moving away)
        level = np.concatenate([np.where(np.isfinite(g.measured), g.measured, g.bank.estimate) for g in self.groups]) if self.groups else np.empty(0)
        active = self.alarms.update(value, any_warm, score, level, warm) | (self.validation.asset_flags(n_assets) & any_warm)
        self._alarm = active
        for i in np.flatnonzero(active != was).tolist():
            a = self.assets[i]
            log.warning("twin_alarm" if active[i] else "twin_alarm_cleared", asset=a.name, score=round(float(value[i]), 2), threshold=a.alarm_threshold)
        out: list[TagSample] = []
        published = self._alarm_published
        for i, ((k_score, k_alarm), st, v, on) in enumerate(zip(self._asset_keys, asset_status.tolist(), value.tolist(), active.tolist())):
            warm = st != BAD_WAITING
            out.append(sample(k_score, v if warm else None, st, now, now))
            if published[i] != (on, st):  # the alarm is published on change (its source time is the change)
                published[i] = (on, st)
                out.append(sample(k_alarm, on if warm else None, st, now, now))
        return out

    # -- identified models: what-if and reset (back the OPC UA Simulate / ResetModel methods) ---
    @property
    def model_assets(self) -> list[str]:
        """Names of this runner's assets that have an identified input->output model."""
        return list(self._models)

    def _model(self, asset: str) -> tuple[ModelGroup, int]:
        try:
            return self._models[asset]
        except KeyError:
            if any(a.name == asset for a in self.assets):
                raise ValueError(f"asset {asset!r} has no identified input->output model (no signal with an input)") from None
            raise ValueError(f"unknown asset {asset!r}") from None

    def model_period_s(self, asset: str) -> float:
        """The sample period of *asset*'s identified model: one Simulate step."""
        return self._model(asset)[0].period_s

    def _warm(self, asset: str) -> tuple[ModelGroup, int]:
        g, i = self._model(asset)
        if not g.channels[i].warm:
            raise ValueError(f"the model of asset {asset!r} is not identified yet (it needs {g.channels[i].warmup} samples and an input that moves)")
        return g, i

    def simulate(self, asset: str, inputs: Sequence[float], horizon_steps: int) -> list[float]:
        """Predicted output of *asset*'s identified model over *horizon_steps* model periods.

        Steps are model periods (``model_period_s``), step 0 being the one that starts now.
        ``inputs[j]`` is the input held during step j; when ``len(inputs) < horizon_steps`` the
        last input is held. Element j of the result is the predicted output (its average over step
        j, in the output tag's units); an input acts from the step after it is applied on (plus
        the dead time), so element 0 depends only on the past. Raises ValueError for an
        unknown asset, an asset without an identified model or whose model is not warm yet, an
        empty or too long *inputs*, a non-finite input, an input outside the input tag's
        low/high limits, or *horizon_steps* outside 1..MAX_SIM_STEPS. Nothing is clamped.
        """
        return self.simulate_interval(asset, inputs, horizon_steps)[0]

    def simulate_interval(self, asset: str, inputs: Sequence[float], horizon_steps: int) -> tuple[list[float], list[float], list[float]]:
        """Like ``simulate``, plus the lower and upper bounds of the 95 % prediction interval."""
        g, i = self._warm(asset)
        c = g.channels[i]
        if isinstance(horizon_steps, bool) or not isinstance(horizon_steps, int | np.integer):
            raise ValueError(f"horizon_steps must be an integer, got {horizon_steps!r}")
        if not 1 <= horizon_steps <= MAX_SIM_STEPS:
            raise ValueError(f"horizon_steps must be in 1..{MAX_SIM_STEPS}, got {horizon_steps}")
        try:
            u = np.array([float(v) for v in inputs], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError("inputs must be a sequence of numbers") from None
        if u.size == 0:
            raise ValueError("inputs must not be empty")
        if u.size > horizon_steps:
            raise ValueError(f"{u.size} inputs for a horizon of {horizon_steps} steps")
        if not np.all(np.isfinite(u)):
            raise ValueError("inputs must be finite")
        bad = (u < c.low) | (u > c.high)
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(f"inputs[{j}] = {u[j]:g} is outside the limits of {c.input_tag} ({c.low:g}..{c.high:g})")
        full = np.concatenate([u, np.full(horizon_steps - u.size, u[-1])])
        mean, var = g.simulate(i, full)
        half = Z95 * np.sqrt(var)
        return mean.tolist(), (mean - half).tolist(), (mean + half).tolist()

    def reset_model(self, asset: str) -> None:
        """Forget *asset*'s identified model; its outputs wait for initial data again at once."""
        g, i = self._model(asset)
        g.reset(i)
        now = utcnow()
        self.registry.publish([sample(k, None, Status.BadWaitingForInitialData, now, now) for k in g.channels[i].keys])
        log.info("twin_model_reset", asset=asset, signal=g.channels[i].signal)
        if self.state_store is not None:  # a restart must not bring the old model back
            self.state_store.save(self, [asset])

    # -- saved state (edge.twin.state, edge.twin.persist) -------------------------------------------
    def _detector(self, asset: str) -> AssetDetector | None:
        return next((d for d in self.detectors if d.asset == asset), None)

    def export_state(self, asset: str, config_hash: str, now: datetime) -> AssetState:
        """What *asset*'s twin has learnt (copies), to be saved."""
        cfg = next(a for a in self.assets if a.name == asset)
        filters = {}
        for s in cfg.signals:
            g, i = self._kalman_of[(asset, s.name)]
            filters[s.name] = g.export_channel(i)
        model = None
        if asset in self._models:
            mg, mi = self._models[asset]
            model = mg.export_channel(mi)
        det = self._detector(asset)
        return AssetState(asset, config_hash, now, filters, model, None if det is None else det.export_state(), self.validation.export_state(asset))

    def import_state(self, state: AssetState, now: datetime) -> None:
        """Continue *state.asset*'s twin from *state*: filters coasted over the ticks missed since it
        was saved, the identified model and the fitted detector as they were. ValueError when the
        state does not fit the configured twin; the asset then starts fresh."""
        asset = state.asset
        cfg = next((a for a in self.assets if a.name == asset), None)
        if cfg is None:
            raise ValueError(f"unknown asset {asset!r}")
        signals = sorted(s.name for s in cfg.signals)
        if sorted(state.filters) != signals:
            raise ValueError(f"saved signals {sorted(state.filters)} are not the configured {signals}")
        if (state.model is None) != (asset not in self._models):
            raise ValueError("the saved state and the config disagree on the identified model")
        det = self._detector(asset)
        if state.detector is not None and det is None:
            raise ValueError("the saved state has a detector the config does not")
        coast = min(int(state.age_s(now) / self.tick_s), 10**12)
        try:
            for name, fs in state.filters.items():
                g, i = self._kalman_of[(asset, name)]
                g.import_channel(i, fs, coast)
            if state.model is not None:
                mg, mi = self._models[asset]
                mg.import_channel(mi, state.model)
            if state.detector is not None and det is not None:
                det.import_state(state.detector)
            self.validation.import_state(asset, state.validation)
        except ValueError:
            self._forget(asset)
            raise

    def _forget(self, asset: str) -> None:
        """Back to a fresh start for *asset* (after a partial import)."""
        cfg = next(a for a in self.assets if a.name == asset)
        for s in cfg.signals:
            g, i = self._kalman_of[(asset, s.name)]
            g.reset_channel(i)
        if asset in self._models:
            mg, mi = self._models[asset]
            mg.reset(mi)
        self.detectors = [AssetDetector(cfg) if d.asset == asset else d for d in self.detectors]
        self.validation.forget(asset)


def build_runners(
    assets: Sequence[AssetConfig],
    registry: TagRegistry,
    state_store: TwinStateStore | None = None,
    patterns: Callable[[AssetConfig], PatternFile] | None = None,
) -> list[TwinRunner]:
    """One runner per tick period; with *state_store*, each restores its assets' saved state and
    saves it periodically; with *patterns* (the library file of an asset), assets with
    ``[assets.diagnosis]`` are diagnosed."""
    by_tick: dict[float, list[AssetConfig]] = defaultdict(list)
    for a in assets:
        by_tick[a.tick_s].append(a)
    runners = [TwinRunner(group, registry, tick) for tick, group in by_tick.items()]
    if patterns is not None:
        for r in runners:
            r.diagnosers = build_diagnosers(r.assets, r.tick_s, registry, patterns)
            for i, diag in r.diagnosers:  # Contributors by RBC when the asset's detector is PCA
                diag.pca = pca_source(r._detector, r.assets[i].name, [s.name for s in r.assets[i].signals])
    if state_store is not None:
        for r in runners:
            state_store.attach(r)
    return runners
