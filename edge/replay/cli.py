"""``edgetwin replay``: arguments and the command (the work is in edge.replay.run, imported lazily)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the replay modules are imported when the command runs, never with the daemon
    from edge.config import AssetConfig
    from edge.replay.batch import Training as TrainingLike
    from edge.replay.table import SignalTable


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="run the twin and an anomaly detector over a recorded CSV, as if live",
        description="Replay recorded CSVs (a time column plus signal columns; optional 'anomaly' and "
        "'changepoint' label columns) through the twin and a detector fitted on separate --train files "
        "or on the first --train-rows rows of each file. Writes the outputs and alarms to CSV per file, "
        "prints detection metrics (per file and summed) when labels are present, and renders a PNG per "
        "file. --split and --logo choose the detector setting on tuning files and score held-out files.",
    )
    p.add_argument("csv", nargs="+", help="recorded signals: one or more test files")
    p.add_argument(
        "--train",
        action="append",
        metavar="CSV",
        help="normal-operation file the twin and detector are fitted on (repeat for several); every row of each test file is then scored",
    )
    p.add_argument("--sep", help="column separator (default: sniffed from the header among ; , TAB |)")
    p.add_argument("--time-column", help="time column (default: the first); numbers in seconds or ISO 8601")
    p.add_argument("--columns", help="comma-separated signal columns (default: all but time and labels)")
    p.add_argument("--config", help="gateway config; with --asset, the twin uses that asset's signal models")
    p.add_argument("--asset", help="asset name in --config (signals matched to columns by name or tag)")
    p.add_argument("--detector", choices=["pca", "ewma", "cusum"], default="pca", help="anomaly detector run over the twin's outputs (default pca)")
    p.add_argument(
        "--train-rows", type=int, default=400, help="without --train: the first rows of each file, normal operation, that fit the detector (default 400)"
    )
    p.add_argument(
        "--on",
        type=float,
        help="alarm threshold (pca: x control limit, default 1.25; ewma/cusum: score units, default derived from the training rows, see --on-quantile)",
    )
    p.add_argument("--on-quantile", type=float, help="ewma/cusum default threshold: this quantile of the training rows' score (default 0.995) ...")
    p.add_argument("--on-margin", type=float, help="... times this margin (default 2)")
    p.add_argument("--release", type=float, help="alarm clears below release x on (default 0.8)")
    p.add_argument("--k", type=int, help="alarm after k exceedances (default 1) ...")
    p.add_argument("--window", type=int, help="... within this many ticks (<= 64, default 1)")
    p.add_argument("--smoothing", type=float, help="pca: EWMA factor of the score; ewma: lambda (default 0.2)")
    p.add_argument("--cusum-k", type=float, help="cusum allowance, sigma (default 0.5)")
    p.add_argument("--explained", type=float, help="pca: variance share of the kept components (default 0.95)")
    p.add_argument("--components", type=int, help="pca: principal components kept (instead of --explained)")
    p.add_argument("--alpha", type=float, help="pca: confidence of the control limits (default 0.99)")
    p.add_argument("--no-differences", action="store_true", help="pca: do not add first differences of the signals")
    p.add_argument(
        "--rate-only",
        default="",
        help="pca: comma-separated signals monitored by their first difference only (slow drifting states, e.g. Temperature,Thermocouple on SKAB)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--split", action="store_true", help="two folds: choose the setting on one half of the files, score the other, and back")
    mode.add_argument("--logo", action="store_true", help="leave one group out: choose the setting on the other groups, score the group")
    p.add_argument("--groups", help="file groups as 'pattern=group;...' (fnmatch on the path or folder/name; default: the file's folder name)")
    p.add_argument("--seed", type=int, help="--split: shuffle the files within each group with this seed (default: alternate in file order)")
    p.add_argument("--grid", help="--split/--logo candidate settings as 'key=v1,v2;key=...' (default per detector, see docs/detection.md)")
    p.add_argument("--max-far", type=float, default=10.0, help="--split/--logo: the chosen setting keeps FAR on the tuning files at most this, %% (default 10)")
    p.add_argument("--out", help="output CSV of a single test file (default: <csv stem>.replay.csv in --out-dir)")
    p.add_argument("--plot", help="output PNG of a single test file (default: <csv stem>.replay.png in --out-dir)")
    p.add_argument("--out-dir", default=".", help="folder of the per-file outputs (default: the current directory)")
    p.add_argument("--no-plot", action="store_true", help="do not render the PNG")
    p.add_argument(
        "--patterns", help="a fault-pattern library (JSON, docs/diagnosis.md): each alarm episode is diagnosed (CSV column `diagnosis`, named on the plot)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import ConfigError, load_config

    asset = None
    if bool(args.config) != bool(args.asset):
        print("--config and --asset go together", file=sys.stderr)
        return 2
    usage = _usage_error(args)
    if usage:
        print(usage, file=sys.stderr)
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
    try:
        if args.patterns:
            from edge.twin.diagnosis.library import load

            load(Path(args.patterns))  # a library that cannot be read is an error here, before any work
        lines = _run(args, asset)
    except (OSError, ValueError) as exc:
        print(f"replay failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def _usage_error(args: argparse.Namespace) -> str | None:
    if len(args.csv) > 1 and (args.out or args.plot):
        return "--out and --plot name the outputs of a single test file; with several, use --out-dir"
    if (args.split or args.logo) and len(args.csv) < 2:
        return "--split and --logo need at least two test files"
    if not (args.split or args.logo) and (args.groups or args.grid or args.seed is not None):
        return "--groups, --grid and --seed go with --split or --logo"
    return None


def _run(args: argparse.Namespace, asset: AssetConfig | None) -> list[str]:
    from edge.replay import batch, evaluate, tuning
    from edge.replay.run import DetectorSettings
    from edge.replay.table import CsvError, read_signal_csv

    given = {k: getattr(args, k) for k in _SETTING_FLAGS if getattr(args, k) is not None}
    threshold = batch.Threshold(args.on, **{k: getattr(args, f"on_{k}") for k in tuning.THRESHOLD_KEYS if getattr(args, f"on_{k}") is not None})
    settings = DetectorSettings(
        kind=args.detector,
        train_rows=args.train_rows,
        on=args.on or batch.PCA_ON,  # the run's level comes from `threshold` (batch.resolve_on)
        differences=not args.no_differences,
        rate_only=tuple(c.strip() for c in args.rate_only.split(",") if c.strip()),
        components=args.components,
        **given,
    )
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    rules = tuning.parse_groups(args.groups) if args.groups else None
    grid = tuning.parse_grid(args.grid) if args.grid else tuning.DEFAULT_GRID[settings.kind]
    paths = [Path(p) for p in args.csv]
    groups = [tuning.group_of(p, rules) for p in paths]

    def read(p: str | Path, cols: list[str] | None) -> SignalTable | CsvError:
        try:
            return read_signal_csv(p, sep=args.sep, time_column=args.time_column, columns=cols)
        except CsvError as exc:  # collected: every file's problems are reported together
            return exc

    training = None
    read_train = [read(p, columns) for p in args.train or []]
    if read_train and not any(isinstance(t, CsvError) for t in read_train):
        training = batch.load_training(read_train, asset)  # type: ignore[arg-type]
        columns = columns or (None if asset else training.names)  # test files need the training signals
    tables = [read(p, columns) for p in paths]
    _raise_all([*read_train, *tables])
    preps = [batch.prepare(t, settings.train_rows, training, asset) for t in tables]  # type: ignore[arg-type]
    batch.check_components(settings, len(preps[0].names))
    out_dir = Path(args.out_dir)
    stems = batch.output_names(paths)
    outputs = evaluate.Outputs(
        [Path(args.out) if args.out else out_dir / f"{s}.replay.csv" for s in stems],
        [None if args.no_plot else Path(args.plot) if args.plot else out_dir / f"{s}.replay.png" for s in stems],
        Path(args.patterns) if args.patterns else None,
    )
    if any(p is not None for p in outputs.csv):
        out_dir.mkdir(parents=True, exist_ok=True)
    train_desc = None if training is None else _describe_training(training)
    if args.split or args.logo:
        fixed = [*given, *(["on"] if args.on else []), *(["components"] if args.components else [])]
        fixed += [k for k in tuning.THRESHOLD_KEYS if getattr(args, f"on_{k}") is not None]
        cands = tuning.candidates(settings, threshold, grid, fixed)
        for c in cands:
            batch.check_components(c.settings, len(preps[0].names))
        folds = tuning.two_folds(groups, args.seed) if args.split else tuning.logo_folds(groups)
        mode = "two-fold split" if args.split else "leave one group out"
        names = [f"{n} ({g})" for n, g in zip(batch.display_names(paths), groups)]
        return evaluate.cross_validate(preps, names, folds, cands, args.max_far, outputs, mode, groups)
    if len(preps) == 1:
        return evaluate.replay_one(preps[0], settings, threshold, outputs, train_desc)
    return evaluate.replay_many(preps, batch.display_names(paths), settings, threshold, outputs, train_desc)


# settings flags whose default is DetectorSettings' own; a flag the user gives is not varied by a grid
_SETTING_FLAGS = ("release", "k", "window", "smoothing", "cusum_k", "explained", "alpha")


def _raise_all(items: list[object]) -> None:
    from edge.replay.table import CsvError

    errors = [x for x in items if isinstance(x, CsvError)]
    if errors:
        raise ValueError("\n".join(str(e) for e in errors))


def _describe_training(training: TrainingLike) -> str:
    files = ", ".join(training.paths)
    return f"{len(training.values) - len(training.paths)} rows of {files}"
