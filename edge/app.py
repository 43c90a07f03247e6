"""Build the gateway from a config and run it until shutdown.

Startup order: registry (device tags, twin outputs, diagnostics) -> simulator (if enabled) ->
history recorder and the other server extensions -> OPC UA server -> device poll tasks and twin
tasks. Every task is named and owned by one TaskGroup:

* producers (``plant:server``, ``poll:<device>``, ``twin:<tick>``, ``diagnostics``): one that
  crashes stops the gateway (the error ends ``run_gateway``) rather than leaving it half-alive;
* northbound loops (``opcua:publish``, ``opcua:alarms``, ``history:writer``, any later sink): run
  supervised (``edge.core.tasks``), so a crash is logged at once and the loop restarts; a sink's
  bug never stops the data flow to the others. Their registry listeners are isolated from the
  producers too (``TagRegistry``).

Reload: SIGHUP only sets an event; the task ``reload`` (a producer) waits on it and re-reads,
validates and applies the config one reload at a time (``edge.reload``).

Shutdown: the producers are cancelled and awaited first, and the twins' learnt state is saved
(``edge.twin.persist``; it was restored when the runners were built); then, still inside the
TaskGroup, the server stops its loops and closes, and the history recorder writes everything
buffered and closes the database.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import structlog

import kernels
from drivers import load_driver
from drivers.base import DriverContext
from drivers.sample import Status, TagSample, utcnow
from edge import __version__
from edge.config import DeviceConfig, GatewayConfig, SimulatorSection
from edge.core import sdnotify
from edge.core.backoff import Backoff
from edge.core.device_tags import device_tag_infos, renamed_points
from edge.core.gcpolicy import GcPolicy, gateway_gc, paused_gc
from edge.core.names import gateway_diag_key, gateway_diag_path
from edge.core.registry import TagInfo, TagRegistry
from edge.core.supervisor import DeviceRunner, Supervisor
from edge.mqtt import mqtt_sink
from edge.opcua.extensions import northbound_extensions
from edge.opcua.server import OpcUaServer
from edge.opcua.settings import server_options
from edge.reload.apply import Loader, Reloader, file_loader
from edge.reload.pidfile import pid_file, pid_path, status_path
from edge.service.notify import ServiceNotifications
from edge.twin.diagnosis.live import pattern_file
from edge.twin.persist import TwinStateStore, save_twin_states
from edge.twin.runner import TwinRunner, build_runners, signal_infos

log = structlog.get_logger("edge.app")

ShutdownTrigger = Callable[[], Awaitable[object]]
_UNSET = object()


class Gateway:
    """Everything one config describes, wired together but not yet running."""

    def __init__(self, cfg: GatewayConfig, *, twin_state: bool = True) -> None:
        """*twin_state*: restore and save the twins' learnt state (False for a reload's scratch copy)."""
        self.cfg = cfg
        self.registry = TagRegistry()
        runners = [self._device(dev) for dev in cfg.devices]
        self.supervisor = Supervisor(runners)
        for asset in cfg.assets:
            for info in signal_infos(asset, self.registry):
                self.registry.add(info)
        self.twin_store = TwinStateStore.from_config(cfg)  # <state_dir>/twin: what the twins learnt
        self.twins: list[TwinRunner] = build_runners(
            cfg.assets, self.registry, self.twin_store if twin_state else None, partial(pattern_file, cfg)
        )  # restores saved state
        for leaf, dtype, units in (("Version", "string", None), ("KernelImplementation", "string", None), ("KernelTickTime", "float64", "s")):
            self.registry.add(TagInfo(gateway_diag_key(leaf), gateway_diag_path(leaf), dtype, units))
        self.server: OpcUaServer | None = None
        self.mqtt: Any = None  # the MQTT sink (edge.mqtt) while [mqtt] runs
        self.gc: GcPolicy | None = None  # the garbage-collection policy (edge.core.gcpolicy), from the start of run_gateway
        self._diag_published: dict[str, object] = {}  # leaf -> value last published

    def _device(self, dev: DeviceConfig) -> DeviceRunner:
        """The runner of one device: its driver (built by the driver kind's table entry) and its points."""
        # each point is named by its registry key, so the driver's samples are published as they are;
        # the entries are built in bulk (edge.core.device_tags: half the CPU of building them tag by tag)
        intervals = dev.poll_intervals()
        points = renamed_points(dev.name, dev.tags, dev.points())
        with paused_gc():  # every object made here lives as long as the device
            self.registry.add_all(device_tag_infos(dev, points, intervals))
        # the driver's own state (certificates) lives under the state folder; relative paths in its
        # settings are relative to the config file's folder
        context = DriverContext(state_dir=self.cfg.state_path, config_dir=self.cfg.resolve_path("."))
        driver = load_driver(dev.driver).from_settings(dev, context=context)
        g = self.cfg.gateway
        runner = DeviceRunner(
            dev.name,
            driver,
            points,
            self.registry,
            poll_interval_s=dev.poll_interval_s,
            backoff=Backoff(g.backoff_initial_s, g.backoff_max_s),
            intervals=intervals,
            stale_after_s=dev.stale_after_s,
        )
        for info in runner.health.infos():
            self.registry.add(info)
        return runner

    def gateway_diagnostics(self) -> list[TagSample]:
        """Samples of the gateway's own diagnostics whose value changed since the last call (all, the first time)."""
        now = utcnow()
        tick = max((t.last_tick_s for t in self.twins), default=0.0)
        out = []
        server = self.server.diagnostics() if self.server is not None else []  # subscriptions, monitored items, notifications
        for leaf, value in (("Version", __version__), ("KernelImplementation", kernels.IMPLEMENTATION), ("KernelTickTime", tick), *server):
            if self._diag_published.get(leaf, _UNSET) != value:
                self._diag_published[leaf] = value
                out.append(TagSample(gateway_diag_key(leaf), value, Status.Good, now, now))
        return out


async def run_gateway(
    cfg: GatewayConfig,
    *,
    shutdown_trigger: ShutdownTrigger | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
    reload_config: Loader | None = None,
) -> None:
    """Run the gateway until *shutdown_trigger* returns (default: SIGINT or SIGTERM).

    SIGHUP reloads the config: *reload_config* reads it (default: the file it came from)."""
    gw = Gateway(cfg)
    log.info("kernels_loaded", implementation=kernels.IMPLEMENTATION)
    stop = asyncio.Event()
    trigger = shutdown_trigger or _signal_trigger(stop)
    async with asyncio.TaskGroup() as tg:  # noqa: SIM117 (two scopes: the stack unwinds inside the group)
        # the northbound side is closed inside the TaskGroup, after the producers have stopped
        async with AsyncExitStack() as stack:
            producers: list[asyncio.Task] = []
            gw.gc = await stack.enter_async_context(gateway_gc())  # no full GC pass over the heap while it is built
            # systemd: READY/STATUS/WATCHDOG/STOPPING (no-op without $NOTIFY_SOCKET); entered first so
            # the watchdog keeps pinging until everything below has closed
            service = await stack.enter_async_context(ServiceNotifications.from_env(tasks=tg))
            if cfg.simulator.enabled:
                producers.append(await start_simulator(cfg.simulator, tg))
            # history, alarms, methods; entered first so the history database is flushed and
            # closed only after the server and every producer have stopped
            extensions = await stack.enter_async_context(northbound_extensions(cfg, gw.registry, gw.twins, tasks=tg))
            # MQTT / Sparkplug B (edge.mqtt): before the server, which shows its diagnostics tags
            if cfg.mqtt is not None:
                gw.mqtt = await stack.enter_async_context(mqtt_sink(cfg, gw.registry, write=gw.supervisor.write, tasks=tg))
            if cfg.metrics is not None:  # the Prometheus endpoint (edge.metrics): a busy port fails before the server is built
                from edge.metrics.sources import gateway_metrics

                await stack.enter_async_context(gateway_metrics(cfg.metrics, gw, extensions))
            gw.server = await stack.enter_async_context(
                OpcUaServer(
                    gw.registry,
                    endpoint=cfg.gateway.endpoint,
                    namespace_uri=cfg.gateway.namespace_uri,
                    gateway_name=cfg.gateway.name,
                    write_handler=gw.supervisor.write,
                    extensions=extensions,
                    tasks=tg,
                    **server_options(cfg),  # security policies, certificates, users, model metadata
                )
            )
            for r in gw.supervisor.runners:
                producers.append(tg.create_task(r.run(), name=f"poll:{r.name}"))
            for twin in gw.twins:
                producers.append(tg.create_task(twin.run(), name=f"twin:{twin.tick_s:g}s"))
            producers.append(tg.create_task(_diagnostics_loop(gw), name="diagnostics"))
            # -- config reload (edge/reload): SIGHUP, `systemctl reload`, `edgetwin reload` ------
            files = cfg.source != "<memory>"  # the pid and status files live beside a config file's state
            reloader = Reloader(
                gw, tg, producers, load=reload_config or file_loader(cfg), status_path=status_path(cfg.state_path) if files else None,
                notify=_systemd_reload,  # RELOADING=1 while a reload runs, READY=1 when it is done
            )  # fmt: skip
            producers.append(tg.create_task(reloader.run(), name="reload"))
            if files:
                stack.enter_context(pid_file(pid_path(cfg.state_path)))
            # kept until the loop closes: a SIGHUP while stopping is then ignored, not fatal
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
            gw.registry.publish(gw.gateway_diagnostics())
            log.info("gateway_ready", endpoint=cfg.gateway.endpoint, devices=len(cfg.devices), assets=len(cfg.assets), tags=len(gw.registry))
            # freeze the heap, keep full GC passes short while serving, sweep leaks rarely (edge.core.gcpolicy, docs/performance.md)
            gw.gc.serve(tg)
            if on_ready is not None:
                on_ready(gw)
            service.started(gw)  # READY=1 once every device made its first connect attempt
            await trigger()
            log.info("gateway_stopping")
            await service.stopping()
            await _stop_tasks(producers, gw.cfg.gateway.shutdown_timeout_s)
            save_twin_states(gw.twins)  # what the twins learnt survives the restart
            # every producer has stopped (and closed its transport); the exit stack now stops the
            # server's loops and the server, then flushes and closes the history database
    log.info("gateway_stopped")


async def run_simulator(sim: SimulatorSection, *, shutdown_trigger: ShutdownTrigger | None = None, on_ready: Callable[[], None] | None = None) -> None:
    """Run only the simulated plant until *shutdown_trigger* returns (default: SIGINT or SIGTERM)."""
    trigger = shutdown_trigger or _signal_trigger(asyncio.Event())
    async with asyncio.TaskGroup() as tg:
        task = await start_simulator(sim, tg)
        if on_ready is not None:
            on_ready()
        await trigger()
        task.cancel()


async def start_simulator(sim: SimulatorSection, tg: asyncio.TaskGroup) -> asyncio.Task:
    """Start the simulated plant in *tg*; return once it listens."""
    from edge.sim.plant import Fault
    from edge.sim.server import serve_plant

    ready = asyncio.Event()
    task = tg.create_task(
        serve_plant(
            host=sim.host,
            port=sim.port,
            unit_id=sim.unit_id,
            tick_s=sim.tick_s,
            time_scale=sim.time_scale,
            fault=Fault[sim.fault.upper()],
            seed=sim.seed,
            ready=ready,
        ),
        name="plant:server",
    )
    await ready.wait()
    return task


async def _stop_tasks(tasks: list[asyncio.Task], timeout_s: float) -> None:
    """Cancel *tasks*; a task still running after *timeout_s* is named in the log and cancelled again
    (a library below it may have swallowed the first cancellation)."""
    pending = {t for t in tasks if not t.done()}
    for _ in range(3):
        for t in pending:
            t.cancel()
        if not pending:
            return
        _, pending = await asyncio.wait(pending, timeout=timeout_s)
        if pending:
            log.error("shutdown_slow", timeout_s=timeout_s, tasks=sorted(t.get_name() for t in pending))


async def _diagnostics_loop(gw: Gateway) -> None:
    """Publish the gateway's diagnostics that changed, at most once a second."""
    while True:
        await asyncio.sleep(1.0)
        gw.registry.publish(gw.gateway_diagnostics())


def _systemd_reload(state: str) -> None:
    """A reload's start ("reloading") and end ("ready") for systemd (no-op without $NOTIFY_SOCKET)."""
    if state == "reloading":
        sdnotify.notify_reloading()
    else:
        sdnotify.notify_ready()


def _signal_trigger(stop: asyncio.Event) -> ShutdownTrigger:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop.wait
