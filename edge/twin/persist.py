"""The twin's saved state on disk: one file per asset, written atomically, restored at start.

``<state_dir>/twin/<asset>.json`` (``twin_state_dir``) holds what the asset's twin has learnt
(``edge.twin.state``: format, ``edge.twin.state_hash``: the config hash it is valid for). A
``TwinStateStore`` writes it periodically (``TwinRunner.run``, every ``gateway.twin_save_interval_s``),
at shutdown and after ``ResetModel``, and restores it when the runners are built:

* written atomically: a temporary file in the same folder, fsync, rename over the old file, fsync
  of the folder; owner-only (0600); a crash mid-write leaves the previous file;
* restored only when the asset's config hash is unchanged; otherwise the twin starts fresh and
  ``twin_state_discarded`` says why (``reason``: ``config_changed``, ``format_version``,
  ``corrupt``, ``unreadable``); a corrupt file is moved aside to ``<asset>.json.corrupt``;
* a save that fails (disk full, permissions) is logged once (``twin_state_save_failed``) and
  counted; the twin runs on.

Interface for whoever adds, removes or changes assets at run time (config reload):
``store.use_config(new_cfg)``, build the new runner, ``store.attach(runner)`` (stamps it with its
assets' hashes, restores what matches, and it saves from then on); ``store.save(old_runner)``
before dropping a runner (it keeps the hashes of the config it was built from, so its state is
never filed under a changed config); ``store.remove(asset)`` forgets an asset's file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from drivers.sample import utcnow
from edge.config import GatewayConfig
from edge.twin.state import AssetState, StateFileError, decode, encode
from edge.twin.state_hash import asset_hashes

if TYPE_CHECKING:
    from edge.twin.runner import TwinRunner

log = structlog.get_logger("edge.twin.persist")

DEFAULT_SAVE_INTERVAL_S = 60.0


def twin_state_dir(cfg: GatewayConfig) -> Path:
    """Where the twin's saved state lives (the one place that decides it)."""
    return cfg.state.twin_dir


def state_file(directory: Path, asset: str) -> Path:
    return directory / f"{asset}.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Replace *path* with *data* all at once: temporary file beside it (mode 0600), fsync, rename,
    fsync of the folder. On any error the old file is untouched and the temporary file removed."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.stem}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


