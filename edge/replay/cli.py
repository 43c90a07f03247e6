"""``edgetwin replay``: arguments and the command (the work is in edge.replay.run, imported lazily)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="run the twin and an anomaly detector over a recorded CSV, as if live",
        description="Replay a recorded CSV (a time column plus signal columns; optional 'anomaly' and "
        "'changepoint' label columns) through the twin and a detector fitted on the first --train-rows "
        "rows. Writes the outputs and alarms to CSV, prints detection metrics when labels are present, "
        "and renders a PNG.",
    )
    p.add_argument("csv", help="recorded signals")
    p.add_argument("--sep", help="column separator (default: sniffed from the header among ; , TAB |)")
    p.add_argument("--time-column", help="time column (default: the first); numbers in seconds or ISO 8601")
    p.add_argument("--columns", help="comma-separated signal columns (default: all but time and labels)")
    p.add_argument("--config", help="gateway config; with --asset, the twin uses that asset's signal models")
    p.add_argument("--asset", help="asset name in --config (signals matched to columns by name or tag)")
    p.add_argument("--detector", choices=["pca", "ewma", "cusum"], default="pca", help="anomaly detector run over the twin's outputs (default pca)")
    p.add_argument("--train-rows", type=int, default=400, help="rows of normal operation the detector is fitted on")
    p.add_argument("--on", type=float, default=1.25, help="alarm threshold (pca: x control limit; ewma/cusum: sigma)")
    p.add_argument("--release", type=float, default=0.8, help="alarm clears below release x on")
    p.add_argument("--k", type=int, default=1, help="alarm after k exceedances ...")
    p.add_argument("--window", type=int, default=1, help="... within this many ticks (<= 64)")
    p.add_argument("--smoothing", type=float, default=0.2, help="pca: EWMA factor of the score; ewma: lambda")
    p.add_argument("--cusum-k", type=float, default=0.5, help="cusum allowance, sigma")
    p.add_argument("--explained", type=float, default=0.95, help="pca: variance share of the kept components")
    p.add_argument("--alpha", type=float, default=0.99, help="pca: confidence of the control limits")
    p.add_argument("--no-differences", action="store_true", help="pca: do not add first differences of the signals")
    p.add_argument(
        "--rate-only",
        default="",
        help="pca: comma-separated signals monitored by their first difference only (slow drifting states, e.g. Temperature,Thermocouple on SKAB)",
    )
    p.add_argument("--out", help="output CSV (default: <csv stem>.replay.csv in the current directory)")
    p.add_argument("--plot", help="output PNG (default: <csv stem>.replay.png in the current directory)")
    p.add_argument("--no-plot", action="store_true", help="do not render the PNG")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_config
    from edge.replay.run import DetectorSettings, replay_file

    asset = None
    if bool(args.config) != bool(args.asset):
        print("--config and --asset go together", file=sys.stderr)
        return 2
    if args.config:
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        asset = next((a for a in cfg.assets if a.name == args.asset), None)
        if asset is None:
            print(f"{args.config}: no asset {args.asset!r}; assets are {[a.name for a in cfg.assets]}", file=sys.stderr)
            return 2
    src = Path(args.csv)
    out = Path(args.out or f"{src.stem}.replay.csv")  # default: the current directory, never beside the data
    plot = None if args.no_plot else Path(args.plot or f"{src.stem}.replay.png")
    try:
        settings = DetectorSettings(
            kind=args.detector,
            train_rows=args.train_rows,
            on=args.on,
            release=args.release,
            k=args.k,
            window=args.window,
            smoothing=args.smoothing,
            cusum_k=args.cusum_k,
            explained=args.explained,
            alpha=args.alpha,
            differences=not args.no_differences,
            rate_only=tuple(c.strip() for c in args.rate_only.split(",") if c.strip()),
        )
        columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
        table, result, scores = replay_file(src, settings, sep=args.sep, time_column=args.time_column, columns=columns, asset=asset, out=out, plot=plot)
    except (OSError, ValueError) as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    alarms = int(result.alarm.sum())
    print(
        f"{src}: {len(table.times_s)} rows, {len(result.names)} signals, detector {settings.kind} fitted on {settings.train_rows} rows; alarm on {alarms} rows"
    )
    if scores is not None:
        print("metrics over the rows after the training window:")
        for line in scores.lines():
            print("  " + line)
    print(f"outputs: {out}" + (f"\nplot: {plot}" if plot else ""))
    return 0
