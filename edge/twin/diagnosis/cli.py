"""``edgetwin patterns list | show | record | remove``: the fault-pattern library of an asset.

The library is the file the gateway uses (``<state_dir>/patterns/<library>.json`` of the config's
asset, seeded as the gateway would seed it). ``record`` learns a pattern from the history database
over ``--start``/``--end`` (ISO 8601, UTC unless an offset is given), exactly as the
RecordFaultPattern method does; ``remove`` drops one. A running gateway picks up the change at its
next diagnosis, without a restart. Exit 0 on success, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from edge.config import ConfigError, load_config
from edge.core.logconfig import configure_logging
from edge.twin.diagnosis.library import LibraryError, PatternFile
from edge.twin.diagnosis.live import pattern_file
from edge.twin.diagnosis.record import record


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "patterns",
        help="list, show, record or remove fault patterns of an asset's library",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    p.add_argument("action", choices=["list", "show", "record", "remove"], help="list the patterns, show one, record one from history, remove one")
    p.add_argument("name", nargs="?", help="pattern name (show, record, remove)")
    p.add_argument("--config", required=True, help="the gateway config")
    p.add_argument("--asset", help="asset with a [assets.diagnosis] section (default: the only one)")
    p.add_argument("--start", help="record: start of the episode (ISO 8601)")
    p.add_argument("--end", help="record: end of the episode (ISO 8601)")
    p.add_argument("--description", default="", help="record: what the fault is")
    p.add_argument("--action-text", dest="action_text", default="", help="record: what to do about it")
    p.set_defaults(func=patterns_command)


def _err(text: str) -> int:
    print(f"edgetwin patterns: {text}", file=sys.stderr)
    return 1


def _when(text: str | None, what: str) -> datetime:
    if not text:
        raise LibraryError(f"record needs --{what}")
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise LibraryError(f"--{what} {text!r} is not an ISO 8601 time (e.g. 2026-05-01T08:30:00Z)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def patterns_command(args: argparse.Namespace) -> int:
    configure_logging("warning")  # stdout is the answer; log lines go to stderr
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        return _err(str(exc))
    with_diag = [a for a in cfg.assets if a.diagnosis is not None]
    if args.asset is not None:
        asset = next((a for a in with_diag if a.name == args.asset), None)
        if asset is None:
            return _err(f"no asset {args.asset!r} with a [assets.diagnosis] section; those with one: {', '.join(a.name for a in with_diag) or 'none'}")
    elif len(with_diag) == 1:
        asset = with_diag[0]
    else:
        return _err(f"say which asset with --asset: {', '.join(a.name for a in with_diag) or 'no asset has a [assets.diagnosis] section'}")
    try:
        files = pattern_file(cfg, asset)
        lib = files.current()
        if args.action == "list":
            print(f"{files.path}: {len(lib.patterns)} pattern(s)")
            for p in lib.patterns:
                print(f"  {p.name:<20} {len(p.signatures)} episode(s)  {p.description}")
            return 0
        if not args.name:
            return _err(f"{args.action} needs a pattern name")
        if args.action == "show":
            return _show(files, args.name)
        if args.action == "remove":
            files.update(lib.without(args.name))
            print(f"removed {args.name!r} from {files.path}")
            return 0
        from edge.history.store import HistoryStore
        from edge.opcua.extensions import history_path

        path = history_path(cfg)
        if not path.exists():
            return _err(f"no history database at {path}: nothing to learn from")
        store = HistoryStore(path, retention_days=cfg.history.retention_days, max_db_mb=cfg.history.max_db_mb)
        store.open()
        try:
            rec = record(lib, store, asset, args.name, _when(args.start, "start"), _when(args.end, "end"), args.description, args.action_text, "cli")
        finally:
            store.close()
        files.update(rec.library)
        print(rec.message())
        return 0
    except (LibraryError, OSError) as exc:
        return _err(str(exc))


def _show(files: PatternFile, name: str) -> int:
    p = files.current().get(name)
    if p is None:
        return _err(f"no pattern {name!r} in {files.path}")
    print(f"{p.name}: {p.description}\n  action: {p.action}")
    for sig, ep in zip(p.signatures, p.episodes, strict=False):
        print(f"  episode {ep.start} .. {ep.end} ({ep.source}{', ' + ep.user if ep.user else ''}); contributors {', '.join(sig.contributors()[:3])}")
        for i, s in enumerate(sig.signals):
            flag = f"  flag {sig.flags[i]}" if sig.flags[i] else ""
            print(f"    {s:<16} deviation {sig.deviation[i]:+8.1f} sigma  slope {sig.slope[i]:+7.1f} sigma/min  noise x{10 ** sig.spread[i]:.2g}{flag}")
    return 0