class TwinStateStore:
    """Saves and restores the twins' state in *directory*, for the configs whose asset hashes are
    *hashes* (asset name -> ``asset_config_hash``)."""

    def __init__(self, directory: Path, hashes: Mapping[str, str], *, save_interval_s: float = DEFAULT_SAVE_INTERVAL_S) -> None:
        self.directory = directory
        self.hashes = dict(hashes)
        self.save_interval_s = save_interval_s
        self.saves = 0  # files written
        self.save_failures = 0
        self._failing = False
        self._lock = threading.Lock()  # writes come from the event loop and from worker threads
        self._seq = 0
        self._written: dict[str, int] = {}  # asset -> sequence number of the snapshot on disk

    @classmethod
    def from_config(cls, cfg: GatewayConfig) -> TwinStateStore:
        return cls(twin_state_dir(cfg), asset_hashes(cfg), save_interval_s=cfg.gateway.twin_save_interval_s)

    def use_config(self, cfg: GatewayConfig) -> None:
        """The hashes (and save interval) of *cfg*, for the runners attached from now on."""
        self.hashes = asset_hashes(cfg)
        self.save_interval_s = cfg.gateway.twin_save_interval_s

    def attach(self, runner: TwinRunner, now: datetime | None = None) -> dict[str, str]:
        """Make *runner* save here, with the hashes of its assets' config as it is now, and
        restore its assets (``restore``'s outcomes)."""
        runner.config_hashes = {a.name: self.hashes[a.name] for a in runner.assets if a.name in self.hashes}
        runner.state_store = self
        return self.restore(runner, now)

    # -- restore -----------------------------------------------------------------------------
    def restore(self, runner: TwinRunner, now: datetime | None = None) -> dict[str, str]:
        """Load every asset of *runner* that has a usable file; returns asset -> outcome
        (``restored``, ``none`` when there is no file, or the reason it was discarded)."""
        now = now or utcnow()
        return {a.name: self.restore_asset(runner, a.name, now) for a in runner.assets}

    def restore_asset(self, runner: TwinRunner, asset: str, now: datetime) -> str:
        path = state_file(self.directory, asset)
        for stale in self.directory.glob(f".{asset}.*.tmp"):  # left by a crash mid-write
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return "none"
        except OSError as exc:
            log.warning("twin_state_discarded", asset=asset, reason="unreadable", file=str(path), error=str(exc))
            return "unreadable"
        try:
            state = decode(data)
            if state.asset != asset:
                raise StateFileError("corrupt", f"the file is the state of asset {state.asset!r}")
        except StateFileError as exc:
            return self._discard(asset, path, exc.reason, str(exc))
        expected = runner.config_hashes.get(asset)
        if state.config_hash != expected:
            log.info("twin_state_discarded", asset=asset, reason="config_changed", file=str(path), saved_hash=state.config_hash, config_hash=expected)
            return "config_changed"
        try:
            runner.import_state(state, now)
        except ValueError as exc:  # well-formed JSON whose numbers a filter, model or detector refuses
            return self._discard(asset, path, "corrupt", str(exc))
        log.info(
            "twin_state_restored",
            asset=asset,
            age_s=round(state.age_s(now), 1),
            saved_at=state.saved_at.isoformat(),
            filters=len(state.filters),
            model_warm=None if state.model is None else state.model.warm,
            detector_fitted=state.detector is not None,
        )
        return "restored"

    def _discard(self, asset: str, path: Path, reason: str, detail: str) -> str:
        moved: str | None = None
        if reason == "corrupt":  # keep it for a post-mortem; the next save writes a good file
            aside = path.with_name(path.name + ".corrupt")
            try:
                path.replace(aside)
                moved = str(aside)
            except OSError:
                moved = None
        log.warning("twin_state_discarded", asset=asset, reason=reason, file=str(path), error=detail, moved_to=moved)
        return reason

    # -- save --------------------------------------------------------------------------------
    def snapshot(self, runner: TwinRunner, assets: Iterable[str] | None = None, now: datetime | None = None) -> list[tuple[int, AssetState]]:
        """What to write for *assets* of *runner* (all when None), taken now (between ticks)."""
        now = now or utcnow()
        names = [a.name for a in runner.assets] if assets is None else list(assets)
        out = []
        for name in names:
            config_hash = runner.config_hashes.get(name)
            if config_hash is None:  # a runner not attached, or an asset the config did not hash: nothing valid to write
                continue
            self._seq += 1
            out.append((self._seq, runner.export_state(name, config_hash, now)))
        return out

    def write(self, snapshots: Iterable[tuple[int, AssetState]]) -> int:
        """Write the snapshots (in a worker thread or not); returns the number of files written.
        A snapshot older than the one already on disk for its asset is skipped."""
        written = 0
        for seq, state in snapshots:
            with self._lock:
                if seq <= self._written.get(state.asset, 0):
                    continue
                path = state_file(self.directory, state.asset)
                try:
                    write_atomic(path, encode(state).encode("ascii"))
                except OSError as exc:
                    self.save_failures += 1
                    if not self._failing:
                        self._failing = True
                        log.error("twin_state_save_failed", asset=state.asset, file=str(path), error=str(exc))
                    continue
                self._written[state.asset] = seq
                self.saves += 1
                written += 1
                if self._failing:
                    self._failing = False
                    log.info("twin_state_save_recovered", asset=state.asset, failures=self.save_failures)
        return written

    def save(self, runner: TwinRunner, assets: Iterable[str] | None = None, now: datetime | None = None) -> int:
        """Snapshot and write now, in this thread (shutdown, ResetModel)."""
        return self.write(self.snapshot(runner, assets, now))

    async def save_async(self, runner: TwinRunner) -> int:
        """Snapshot now; encode and write in a worker thread (the periodic save)."""
        return await asyncio.to_thread(self.write, self.snapshot(runner))

    def remove(self, asset: str) -> None:
        """Forget *asset*'s saved state."""
        with self._lock:
            self._written[asset] = self._seq  # a snapshot taken before this must not bring it back
            with contextlib.suppress(FileNotFoundError):
                state_file(self.directory, asset).unlink()


def save_twin_states(runners: Iterable[TwinRunner]) -> None:
    """Write the state of every runner that has a store (at shutdown, after the runners stopped)."""
    for r in runners:
        if r.state_store is not None:
            r.state_store.save(r)
