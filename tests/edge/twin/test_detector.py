"""The live detector of an asset ([assets.detector]) inside the TwinRunner: training window,
status rules, alarm on a broken correlation, and the same numbers as the offline replay."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from structlog.testing import capture_logs

import kernels
from drivers.sample import Status, TagSample, utcnow
from edge.config import AssetConfig, DetectorConfig, SignalConfig
from edge.config.models import DETECTOR_ON
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.detector import feature_floor, fit_pca_detector, pca_features
from edge.twin.runner import TwinRunner, signal_infos
from edge.twin.state import AssetState, DetectorState, decode, encode

TRAIN = 60


def _setup(alarm_threshold: float = 1e9, **detector) -> tuple[TwinRunner, TagRegistry]:
    reg = TagRegistry()
    signals = []
    for name in ("flow", "pressure", "temp"):
        reg.add(TagInfo(f"plc.{name}", ("Devices", "plc", name), "float64", None, device="plc"))
        signals.append(SignalConfig(name=name, tag=f"plc.{name}", process_noise=1e-4, measurement_noise=0.1))
    det = DetectorConfig(train_ticks=TRAIN, rate_only=["temp"], **detector)
    asset = AssetConfig(name="pump", tick_s=1.0, signals=signals, detector=det, alarm_threshold=alarm_threshold)
    for info in signal_infos(asset, reg):
        reg.add(info)
    return TwinRunner([asset], reg, 1.0), reg


def _data(rows: int, fault_from: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    load = 10 + np.sin(np.arange(rows) / 8) + rng.normal(0, 0.05, rows)
    flow = load + rng.normal(0, 0.05, rows)
    pressure = 0.3 * load + rng.normal(0, 0.02, rows)
    pressure[fault_from:] += 0.6  # a pressure sensor bias
    temp = 40 + np.arange(rows) * 0.02 + rng.normal(0, 0.02, rows)
    return np.column_stack([flow, pressure, temp])


def _run(twin: TwinRunner, reg: TagRegistry, rows: np.ndarray, status: int = Status.Good) -> list[dict[str, TagSample]]:
    t = utcnow()
    ticks = []
    for row in rows:
        t += timedelta(seconds=1)
        reg.publish([TagSample(f"plc.{n}", float(v), status, t, t) for n, v in zip(("flow", "pressure", "temp"), row)])
        samples = twin.tick()
        reg.publish(samples)
        out = {s.tag: s for s in samples if s.tag.startswith("pump.detector.")}
        out.setdefault("pump.detector.alarm", reg.latest("pump.detector.alarm"))
        ticks.append(out)
    return ticks


def test_waits_for_the_training_window_then_scores_and_alarms() -> None:
    twin, reg = _setup()
    rows = _data(200, fault_from=150)
    with capture_logs() as logs:
        ticks = _run(twin, reg, rows)
    # the first row has no difference yet: TRAIN complete rows end at row TRAIN
    assert all(t["pump.detector.score"].status == Status.BadWaitingForInitialData and t["pump.detector.score"].value is None for t in ticks[: TRAIN + 1])
    assert ticks[TRAIN + 1]["pump.detector.score"].status == Status.Good
    alarm = np.array([bool(t["pump.detector.alarm"].value) for t in ticks])
    assert not alarm[:150].any()
    assert alarm[155:].all()
    events = [e["event"] for e in logs]
    assert "detector_fitted" in events and events.count("detector_alarm") == 1
    # the replay's functions on the same rows (fit on the window, then every row in order) give the same scores
    feats = pca_features(rows, True, (2,))[1:]  # the live detector starts at the first difference
    cfg = twin.detectors[0].cfg
    floor = feature_floor(rows[1 : TRAIN + 1], cfg.floor_fraction, True, (2,), np.full(3, 0.1))
    offline = fit_pca_detector(feats[:TRAIN], cfg, floor)
    offline.step(feats[:TRAIN], False)
    _, _, score, off_alarm = offline.step(feats[TRAIN:])
    score, off_alarm = np.concatenate([np.full(TRAIN, np.nan), score]), np.concatenate([np.zeros(TRAIN, bool), off_alarm])
    live = np.array([t["pump.detector.score"].value for t in ticks[TRAIN + 1 :]])
    np.testing.assert_allclose(live, score[TRAIN:], rtol=1e-12)
    assert (alarm[TRAIN + 1 :] == off_alarm[TRAIN:]).all()


def test_uncertain_input_holds_outputs_as_uncertain() -> None:
    twin, reg = _setup()
    _run(twin, reg, _data(TRAIN + 10, fault_from=10_000))
    held = reg.latest("pump.detector.score").value
    tick = _run(twin, reg, _data(1, fault_from=10_000), status=Status.UncertainLastUsableValue)[0]
    assert tick["pump.detector.score"].status == Status.UncertainSubNormal
    assert tick["pump.detector.score"].value == held
    assert tick["pump.detector.alarm"].status == Status.UncertainSubNormal and tick["pump.detector.alarm"].value is False


def test_detector_nodes_are_declared_only_when_configured() -> None:
    _, reg = _setup()
    assert {"pump.detector.score", "pump.detector.t2", "pump.detector.q", "pump.detector.alarm"} <= {i.key for i in reg.infos()}
    plain = AssetConfig(name="a", signals=[SignalConfig(name="x", tag="plc.flow")])
    assert not [i for i in signal_infos(plain, reg) if ".detector." in i.key]


@pytest.mark.parametrize(
    ("detector", "message"),
    [({"rate_only": ["nope"]}, "rate_only names no signal"), ({"k": 3, "window": 2}, "must not exceed window")],
)
def test_config_errors(detector: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AssetConfig(name="a", signals=[SignalConfig(name="x", tag="p.x"), SignalConfig(name="y", tag="p.y")], detector=detector)


@pytest.mark.parametrize("kind", ["ewma", "cusum"])
def test_ewma_and_cusum_run_live_on_the_twins_innovations(kind: str) -> None:
    """kind = "ewma" | "cusum": trained on the innovations of the window (a steady operating point,
    which the twin's random-walk filters model well), then an alarm on a pressure bias; Score and
    Alarm are published (no T2 / Q nodes)."""
    twin, reg = _setup(kind=kind)
    rng = np.random.default_rng(5)
    data = np.column_stack([10 + rng.normal(0, 0.1, 260), 3 + rng.normal(0, 0.1, 260), 40 + rng.normal(0, 0.1, 260)])
    data[200:, 1] += 0.6
    keys = {i.key for i in reg.infos() if ".detector." in i.key}
    assert keys == {"pump.detector.score", "pump.detector.alarm"}
    with capture_logs() as logs:
        ticks = _run(twin, reg, data)
    fitted = [e for e in logs if e["event"] == "detector_fitted"]
    assert len(fitted) == 1 and fitted[0]["kind"] == kind
    det = twin.detectors[0]
    assert isinstance(det.detector, kernels.ResidualDetector) and det.detector.kind == kind
    assert det.detector.on[0] == DETECTOR_ON[kind]
    alarm = np.array([bool(t["pump.detector.alarm"].value) for t in ticks])
    scored = [t["pump.detector.score"] for t in ticks if t["pump.detector.score"].status == Status.Good]
    assert scored and all(np.isfinite(s.value) for s in scored)
    assert not alarm[:200].any()
    assert alarm[200:206].any()  # within a few ticks of the bias


@pytest.mark.slow
def test_pca_learns_a_slow_drift_live_and_the_fixed_model_does_not() -> None:
    """The load's operating point rises slowly (2 over 1,000 ticks): the default adapting detector
    stays quiet, the same detector with memory = 0 and no floor alarms."""
    rng = np.random.default_rng(7)
    rows = 1000
    load = 10 + np.linspace(0, 2, rows) + 0.3 * np.sin(np.arange(rows) / 8) + rng.normal(0, 0.05, rows)
    data = np.column_stack([load + rng.normal(0, 0.05, rows), 0.3 * load + rng.normal(0, 0.02, rows), 40 + rng.normal(0, 0.02, rows)])
    adaptive, reg = _setup(memory=300, delay=20)
    alarm = np.array([bool(t["pump.detector.alarm"].value) for t in _run(adaptive, reg, data)])
    fixed, reg2 = _setup(memory=0, floor_fraction=0.0)
    fixed_alarm = np.array([bool(t["pump.detector.alarm"].value) for t in _run(fixed, reg2, data)])
    assert fixed_alarm[600:].mean() > 0.9
    assert alarm[TRAIN:].mean() < 0.02
    assert adaptive.detectors[0].detector.learned > 800


def test_no_learning_while_the_assets_alarm_is_on() -> None:
    """The twin's own alarm (<asset>.alarm) pauses learning, and drops the ticks waiting in the delay buffer."""
    twin, reg = _setup(delay=10)
    rows = _data(TRAIN + 121, fault_from=10_000)  # one continuous recording
    _run(twin, reg, rows[: TRAIN + 41])
    det = twin.detectors[0].detector
    assert isinstance(det, kernels.AdaptivePca)
    learned = det.learned
    assert learned == 30 and len(det.pending) == 10  # 40 scored ticks, 10 still waiting
    t = utcnow()
    reg.publish([TagSample("pump.alarm", True, Status.Good, t, t)])
    _run(twin, reg, rows[TRAIN + 41 : TRAIN + 91])
    assert det.learned == learned and len(det.pending) == 0
    reg.publish([TagSample("pump.alarm", False, Status.Good, t, t)])
    _run(twin, reg, rows[TRAIN + 91 :])
    assert det.learned == learned + 20  # 30 new ticks, 10 still in the delay buffer


@pytest.mark.slow
def test_a_level_held_constant_in_training_scores_sanely_when_it_moves() -> None:
    """A valve held at exactly 50 % of its 0-100 % range while the detector trained, then opened
    to 52 % over 100 ticks with the flow following it: the variance floor (1 % of the range)
    keeps the score sane and the alarm off; with the floor at the measurement noise only it latches."""
    rng = np.random.default_rng(11)
    rows = 600
    valve = np.concatenate([np.full(300, 50.0), np.linspace(50, 52, 100), np.full(200, 52.0)])
    flow = 0.4 * valve + rng.normal(0, 0.05, rows)
    data = np.column_stack([flow, 0.3 * flow + rng.normal(0, 0.02, rows), valve])

    def run(**detector) -> tuple[np.ndarray, np.ndarray]:
        reg = TagRegistry()
        ranges = {"flow": (0.0, 50.0), "pressure": (0.0, 20.0), "valve": (0.0, 100.0)}
        signals = []
        for name, (lo, hi) in ranges.items():
            reg.add(TagInfo(f"plc.{name}", ("Devices", "plc", name), "float64", None, lo, hi, device="plc"))
            signals.append(SignalConfig(name=name, tag=f"plc.{name}", process_noise=1e-4, measurement_noise=0.01))
        asset = AssetConfig(name="pump", signals=signals, detector=DetectorConfig(train_ticks=200, **detector), alarm_threshold=1e9)
        for info in signal_infos(asset, reg):
            reg.add(info)
        twin = TwinRunner([asset], reg, 1.0)
        t = utcnow()
        scores, alarms = [], []
        for row in data:
            t += timedelta(seconds=1)
            reg.publish([TagSample(f"plc.{n}", float(v), Status.Good, t, t) for n, v in zip(ranges, row)])
            reg.publish(twin.tick())
            scores.append(reg.latest("pump.detector.score").value or np.nan)
            alarms.append(bool(reg.latest("pump.detector.alarm").value))
        return np.array(scores), np.array(alarms)

    score, alarm = run()
    assert not alarm.any()
    assert np.nanmax(score[300:]) < 1.25
    bare_score, bare_alarm = run(floor_fraction=0.0, memory=0)
    assert bare_alarm[400:].all() and np.nanmax(bare_score) > 1000  # floored by the measurement noise only


def test_saved_detector_continues_as_the_running_one() -> None:
    """Export, encode, decode, import: the restored detector has the learned statistics and the
    variance floor, and scores the next ticks exactly as the one that kept running."""
    twin, reg = _setup(delay=5, refit_every=1000)
    _run(twin, reg, _data(TRAIN + 80, fault_from=10_000))
    saved = decode(encode(twin.export_state("pump", "h", utcnow())))
    assert saved.detector is not None and saved.detector.adaptive is not None
    fresh, _ = _setup(delay=5, refit_every=1000)
    fresh.detectors[0].import_state(saved.detector)
    a, b = twin.detectors[0].detector, fresh.detectors[0].detector
    assert isinstance(a, kernels.AdaptivePca) and isinstance(b, kernels.AdaptivePca)
    np.testing.assert_array_equal(a.cov, b.cov)
    np.testing.assert_array_equal(a.var_floor, b.var_floor)
    assert (a.count, a.since_refit) == (b.count, b.since_refit)
    feats = pca_features(_data(TRAIN + 90, fault_from=10_000), True, (2,))[TRAIN + 81 :]  # the rows that would come next (no refit in between)
    for x, y in zip(a.step(feats), b.step(feats)):
        np.testing.assert_array_equal(x, y)


def test_an_old_saved_detector_without_learned_statistics_restarts_them_from_its_model() -> None:
    twin, reg = _setup()
    _run(twin, reg, _data(TRAIN + 5, fault_from=10_000))
    st = twin.export_state("pump", "h", utcnow()).detector
    assert st is not None
    old = DetectorState(st.mean, st.scale, st.loadings, st.eigvals, st.all_eigvals, st.t2_limit, st.q_limit, st.stat, st.history, st.alarm)
    fresh, _ = _setup()
    fresh.detectors[0].import_state(decode(encode(AssetState("pump", "h", utcnow(), detector=old))).detector)
    det = fresh.detectors[0].detector
    assert isinstance(det, kernels.AdaptivePca) and det.count == TRAIN
    np.testing.assert_allclose(det.mean, st.mean)


def test_live_alarm_ends_by_the_peak_release_as_in_the_replay() -> None:
    """A large pressure fault (scores in the thousands) that returns to a state still off the old
    one (scores near 100, far above `on`): with the default peak_release 0.1 the live alarm clears
    a few ticks after the return and stays clear; with peak_release 0 it holds. The live alarm is
    the replay's, row for row."""
    rows = _data(400, fault_from=10**6)
    rows[150:200, 1] += 5.0
    rows[200:, 1] += 0.6
    alarms = {}
    for fraction in (0.0, 0.1):
        twin, reg = _setup(peak_release=fraction)
        with capture_logs() as logs:
            ticks = _run(twin, reg, rows)
        alarm = np.array([bool(t["pump.detector.alarm"].value) for t in ticks])
        alarms[fraction] = alarm
        assert not alarm[:150].any() and alarm[152:200].all()
        cfg = twin.detectors[0].cfg
        feats = pca_features(rows, True, (2,))[1:]
        floor = feature_floor(rows[1 : TRAIN + 1], cfg.floor_fraction, True, (2,), np.full(3, 0.1))
        offline = fit_pca_detector(feats[:TRAIN], cfg, floor)
        offline.step(feats[:TRAIN], False)
        assert (alarm[TRAIN + 1 :] == offline.step(feats[TRAIN:])[3]).all()
        if fraction:
            assert [e["event"] for e in logs].count("detector_alarm_cleared") == 1
    assert alarms[0.0][200:].all()
    assert not alarms[0.1][215:].any()
