"""Apply a config reload to the running gateway: the ``Reloader`` (task ``reload``).

A reload request (SIGHUP, ``systemctl reload``, ``edgetwin reload``) sets an event; the task
``reload`` waits on it, so reloads run one at a time and a burst of requests is one reload. Each
reload re-reads the config and validates it first:

* invalid: the running config stays; every error is logged as ``reload_rejected`` (file, line,
  key, message);
* valid: ``edge.reload.plan.plan_reload`` says what changed; keys that need a restart are logged
  once as ``reload_needs_restart`` and keep their running values; the rest is applied by the parts
  that own it, in this order:

  1. the producers of changed parts stop: ``poll:<device>`` of removed and changed devices, the
     twin runners (``twin:<tick>``) holding a removed or changed asset;
  2. alarm conditions and asset methods that go away are deleted;
  3. registry entries of the stopped parts are compared with the new config's (built by a
     scratch ``Gateway`` that connects nothing): removed and changed ones leave the address space
     (``OpcUaServer.remove_tags``) and the registry, added and changed ones enter both with the
     NodeIds the builder gives them at start, objects left empty are deleted. Unchanged entries
     keep their nodes, latest values, client subscriptions and history;
  4. new device runners and twin runners start; new conditions and methods are added; the
     history recorder records the new set of historized keys (rows of removed keys stay stored).

Twins: the runner of a changed asset is rebuilt; assets sharing that runner (same ``tick_s``)
restart with it; runners of other assets are not touched. Connected OPC UA sessions never notice
anything but the nodes that changed. The outcome of each reload is logged (``reload_applied``,
``reload_failed``) and written to the reload status file that ``edgetwin reload`` reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from edge.config import ConfigError, GatewayConfig, load_config
from edge.core.registry import TagInfo
from edge.opcua.alarms import OpcUaAlarms, alarm_specs
from edge.opcua.extensions import diagnoser_of, history_keys
from edge.opcua.history_read import OpcUaHistory
from edge.opcua.methods import AssetMethods, identified_assets
from edge.opcua.model import ModelInfo
from edge.opcua.pattern_methods import PatternMethods
from edge.reload.pidfile import write_status
from edge.reload.plan import ReloadPlan, asset_tags, effective_config, located, plan_reload
from edge.twin.diagnosis.live import pattern_file
from edge.twin.runner import TwinRunner, build_runners, signal_infos

log = structlog.get_logger("edge.reload")

Loader = Callable[[], GatewayConfig]
Notify = Callable[[str], None]  # called with "reloading" when a reload starts applying, "ready" after


def file_loader(cfg: GatewayConfig) -> Loader | None:
    """Re-read the file *cfg* came from; None for a config that did not come from a file."""
    source = Path(cfg.source)
    if cfg.source == "<memory>" or not source.suffix:
        return None
    return lambda: load_config(source)


class Reloader:
    """Owns reloading for one running gateway; ``run`` is the task ``reload``."""

    def __init__(
        self,
        gw: Any,
        tasks: asyncio.TaskGroup,
        producers: list[asyncio.Task],
        *,
        load: Loader | None,
        status_path: Path | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.gw = gw
        self._tasks = tasks
        self._producers = producers  # the gateway's list: tasks started here are stopped at shutdown too
        self._load = load
        self._status_path = status_path
        self._notify = notify or (lambda state: None)
        self._wanted = asyncio.Event()
        self.count = 0  # reloads finished (applied, rejected or failed)
        by_name = {t.get_name(): t for t in producers}
        self._device_tasks = {r.name: by_name[f"poll:{r.name}"] for r in gw.supervisor.runners if f"poll:{r.name}" in by_name}
        self._twin_tasks = {id(t): by_name[_twin_name(t)] for t in gw.twins if _twin_name(t) in by_name}

    def request(self) -> None:
        """Ask for a reload (the SIGHUP handler); requests made while one runs make one more."""
        self._wanted.set()

    async def run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.reload_once()

    async def reload_once(self) -> str:
        """Re-read, validate and apply the config; return "applied", "rejected" or "failed"."""
        gw = self.gw
        if self._load is None:
            log.error("reload_unavailable", reason="the config did not come from a file", config=gw.cfg.source)
            return self._done("failed", errors=["the config did not come from a file"])
        log.info("reload_started", config=gw.cfg.source)
        old, load = gw.cfg, self._load
        history_running = _find(gw.server, OpcUaHistory) is not None

        def prepare() -> tuple[GatewayConfig, ReloadPlan]:
            # parsing, validation and the diff are pure and take a while for thousands of tags:
            # a worker thread keeps the event loop serving clients and devices meanwhile
            new = load()
            return new, plan_reload(old, new, history_running=history_running)

        plan: ReloadPlan | None = None
        self._notify("reloading")
        try:
            try:
                new, plan = await asyncio.to_thread(prepare)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload_rejected", **located(problem))
                return self._done("rejected", errors=list(exc.problems))
            if plan.needs_restart:
                log.warning("reload_needs_restart", keys=list(plan.needs_restart))
            running = effective_config(old, new)
            if plan.live_changes:
                await self._apply(old, running, plan)
            gw.cfg = running
        except Exception as exc:  # a reload bug must not stop the gateway; cancellation propagates
            log.exception("reload_failed", error=repr(exc))
            return self._done("failed", plan=plan, errors=[repr(exc)])
        finally:
            self._notify("ready")
        log.info("reload_applied", **(plan.summary() if plan.live_changes else {"changes": "none"}))
        return self._done("applied", plan=plan)

    def _done(self, result: str, *, plan: ReloadPlan | None = None, errors: Sequence[str] = ()) -> str:
        self.count += 1
        if self._status_path is not None:
            changes = plan.summary() if plan is not None else {}
            restart = changes.pop("needs_restart", [])
            try:
                write_status(
                    self._status_path, count=self.count, result=result, config=self.gw.cfg.source, changes=changes, needs_restart=restart, errors=errors
                )
            except OSError as exc:
                log.error("reload_status_not_written", path=str(self._status_path), error=str(exc))
        return result

    # -- applying a valid plan -----------------------------------------------------------------
    async def _apply(self, old: GatewayConfig, new: GatewayConfig, plan: ReloadPlan) -> None:
        gw = self.gw
        server = gw.server
        registry = gw.registry
        # runners and registry entries of the new devices and assets (and of the tags their signals
        # read), built against a scratch registry; nothing connects
        fresh = set(plan.assets_added) | set(plan.assets_changed)
        starting = set(plan.devices_start) | set(plan.devices_restart)
        read = {key for a in new.assets if a.name in fresh for key in asset_tags(a)}
        configs = [d if d.name in starting else d.model_copy(update={"tags": [t for t in d.tags if f"{d.name}.{t.name}" in read]}) for d in new.devices]
        subset = new.model_copy(update={"devices": [d for d in configs if d.name in starting or d.tags], "assets": [a for a in new.assets if a.name in fresh]})
        clock = _Phases()
        scratch = type(gw)(subset, twin_state=False)
        clock.lap("build")

        # 1. stop the producers of what changed
        devices = set(plan.devices_stop) | set(plan.devices_restart)
        await self._stop([self._device_tasks.pop(n) for n in sorted(devices) if n in self._device_tasks])
        assets = set(plan.assets_removed) | set(plan.assets_changed)
        old_twins = [t for t in gw.twins if any(a.name in assets for a in t.assets)]
        await self._stop([self._twin_tasks.pop(id(t)) for t in old_twins if id(t) in self._twin_tasks])
        # what the stopped twins learnt goes to <state_dir>/twin (filed under the config each was
        # built from); the rebuilt runners restore it where the asset's config is unchanged
        store = gw.twin_store
        for t in old_twins:
            store.save(t)
        store.use_config(new)

        clock.lap("stop")
        # 2. what goes away in the extensions: conditions, methods
        alarms, methods, history = _find(server, OpcUaAlarms), _find(server, AssetMethods), _find(server, OpcUaHistory)
        old_specs, new_specs = alarm_specs(old), alarm_specs(new)
        if alarms is not None:
            await alarms.remove_specs([s for s in old_specs if s not in new_specs])
        wanted = set(identified_assets(new))
        if methods is not None:
            await methods.update({a: r for a, r in methods.twins.items() if a in wanted and a not in plan.assets_removed})

        clock.lap("extensions")
        # 3. registry entries and nodes
        old_infos = _infos(registry, [r for r in gw.supervisor.runners if r.name in devices], [a for a in old.assets if a.name in assets])
        new_devices = [r for r in scratch.supervisor.runners if r.name in starting]
        new_infos = _infos(scratch.registry, new_devices, [a for a in new.assets if a.name in fresh])
        removed = old_infos.keys() - new_infos.keys()
        differ = {k for k in old_infos.keys() & new_infos.keys() if old_infos[k] != new_infos[k]}
        described = sorted(k for k in differ if replace(old_infos[k], description=new_infos[k].description) == new_infos[k])
        changed = differ - set(described)  # these nodes are made again
        for k in described:
            registry.redeclare(new_infos[k])
        await server.describe_tags([new_infos[k] for k in described])
        server.set_model_info(ModelInfo.from_config(new))
        await server.remove_tags(sorted(removed | changed))
        registry.remove(removed | changed)
        entering = [info for k, info in new_infos.items() if k not in old_infos or k in changed]
        for info in entering:
            registry.add(info)
        await server.add_tags(entering)
        await server.prune()

        clock.lap("nodes")
        # 4. new producers, then what the extensions add
        for r in new_devices:
            r.registry = registry
        gw.supervisor.replace(sorted(devices), new_devices)
        for r in new_devices:
            self._device_tasks[r.name] = self._start(r.run(), f"poll:{r.name}")
        peers = [a.name for t in old_twins for a in t.assets if a.name not in assets]
        new_twins = build_runners([a for a in new.assets if a.name in fresh or a.name in peers], registry, store, partial(pattern_file, new))
        gw.twins[:] = [t for t in gw.twins if t not in old_twins] + new_twins
        for t in new_twins:
            self._twin_tasks[id(t)] = self._start(t.run(), self._free_twin_name(t))
        added_specs = [s for s in new_specs if s not in old_specs]
        if alarms is not None:
            await alarms.add_specs(added_specs)
        elif added_specs:
            await server.add_extension(OpcUaAlarms(added_specs))
        by_asset = {a.name: t for t in gw.twins for a in t.assets if a.name in wanted}
        if methods is not None:
            await methods.update(by_asset)
        elif by_asset:
            await server.add_extension(AssetMethods(by_asset))
        if history is not None:
            await history.set_keys(server, history_keys(new, registry), renewed=changed)
        await _update_pattern_methods(server, new, gw.twins, history)
        gw.cfg = new
        clock.lap("start")
        added = len(new_infos.keys() - old_infos.keys())
        log.info("reload_nodes", removed=len(removed), added=added, remade=len(changed), described=len(described), phases_s=clock.laps)

    def _start(self, coro: Any, name: str) -> asyncio.Task:
        task = self._tasks.create_task(coro, name=name)
        self._producers.append(task)
        return task

    def _free_twin_name(self, twin: TwinRunner) -> str:
        running = {t.get_name() for t in self._producers if not t.done()}
        name, n = _twin_name(twin), 1
        while name in running:
            n += 1
            name = f"{_twin_name(twin)}#{n}"
        return name

    async def _stop(self, tasks: list[asyncio.Task]) -> None:
        """Cancel *tasks* and wait until they have ended (a driver closes its link on the way)."""
        pending = {t for t in tasks if not t.done()}
        logged = False
        while pending:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=self.gw.cfg.gateway.shutdown_timeout_s)
            if pending and not logged:  # a library below swallowed the cancel: keep asking
                logged = True
                log.error("reload_stop_slow", tasks=sorted(t.get_name() for t in pending))


class _Phases:
    """Seconds spent in each phase of applying a reload (for the log)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._t, 3)
        self._t = now


def _twin_name(twin: TwinRunner) -> str:
    return f"twin:{twin.tick_s:g}s"


def _find(server: Any, kind: type) -> Any:
    return next((e for e in server.extensions if isinstance(e, kind)), None)


def _infos(registry: Any, runners: Sequence[Any], assets: Sequence[Any]) -> dict[str, TagInfo]:
    """Registry entries of *runners* (tags and diagnostics) and *assets* (twin outputs), by key."""
    out: dict[str, TagInfo] = {}
    for r in runners:
        for key in r.keys:
            out[key] = registry.info(key)
        for info in r.health.infos():
            out[info.key] = info
    for asset in assets:
        for info in signal_infos(asset, registry):
            out[info.key] = info
    return out


async def _update_pattern_methods(server: Any, new: Any, twins: list[TwinRunner], history: OpcUaHistory | None) -> None:
    """RecordFaultPattern / RemoveFaultPattern follow the assets with a diagnosis section."""
    methods = _find(server, PatternMethods)
    if methods is not None:
        await methods.update(new.assets)
    elif any(a.diagnosis is not None for a in new.assets):
        await server.add_extension(PatternMethods(new.assets, partial(diagnoser_of, twins), history.recorder.store if history is not None else None))
