"""The live detector of an asset ([assets.detector]) inside the TwinRunner: training window,
status rules, alarm on a broken correlation, and the same numbers as the offline replay."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from structlog.testing import capture_logs

from drivers.sample import Status, TagSample, utcnow
from edge.config import AssetConfig, DetectorConfig, SignalConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.detector import feature_floor, fit_pca_detector, pca_features
from edge.twin.runner import TwinRunner, signal_infos

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
