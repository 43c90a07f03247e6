"""Contributors from the asset's PCA detector: once the detector is fitted, the live diagnoser
orders the signals by their RBC to the detector's index over the episode (edge.twin.runner wires
the detector to the diagnoser); before that, and for an asset without a PCA detector, by the
signature's standardized deviations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np

from drivers.sample import Status, TagSample, utcnow
from edge.config import AssetConfig, DetectorConfig, SignalConfig
from edge.config.models import DiagnosisConfig
from edge.core import names
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.diagnosis.library import Library, PatternFile, save
from edge.twin.diagnosis.pca_contrib import PcaView, signal_contributions
from edge.twin.runner import build_runners, signal_infos

SIGNALS = ("flow", "pressure", "temp")
TRAIN = 120


def _rig(tmp_path: Path, detector: bool):
    reg = TagRegistry()
    signals = []
    for name in SIGNALS:
        reg.add(TagInfo(f"plc.{name}", ("Devices", "plc", name), "float64", None, device="plc"))
        signals.append(SignalConfig(name=name, tag=f"plc.{name}", process_noise=1e-3, measurement_noise=0.05))
    det = DetectorConfig(train_ticks=TRAIN, rate_only=["temp"]) if detector else None
    diag = DiagnosisConfig(library="pump", baseline_s=120.0, lookback_s=10.0)
    asset = AssetConfig(name="pump", tick_s=1.0, signals=signals, detector=det, diagnosis=diag)
    for info in signal_infos(asset, reg):
        reg.add(info)
    save(Library("pump"), tmp_path / "pump.json")
    (twin,) = build_runners([asset], reg, None, lambda a: PatternFile(tmp_path / "pump.json", "pump"))
    return twin, reg


def _data(rows: int, fault_from: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    load = 10 + 0.3 * np.sin(np.arange(rows) / 40) + rng.normal(0, 0.05, rows)
    flow = load + rng.normal(0, 0.05, rows)
    pressure = 0.3 * load + rng.normal(0, 0.02, rows)
    flow[fault_from:] -= 2.0  # the flow meter loses a fifth of its reading
    temp = 40 + np.arange(rows) * 0.02 + rng.normal(0, 0.02, rows)
    return np.column_stack([flow, pressure, temp])


def _run(twin, reg: TagRegistry, rows: np.ndarray) -> list[list[str]]:
    t = utcnow()
    shown = []
    key = names.diagnosis_key("pump", "contributors")
    for row in rows:
        t += timedelta(seconds=1)
        reg.publish([TagSample(f"plc.{n}", float(v), Status.Good, t, t) for n, v in zip(SIGNALS, row)])
        reg.publish(twin.tick())
        shown.append(list(reg.latest(key).value or []))
    return shown


def test_contributors_come_from_the_pca_detectors_rbc_once_it_is_fitted(tmp_path: Path) -> None:
    twin, reg = _rig(tmp_path, detector=True)
    (_, diag) = twin.diagnosers[0]
    assert diag.pca is not None and diag.pca() is None  # not fitted yet: no view
    rows = _data(400, fault_from=300)
    shown = _run(twin, reg, rows)
    view = diag.pca()
    assert isinstance(view, PcaView) and view.rate_only == (2,)
    assert diag.in_episode, "the twin raised no episode"
    episode = np.array([r[1] for r in diag._episode])
    c = signal_contributions(view, episode)
    assert c is not None
    expected = [SIGNALS[i] for i in np.argsort(-c, kind="stable")]
    assert shown[-1] == expected
    assert shown[-1][0] == "flow"


def test_without_a_pca_detector_the_signature_orders_the_contributors(tmp_path: Path) -> None:
    twin, reg = _rig(tmp_path, detector=False)
    (_, diag) = twin.diagnosers[0]
    assert diag.pca is not None and diag.pca() is None
    shown = _run(twin, reg, _data(400, fault_from=300))
    assert diag.signature is not None
    assert shown[-1] == diag.signature.contributors()
