"""Building the identified models of a runner's assets: structures, registry entries, groups."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from edge.config import AssetConfig, SignalConfig
from edge.core.names import model_output_key, model_output_path, model_outputs
from edge.core.registry import TagInfo, TagRegistry
from edge.twin.identified import ModelChannel, ModelGroup
from kernels.ident import ArxOrders


def candidates_of(sig: SignalConfig, period_s: float) -> list[ArxOrders]:
    """The model structures to identify: one, or one per candidate dead time (``max_dead_time_s``)."""
    if sig.input_model != "fopdt":
        return [ArxOrders(*sig.arx_orders)]
    first = round(sig.dead_time_s / period_s)
    last = first if sig.max_dead_time_s is None else round(sig.max_dead_time_s / period_s)
    return [ArxOrders.fopdt(d) for d in range(first, last + 1)]


def period_of(sig: SignalConfig, asset: AssetConfig) -> float:
    return sig.model_period_s if sig.model_period_s is not None else asset.tick_s


def model_infos(asset: AssetConfig, sig: SignalConfig, registry: TagRegistry) -> list[TagInfo]:
    """Registry entries of one identified signal (declared before the OPC UA tree is built)."""
    out_info, in_info = registry.info(sig.tag), registry.info(sig.input)  # type: ignore[arg-type]
    y_unit = sig.units or out_info.units
    gain_unit = f"{y_unit}/{in_info.units}" if y_unit and in_info.units else None
    first_order = sig.input_model == "fopdt"
    h = sig.forecast_horizon_s
    meta = {
        "model_gain": (gain_unit, f"identified steady-state gain from {sig.input}"),
        "model_gain_std": (gain_unit, "standard deviation of the identified gain"),
        "model_time_constant": ("s", "identified time constant"),
        "model_dead_time": ("s", "dead time of the model (identified with max_dead_time_s)"),
        "model_residual_std": (y_unit, "standard deviation of the one-step model residual"),
        "model_forecast": (y_unit, f"model forecast {h:g} s ahead, input held"),
        "model_forecast_low": (y_unit, f"lower bound of the 95 % prediction interval {h:g} s ahead"),
        "model_forecast_high": (y_unit, f"upper bound of the 95 % prediction interval {h:g} s ahead"),
    }
    infos = []
    for output in model_outputs(first_order):
        unit, text = meta[output]
        infos.append(
            TagInfo(model_output_key(asset.name, sig.name, output), model_output_path(asset.name, sig.name, output), "float64", unit, description=text)
        )
    return infos


def build_model_groups(assets: Sequence[AssetConfig], registry: TagRegistry, tick_s: float) -> list[ModelGroup]:
    """One ``ModelGroup`` per model structure and period among the signals with an ``input``."""
    grouped: dict[tuple, list[tuple[ModelChannel, float, float]]] = defaultdict(list)
    for asset in assets:
        for sig in asset.signals:
            if sig.input is None:
                continue
            period = period_of(sig, asset)
            ticks = round(period / tick_s)
            info = registry.info(sig.input)
            ch = ModelChannel(
                asset.name,
                sig.name,
                sig.tag,
                sig.input,
                -math.inf if info.low is None else float(info.low),
                math.inf if info.high is None else float(info.high),
                max(1, round(sig.forecast_horizon_s / period)),
                sig.model_warmup,
                sig.max_gain_rel_std,
                sig.input_model == "fopdt",
                asset.score_alpha,
            )
            grouped[(tuple(candidates_of(sig, period)), ticks, ch.first_order)].append((ch, sig.forgetting, sig.covariance_bound))
    groups = []
    for (candidates, ticks, _), members in grouped.items():
        g = ModelGroup(list(candidates), ticks, ticks * tick_s, [m[0] for m in members], np.array([m[1] for m in members]), np.array([m[2] for m in members]))
        groups.append(g)
    return groups
