"""The identified model's guard: no learning in alarm, on an untrusted signal or an unseen input;
the last good state and the automatic reset to it; the forecast taking a setpoint change at once;
the guard in the saved state. On the small synthetic twin of ``rig.py`` (simulated time)."""

from __future__ import annotations

import numpy as np
import pytest
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample
from edge.twin import model_guard
from edge.twin.model_guard import ADOPT_PERIODS, ModelGuard
from edge.twin.runner import TwinRunner
from edge.twin.state import decode, encode
from tests.edge.twin.rig import PERIOD_S, T0, TICK_S, Process, asset_config, registry_for, trained


def _params(twin: TwinRunner) -> tuple[np.ndarray, np.ndarray, int]:
    b = twin.model_groups[0].banks[0]
    return b.theta[0].copy(), b.P[0].copy(), int(b.updates[0])


def test_an_untrusted_signal_does_not_teach_the_model_and_trust_resumes_it() -> None:
    """set_trusted(False) freezes parameters, covariance and update count through heater moves."""
    twin, proc = trained()
    twin.model_links.set_trusted("tank", "temperature", False)
    before = _params(twin)
    for heater in (35.0, 65.0, 50.0):
        proc.feed(twin, 40, heater)
    after = _params(twin)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    assert twin.model_groups[0].guard.paused[0]
    twin.model_links.set_trusted("tank", "temperature", True)
    proc.feed(twin, 40, 60.0)
    assert _params(twin)[2] > before[2]


def test_the_model_does_not_learn_while_the_asset_is_in_alarm() -> None:
    """A level fault raises the asset alarm; heater moves during it leave the model untouched."""
    twin, proc = trained()
    before = _params(twin)
    proc.level += 30.0  # a level transmitter fault (far outside its noise)
    proc.feed(twin, 3)
    assert twin.alarms.on[0]
    for heater in (35.0, 65.0):
        proc.feed(twin, 20, heater)
        assert twin.alarms.on[0]
    assert _params(twin)[2] == before[2]
    assert np.array_equal(_params(twin)[0], before[0])


def test_an_unseen_input_pauses_learning_until_adopted() -> None:
    """A heater far above the identified range is not learnt for ADOPT_PERIODS periods, then it is."""
    twin, proc = trained()
    g = twin.model_groups[0]
    assert g.guard.seen_hi[0] < 85.0
    before = _params(twin)
    period_ticks = round(PERIOD_S / TICK_S)
    proc.feed(twin, period_ticks * (ADOPT_PERIODS - 2), 95.0)
    assert g.guard.unseen[0] and _params(twin)[2] == before[2]
    for _ in range(60):  # the adoption count pauses while the asset is in alarm
        proc.feed(twin, period_ticks)
        if not g.guard.unseen[0]:
            break
        assert _params(twin)[2] == before[2]
    assert not g.guard.unseen[0] and g.guard.seen_hi[0] == pytest.approx(95.0)
    proc.feed(twin, period_ticks * 2)
    assert _params(twin)[2] > before[2]


def test_a_model_gone_implausible_goes_back_to_its_last_good_state() -> None:
    """A pole pushed outside (0, 1) is reset to the last good parameters, with an event and a count."""
    twin, proc = trained()
    g = twin.model_groups[0]
    assert g.guard.has_good[0]
    good = g.guard.good_theta[0, 0].copy()
    g.banks[0].theta[0, 0] = 1.2  # an unstable pole, as a diverging update would leave it
    with capture_logs() as logs:
        proc.feed(twin, round(PERIOD_S / TICK_S) * 2)
    events = [e for e in logs if e["event"] == "twin_model_restored"]
    assert len(events) == 1 and events[0]["reason"] == "implausible_parameters" and events[0]["signal"] == "temperature"
    assert g.guard.restores[0] == 1
    assert 0 < g.banks[0].theta[0, 0] < 1
    assert g.banks[0].theta[0, 0] == pytest.approx(good[0], rel=0.05)


def test_errors_inconsistent_with_the_last_good_interval_are_detected() -> None:
    """The guard's miss rate rises on one-step errors far outside the interval and flags the model."""
    guard = ModelGuard(1, 1, 3, np.array([0.0]), np.array([100.0]), np.array([0.3]))
    guard.has_good[:] = True
    learnt, warm, plausible = np.ones(1, bool), np.ones(1, bool), np.ones(1, bool)
    for _ in range(10):
        guard.observe(np.array([0.1]), np.array([0.01]), learnt)  # 1 sigma: consistent
    assert not guard.went_wrong(learnt, warm, plausible)[1][0]
    for _ in range(20):
        guard.observe(np.array([1.0]), np.array([0.01]), learnt)  # 10 sigma
    assert guard.went_wrong(learnt, warm, plausible)[1][0]


def test_the_forecast_takes_a_setpoint_change_at_once() -> None:
    """A heater change between model periods republishes Forecast/Low/High on that very tick."""
    twin, proc = trained()
    period_ticks = round(PERIOD_S / TICK_S)
    while twin.model_groups[0].ticks % period_ticks != 0:
        proc.feed(twin, 1)
    out = proc.feed(twin, 1)  # mid-period, input unchanged: nothing from the model
    assert not [s for s in out if s.tag.startswith("tank.temperature.model_")]
    before = twin.registry.latest("tank.temperature.model_forecast").value
    proc.heater = 90.0
    proc.step()
    twin.registry.publish([TagSample("plc.heater", 90.0, Status.Good, proc.t, proc.t)])
    out = twin.tick()
    fc = {s.tag: s.value for s in out if s.tag.startswith("tank.temperature.model_forecast")}
    assert set(fc) == {"tank.temperature.model_forecast", "tank.temperature.model_forecast_low", "tank.temperature.model_forecast_high"}
    assert fc["tank.temperature.model_forecast"] > before + 1.0  # gain 0.5 x 35 % over 10 s of a 20 s lag


def test_the_guard_travels_in_the_saved_state() -> None:
    """Identified range, quantiles, model-error share, restores and the last good state round-trip."""
    twin, _ = trained()
    g = twin.model_groups[0].guard
    g.restores[0] = 3
    g.step_quantile[0] = 2.5
    state = decode(encode(twin.export_state("tank", "h", T0)))
    fresh = TwinRunner([asset_config()], registry_for(asset_config()), TICK_S)
    fresh.import_state(state, T0)
    f = fresh.model_groups[0].guard
    for name in ("seen_lo", "seen_hi", "quantile", "kappa", "step_quantile", "restores", "has_good"):
        assert getattr(f, name)[0] == getattr(g, name)[0], name
    assert np.array_equal(f.good_theta[:, 0], g.good_theta[:, 0])


def test_period_alpha_and_intra_period_weight() -> None:
    """The per-period score factor matches the per-tick one (capped); late input changes weigh less."""
    assert model_guard.period_alpha(0.05, 1) == pytest.approx(0.05)
    assert model_guard.period_alpha(0.05, 20) == 0.3
    w = [float(model_guard.intra_period_weight(j, 20, 0.5, np.array([300.0]))[0]) for j in (0, 10, 19)]
    assert w[0] > w[1] > w[2] > 0
    assert model_guard.intra_period_weight(0, 20, 0.5, np.array([np.nan]))[0] == 0.0


def test_proc_helper_is_deterministic() -> None:
    """The synthetic process used above is seeded (the tests above do not depend on luck)."""
    a, b = Process(), Process()
    a.step()
    b.step()
    assert a.temp == b.temp and a.level == b.level
