"""The twin's saved state on disk: save, restore, the rules that discard a file, atomic writes,
ResetModel, the periodic save in TwinRunner.run. Runs with either kernel implementation."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

import kernels
from drivers.sample import Status
from edge.config import parse_config
from edge.twin.persist import TwinStateStore, state_file, twin_state_dir, write_atomic
from edge.twin.runner import TwinRunner, build_runners
from edge.twin.state import FORMAT_VERSION, decode
from edge.twin.state_hash import asset_config_hash
from tests.edge.twin.rig import TICK_S, Process, asset_config, registry_for, trained

HASH = asset_config_hash(asset_config(), {})


def _store(tmp_path: Path, config_hash: str = HASH, **kw: float) -> TwinStateStore:
    return TwinStateStore(tmp_path / "twin", {"tank": config_hash}, **kw)


def _fresh(asset=None, config_hash: str = HASH) -> TwinRunner:
    asset = asset or asset_config()
    twin = TwinRunner([asset], registry_for(asset), TICK_S)
    twin.config_hashes = {"tank": config_hash}
    return twin


def _events(logs: list[dict], name: str) -> list[dict]:
    return [e for e in logs if e["event"] == name]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[TwinRunner, Process, Path]:
    """A trained twin, saved to a state folder."""
    twin, proc = trained()
    folder = tmp_path_factory.mktemp("state")
    store = _store(folder)
    assert store.attach(twin) == {"tank": "none"}
    assert store.save(twin, now=proc.t) == 1
    return twin, proc, folder


def test_restored_twin_simulates_and_scores_like_the_saved_one(saved) -> None:
    """Right after a restore Simulate answers exactly as before the restart, the model is warm,
    and the detector is fitted (no new training window)."""
    twin, proc, folder = saved
    fresh = _fresh()
    with capture_logs() as logs:
        outcome = _store(folder).restore(fresh, now=proc.t)
    assert outcome == {"tank": "restored"}
    (ev,) = _events(logs, "twin_state_restored")
    assert ev["asset"] == "tank" and ev["age_s"] == 0.0 and ev["model_warm"] is True and ev["detector_fitted"] is True
    assert fresh.simulate("tank", [50.0, 65.0], 30) == twin.simulate("tank", [50.0, 65.0], 30)
    assert fresh.detectors[0].training_left == 0
    a, b = twin.detectors[0].detector, fresh.detectors[0].detector
    assert a is not None and b is not None
    np.testing.assert_array_equal(a.model.loadings, b.model.loadings)
    assert (a.model.t2_limit, a.model.q_limit) == (b.model.t2_limit, b.model.q_limit)
    for (g1, i1), (g2, i2) in zip(twin._kalman_of.values(), fresh._kalman_of.values()):
        np.testing.assert_array_equal(g1.bank.x[i1], g2.bank.x[i2])
        np.testing.assert_array_equal(g1.bank.P[i1], g2.bank.P[i2])


def test_restored_model_outputs_are_published_at_the_first_tick(saved) -> None:
    """The model's gain is on the registry at the first tick after the restore, not a model period
    later, with the saved value (Uncertain until the first update with fresh data)."""
    twin, proc, folder = saved
    fresh = _fresh()
    _store(folder).restore(fresh, now=proc.t)
    proc2 = Process(temp=proc.temp, level=proc.level, heater=proc.heater, t=proc.t)
    out = {s.tag: s for s in proc2.feed(fresh, 1)}
    gain = out["tank.temperature.model_gain"]
    assert gain.status == Status.UncertainSubNormal
    assert gain.value == pytest.approx(twin.registry.latest("tank.temperature.model_gain").value, rel=1e-12)
    proc2.feed(fresh, 6)
    later = fresh.registry.latest
    assert later("tank.temperature.model_gain").status == Status.Good
    assert later("tank.temperature.model_gain").value == pytest.approx(gain.value, rel=0.02)
    assert later("tank.temperature.estimate").status == Status.Good
    assert later("tank.detector.score").status == Status.Good


def test_filters_coast_over_the_downtime(saved) -> None:
    """A state saved an hour ago comes back predicted 3,600 ticks ahead: the covariance grows as
    3,600 predict-only kernel steps would make it grow."""
    twin, proc, folder = saved
    fresh = _fresh()
    _store(folder).restore(fresh, now=proc.t + timedelta(hours=1))
    g, i = twin._kalman_of[("tank", "level")]
    x, P = g.bank.x[i : i + 1].copy(), g.bank.P[i : i + 1].copy()
    for _ in range(3600):
        kernels.kalman_step(x, P, g.bank.F, g.bank.Q, g.bank.H, g.bank.R[i : i + 1], [np.nan], np.empty(1), np.empty(1))
    g2, i2 = fresh._kalman_of[("tank", "level")]
    np.testing.assert_allclose(g2.bank.P[i2], P[0], rtol=1e-9)
    np.testing.assert_allclose(g2.bank.x[i2], x[0], rtol=1e-12)
    assert g2.bank.P[i2][0, 0] > 10 * g.bank.P[i][0, 0]


def test_a_plant_that_moved_while_down_restarts_the_filter_without_an_alarm(saved) -> None:
    """The level jumped 20 % while the gateway was down: far outside the coasted prediction, so that
    channel starts afresh (logged) and its first measurement does not reach the anomaly score."""
    _twin, proc, folder = saved
    fresh = _fresh()
    _store(folder).restore(fresh, now=proc.t + timedelta(seconds=5))
    proc2 = Process(temp=proc.temp, level=proc.level + 20.0, heater=proc.heater, t=proc.t + timedelta(seconds=5))
    with capture_logs() as logs:
        out = {s.tag: s for s in proc2.feed(fresh, 1)}
    (ev,) = _events(logs, "twin_filter_restarted")
    assert ev["signal"] == "level"
    assert fresh._kalman_of[("tank", "level")][0].bank.score.tolist() == [1.0]  # restarted at its expected value, not thrown up by the jump
    assert out["tank.level.estimate"].status == Status.BadWaitingForInitialData
    assert out["tank.temperature.estimate"].status == Status.Good  # the other signal carried on
    assert not _events(logs, "twin_alarm")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            lambda p: p.write_text(p.read_text().replace(f'"format_version": {FORMAT_VERSION}', '"format_version": 99')), "format_version", id="version"
        ),
        pytest.param(lambda p: p.write_text("{ not json"), "corrupt", id="not-json"),
        pytest.param(lambda p: p.write_bytes(b"\xff\xfe garbage"), "corrupt", id="binary"),
        pytest.param(lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]), "corrupt", id="truncated"),
        pytest.param(lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "asset": "other"})), "corrupt", id="other-asset"),
        pytest.param(lambda p: p.write_text(json.dumps(_with(json.loads(p.read_text()), ("filters", "level", "score"), -1.0))), "corrupt", id="bad-score"),
        pytest.param(lambda p: p.write_text(json.dumps(_with(json.loads(p.read_text()), ("filters", "level", "x"), [1.0, 2.0]))), "corrupt", id="bad-shape"),
        pytest.param(lambda p: p.write_text(json.dumps(_with(json.loads(p.read_text()), ("model", "choice"), 5))), "corrupt", id="bad-choice"),
        pytest.param(lambda p: p.write_text(json.dumps(_with(json.loads(p.read_text()), ("detector", "q_limit"), None))), "corrupt", id="bad-limit"),
    ],
)
def test_an_unusable_file_is_discarded_with_its_reason(saved, tmp_path: Path, change, reason: str) -> None:
    """A file of another format version or a corrupt one: logged (``twin_state_discarded`` with the
    reason), never a crash; the twin starts fresh, and a corrupt file is moved aside."""
    _twin, proc, folder = saved
    (tmp_path / "twin").mkdir()
    path = state_file(tmp_path / "twin", "tank")
    path.write_bytes(state_file(folder / "twin", "tank").read_bytes())
    change(path)
    fresh = _fresh()
    with capture_logs() as logs:
        assert _store(tmp_path).restore(fresh, now=proc.t) == {"tank": reason}
    (ev,) = _events(logs, "twin_state_discarded")
    assert ev["reason"] == reason and ev["asset"] == "tank"
    assert not _events(logs, "twin_state_restored")
    g, i = fresh._models["tank"]
    assert not g.channels[i].warm and fresh.detectors[0].training_left == 60
    assert fresh._kalman_of[("tank", "level")][0].updates.tolist() == [0]
    if reason == "corrupt":
        assert not path.exists() and path.with_name("tank.json.corrupt").exists()
    with pytest.raises(ValueError, match="not identified yet"):
        fresh.simulate("tank", [50.0], 3)


def _with(doc: dict, keys: tuple[str, ...], value: object) -> dict:
    d = doc
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    return doc


def test_a_changed_config_starts_fresh(saved) -> None:
    _twin, proc, folder = saved
    changed = asset_config(tick_s=TICK_S, warmup_ticks=6)
    new_hash = asset_config_hash(changed, {})
    assert new_hash != HASH
    fresh = _fresh(changed, new_hash)
    with capture_logs() as logs:
        assert _store(folder, new_hash).restore(fresh, now=proc.t) == {"tank": "config_changed"}
    (ev,) = _events(logs, "twin_state_discarded")
    assert ev["reason"] == "config_changed" and ev["saved_hash"] == HASH and ev["config_hash"] == new_hash
    assert state_file(folder / "twin", "tank").exists()  # not corrupt: left for the next save to replace


def test_a_runner_keeps_the_hashes_of_the_config_it_was_built_from(tmp_path: Path, saved) -> None:
    """Config reload: once the store has the new config's hashes, the old runner's last save is
    still filed under the old config, so the new runner of a changed asset does not take it."""
    twin, proc, _ = saved
    store = _store(tmp_path)
    store.attach(twin)
    store.hashes = {"tank": "sha256:changed"}  # what use_config(new_cfg) does
    store.save(twin, now=proc.t)
    assert decode(state_file(tmp_path / "twin", "tank").read_text()).config_hash == HASH
    fresh = TwinRunner([asset_config()], registry_for(asset_config()), TICK_S)
    assert store.attach(fresh, now=proc.t) == {"tank": "config_changed"}
    assert fresh.config_hashes == {"tank": "sha256:changed"} and fresh.state_store is store


def test_no_file_is_a_quiet_fresh_start(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert _store(tmp_path).restore(_fresh()) == {"tank": "none"}
    assert not [e for e in logs if e["event"].startswith("twin_state")]


def test_files_are_owner_only_and_written_atomically(tmp_path: Path, saved) -> None:
    twin, _, _ = saved
    store = _store(tmp_path)
    store.save(twin)
    path = state_file(tmp_path / "twin", "tank")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["tank.json"]  # no temporary file left
    doc = json.loads(path.read_text())  # strict JSON: NaN would not parse with a strict reader below
    assert doc["format_version"] == FORMAT_VERSION and doc["config_hash"] == HASH
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tank.json"
    write_atomic(path, b"old")

    def failing(*a: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["tank.json"]


def test_save_failures_are_logged_once_and_counted(tmp_path: Path, saved) -> None:
    twin, _, _ = saved
    blocker = tmp_path / "twin"
    blocker.write_text("a file where the folder should be")
    store = TwinStateStore(blocker, {"tank": HASH})
    with capture_logs() as logs:
        for _ in range(3):
            assert store.save(twin) == 0
    assert len(_events(logs, "twin_state_save_failed")) == 1 and store.save_failures == 3
    blocker.unlink()
    with capture_logs() as logs:
        assert store.save(twin) == 1
    assert len(_events(logs, "twin_state_save_recovered")) == 1


def test_an_older_snapshot_never_overwrites_a_newer_one(tmp_path: Path, saved) -> None:
    twin, _, _ = saved
    store = _store(tmp_path)
    old = store.snapshot(twin)
    new = store.snapshot(twin)
    assert store.write(new) == 1
    assert store.write(old) == 0


def test_reset_model_clears_the_saved_model(tmp_path: Path) -> None:
    """After ResetModel the file holds the reset model at once: a restart cannot bring the old one
    back (the filters and the detector are kept)."""
    twin, proc = trained()
    store = _store(tmp_path)
    store.attach(twin)
    store.save(twin, now=proc.t)
    assert decode(state_file(tmp_path / "twin", "tank").read_text()).model.warm  # type: ignore[union-attr]
    twin.reset_model("tank")
    state = decode(state_file(tmp_path / "twin", "tank").read_text())
    assert state.model is not None and not state.model.warm and all(b.updates == 0 for b in state.model.banks)
    assert state.detector is not None
    fresh = _fresh()
    assert store.restore(fresh, now=proc.t) == {"tank": "restored"}
    with pytest.raises(ValueError, match="not identified yet"):
        fresh.simulate("tank", [50.0], 3)


async def test_run_saves_periodically(tmp_path: Path) -> None:
    """TwinRunner.run writes the file every save_interval_s (the write in a worker thread)."""
    asset = asset_config(tick_s=0.01)
    store = TwinStateStore(tmp_path / "twin", {"tank": asset_config_hash(asset, {})}, save_interval_s=0.05)
    (twin,) = build_runners([asset], registry_for(asset), store)
    task = asyncio.create_task(twin.run(), name="twin:test")
    try:
        async with asyncio.timeout(5):
            while store.saves < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert decode(state_file(tmp_path / "twin", "tank").read_text()).asset == "tank"


def test_the_state_folder_comes_from_the_config(tmp_path: Path) -> None:
    cfg = parse_config(f'[gateway]\nstate_dir = "{tmp_path}"\ntwin_save_interval_s = 5\n')
    assert twin_state_dir(cfg) == tmp_path / "twin"
    store = TwinStateStore.from_config(cfg)
    assert store.directory == tmp_path / "twin" and store.save_interval_s == 5.0 and store.hashes == {}


_WRITER = """
import json, sys
from pathlib import Path
import kernels
from edge.twin.persist import TwinStateStore
from edge.twin.state_hash import asset_config_hash
from tests.edge.twin.rig import asset_config, trained
twin, proc = trained()
store = TwinStateStore(Path(sys.argv[1]), {"tank": asset_config_hash(asset_config(), {})})
store.attach(twin)
store.save(twin)
print(json.dumps({"impl": kernels.IMPLEMENTATION, "t": proc.t.isoformat(), "sim": twin.simulate("tank", [50.0, 65.0], 30)}))
"""


def test_a_file_written_by_the_other_kernel_implementation_restores(tmp_path: Path) -> None:
    """The file holds plain numbers: a state saved by the compiled kernels restores under the NumPy
    reference and the other way round (a subprocess runs the other implementation)."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_KERNELS_PURE", "EDGE_REQUIRE_CYTHON")}
    if kernels.IMPLEMENTATION == "cython":
        env["EDGE_KERNELS_PURE"] = "1"
    else:
        env["EDGE_REQUIRE_CYTHON"] = "1"
    root = Path(__file__).resolve().parents[3]
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path / "twin")], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    if proc.returncode != 0 and "EDGE_REQUIRE_CYTHON=1 but" in proc.stderr:
        pytest.skip("the compiled kernels are not built, so there is no other implementation to write the file")
    assert proc.returncode == 0, proc.stderr
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert other["impl"] != kernels.IMPLEMENTATION
    fresh = _fresh()
    assert _store(tmp_path).restore(fresh, now=datetime.fromisoformat(other["t"])) == {"tank": "restored"}
    np.testing.assert_allclose(fresh.simulate("tank", [50.0, 65.0], 30), other["sim"], rtol=1e-12)
