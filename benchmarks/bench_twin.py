"""Per-tick cost of the full twin for many channels: kernels alone, and TwinRunner.tick with a registry.

    python benchmarks/bench_twin.py [--channels 10000] [--quick]

Setup: ``--channels`` assets with one signal each (constant-velocity Kalman filter, anomaly score,
Kalman forecast) whose signal also identifies a first-order model from its own input tag (RLS,
model forecast with interval, gain/time constant). Every tick each device tag gets a new sample.

Rows (ns per channel per tick; best of 3 time-boxed runs):
    kernels: kalman_step          the compiled Kalman step alone (no argument checks)
    kernels: kalman+score+fcast   KalmanBank step + score update + forecast + estimate
    kernels: rls_step             the compiled RLS update alone
    kernels: rls+model outputs    RlsBank.step + held-input forecast + model parameters
    twin: tick, model every tick  TwinRunner.tick() with model_period_s = tick_s (identification on every tick)
    twin: tick, model every 20    TwinRunner.tick() with model_period_s = 20 ticks (the demo's ratio)
    twin: tick + publish          the same plus TagRegistry.publish of its samples (what run() does per tick)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import kernels
from drivers.sample import Status, TagSample
from edge.config import AssetConfig, SignalConfig
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.runner import TwinRunner, signal_infos
from kernels.ident import IDENT_IMPLEMENTATION, ArxOrders, RlsBank, model_params


def best_ns(step: Callable[[], None], n: int, budget_s: float, setup: Callable[[], None] | None = None) -> float:
    """Best of 3 time-boxed loops of *step* (each at least 3 calls); ns per channel."""
    best = float("inf")
    for _ in range(3):
        calls, spent = 0, 0.0
        while calls < 3 or spent < budget_s:
            if setup is not None:
                setup()
            t = time.perf_counter()
            step()
            spent += time.perf_counter() - t
            calls += 1
        best = min(best, spent / calls)
    return best * 1e9 / n


def kernel_rows(n: int, budget_s: float) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    bank = kernels.KalmanBank("constant_velocity", n, 0.5, 1e-4, 0.01, x0=20.0)
    z = 20 + rng.normal(0, 0.1, n)
    rows = []
    impl = kernels.kalman._impl
    rows.append(
        (
            "kernels: kalman_step",
            best_ns(lambda: impl.kalman_step(bank.x, bank.P, bank.F, bank.Q, bank.H, bank.R, z, bank._innov, bank._innov_var), n, budget_s),
        )
    )

    def kalman_all() -> None:
        bank.step(z)
        bank.update_score(0.05)
        bank.forecast(120)
        bank.estimate  # noqa: B018

    rows.append(("kernels: kalman+score+fcast", best_ns(kalman_all, n, budget_s)))
    rls = RlsBank(ArxOrders.fopdt(0), n, lam=0.998, p_max=1e4, p0=300.0)
    y, u = 20 + rng.normal(0, 0.1, n), rng.uniform(0, 100, n)
    for _ in range(5):
        rls.step(y, u)
    from kernels import ident

    rows.append(
        (
            "kernels: rls_step",
            best_ns(lambda: ident._impl.rls_step(rls.theta, rls.P, rls.yh, rls.uh, y, u, rls.lam, rls.p_max, rls.sigma2, rls.err), n, budget_s),
        )
    )

    def rls_all() -> None:
        rls.step(y, u)
        rls.forecast_held(6)
        model_params(rls.theta, rls.P, rls.sigma2, rls.orders, 10.0)

    rows.append(("kernels: rls+model outputs", best_ns(rls_all, n, budget_s)))
    return rows


def build_twin(n: int, period_ticks: int | None) -> tuple[TwinRunner, TagRegistry, list[str]]:
    """*n* one-signal assets; identified with a model period of *period_ticks* (None: Kalman only)."""
    reg = TagRegistry()
    assets, device_tags = [], []
    for i in range(n):
        y_tag, u_tag = f"plc.t{i}", f"plc.u{i}"
        reg.add(TagInfo(y_tag, ("Devices", "plc", f"t{i}"), "float64", "degC", device="plc"))
        reg.add(TagInfo(u_tag, ("Devices", "plc", f"u{i}"), "float64", "%", 0.0, 100.0, device="plc"))
        device_tags += [y_tag, u_tag]
        ident = {} if period_ticks is None else {"input": u_tag, "model_period_s": 0.5 * period_ticks}
        sig = SignalConfig(
            name="temperature", tag=y_tag, model="constant_velocity", process_noise=1e-4, measurement_noise=0.1, forecast_horizon_s=60.0, **ident
        )
        assets.append(AssetConfig(name=f"a{i}", tick_s=0.5, signals=[sig]))
    for a in assets:
        for info in signal_infos(a, reg):
            reg.add(info)
    return TwinRunner(assets, reg, 0.5), reg, device_tags


def feeder(reg: TagRegistry, tags: list[str], values: list[float]) -> Callable[[], None]:
    """A function that publishes *values* for *tags*, half a second later at each call."""
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]

    def feed() -> None:
        clock[0] += timedelta(seconds=0.5)
        t = clock[0]
        reg.publish([TagSample(k, v, Status.Good, t, t) for k, v in zip(tags, values)])

    return feed


def tick_and_publish(twin: TwinRunner, reg: TagRegistry) -> None:
    reg.publish(twin.tick())


def twin_rows(n: int, budget_s: float) -> list[tuple[str, float]]:
    rows = []
    rng = np.random.default_rng(1)
    for period in (None, 20, 1):
        twin, reg, tags = build_twin(n, period)
        feed = feeder(reg, tags, (20 + rng.normal(0, 0.1, len(tags))).tolist())
        for _ in range(3 * (period or 1)):  # past the first model update
            feed()
            reg.publish(twin.tick())
        what = "Kalman only" if period is None else f"model every {period}"
        rows.append((f"twin: tick, {what}", best_ns(twin.tick, n, budget_s, setup=feed)))
        if period == 20:
            rows.append(("twin: tick + publish", best_ns(partial(tick_and_publish, twin, reg), n, budget_s, setup=feed)))
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=10_000)
    p.add_argument("--quick", action="store_true", help="short time boxes (a smoke run)")
    args = p.parse_args(argv)
    budget = 0.02 if args.quick else 0.1
    n = args.channels
    print(f"kernels: {kernels.IMPLEMENTATION} (kalman), {IDENT_IMPLEMENTATION} (identification); {n} channels")
    rows = kernel_rows(n, budget) + twin_rows(n, budget)
    kal = rows[0][1]
    print(f"{'what':32s} {'ns/channel':>12s} {'ms/tick':>9s} {'x kalman_step':>14s}")
    for name, ns in rows:
        print(f"{name:32s} {ns:12.1f} {ns * n / 1e6:9.3f} {ns / kal:14.1f}")


if __name__ == "__main__":
    main()
