"""The live diagnoser on the simulated plant: the shipped seed names the faults the twin alarms on,
says ``unknown`` for a fault left out of the library, and goes back to empty when normal."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_config
from edge.core import names
from edge.sim.drive import PlantDrive
from edge.sim.plant import Fault, Plant, Setpoints
from edge.twin.diagnosis.library import UNKNOWN, PatternFile, load, save

ROOT = Path(__file__).resolve().parents[4]
SEED = ROOT / "config" / "heated_tank.patterns.json"


def demo_asset():
    cfg = load_config(ROOT / "config" / "demo.toml")
    return cfg.assets[0]


def run_fault(tmp_path: Path, fault: Fault, *, strength: float = 1.0, setpoints: Setpoints | None = None, leave_out: str | None = None):
    lib = load(SEED)
    if leave_out is not None:
        lib = lib.without(leave_out)
    save(lib, tmp_path / "lib.json")
    plant = Plant(seed=21, setpoints=setpoints or Setpoints())
    rig = PlantDrive.build(demo_asset(), [plant], lambda a: PatternFile(tmp_path / "lib.json", "heated_tank"))
    rig.run_for(480.0)
    key = names.diagnosis_key("tank1", "fault")
    assert rig.latest(key) == ""  # normal
    plant.fault_strength = strength
    plant.fault = fault
    seen, details = [], {}
    for _ in range(round(180.0 / rig.tick_s)):
        rig.run(1)
        if rig.latest(key):
            seen.append(rig.latest(key))
            details[seen[-1]] = {o: rig.latest(names.diagnosis_key("tank1", o)) for o in ("confidence", "action", "contributors")}
    rig.details = details  # type: ignore[attr-defined]
    return rig, seen


@pytest.mark.parametrize(("fault", "name"), [(Fault.BEARING_WEAR, "bearing_wear"), (Fault.FLOW_SENSOR, "flow_sensor"), (Fault.SPIKE, "spike")])
def test_the_seed_names_the_fault_at_another_strength_and_operating_point(tmp_path: Path, fault: Fault, name: str) -> None:
    rig, seen = run_fault(tmp_path, fault, strength=1.3, setpoints=Setpoints(heater_pct=50.0, pump_speed_pct=60.0, valve_pct=55.0))
    assert seen, "no diagnosis"
    assert max(set(seen), key=seen.count) == name
    shown = rig.details[name]  # type: ignore[attr-defined]
    assert 0.7 <= shown["confidence"] <= 1.0
    assert shown["action"] == load(SEED).get(name).action  # type: ignore[union-attr]
    assert set(shown["contributors"]) == {s.name for s in demo_asset().signals}


def test_a_fault_left_out_of_the_library_is_unknown_not_a_wrong_name(tmp_path: Path) -> None:
    _, seen = run_fault(tmp_path, Fault.BEARING_WEAR, leave_out="bearing_wear")
    assert seen and set(seen) == {UNKNOWN}


def test_the_diagnosis_empties_when_the_episode_ends(tmp_path: Path) -> None:
    rig, seen = run_fault(tmp_path, Fault.FLOW_SENSOR)
    assert "flow_sensor" in seen
    rig.plant.fault = Fault.NONE
    rig.run_for(180.0)
    assert rig.latest(names.diagnosis_key("tank1", "fault")) == ""
    assert rig.latest(names.diagnosis_key("tank1", "contributors")) == []


def test_a_pattern_removed_from_the_file_is_gone_at_the_next_diagnosis(tmp_path: Path) -> None:
    rig, seen = run_fault(tmp_path, Fault.BEARING_WEAR)
    assert seen[-1] == "bearing_wear"
    diag = rig.twin.diagnosers[0][1]
    diag.patterns.update(diag.patterns.current().without("bearing_wear"))
    rig.run_for(5.0)
    assert rig.latest(names.diagnosis_key("tank1", "fault")) == UNKNOWN


def test_no_diagnosis_section_no_outputs() -> None:
    asset = demo_asset().model_copy(update={"diagnosis": None})
    rig = PlantDrive.build(asset, [Plant(seed=1)], lambda a: pytest.fail("no library for an asset without diagnosis"))
    assert rig.twin.diagnosers == []
    assert names.diagnosis_key("tank1", "fault") not in rig.registry


def test_history_keeps_the_diagnosis_but_not_its_array(tmp_path: Path) -> None:
    """The demo historizes the whole asset: Fault, Confidence and Action are kept; Contributors, a
    String array, is not (history holds scalars), so it cannot fail the history writer."""
    from edge.opcua.extensions import history_keys

    cfg = load_config(ROOT / "config" / "demo.toml")
    rig = PlantDrive.build(cfg.assets[0], [Plant(seed=1)], lambda a: PatternFile(tmp_path / "lib.json", "heated_tank"))
    keys = set(history_keys(cfg, rig.registry))
    assert {names.diagnosis_key("tank1", o) for o in ("fault", "confidence", "action")} <= keys
    assert names.diagnosis_key("tank1", "contributors") not in keys
    assert not any(rig.registry.info(k).array for k in keys)
