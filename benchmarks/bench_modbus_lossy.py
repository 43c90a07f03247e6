"""Soak benchmark of Modbus polling on lossy links (not a CI gate).

    python benchmarks/bench_modbus_lossy.py [--seconds 90] [--poll 0.5] [--seed 1] [--quick]

The gateway's own poll loop (DeviceRunner + ModbusTcpDriver) polls a MiniServer on 127.0.0.1
through the fault-injection proxy of the tests (tests/drivers/fault_proxy.py), in two scenarios:

    5 % / 1 unit    5 % of frames lost in each direction, one unit on the connection
    20 % / 3 units  20 % lost in each direction, three units on one connection

Each unit has two blocks (a status word, then the float32 measurement), so the measurement is the
unit's last block in every cycle. Each scenario runs twice: with the default settings, and with
the settings that reproduce the old behaviour as far as settings can (fixed 1 s timeout, no
re-sends, the link reopened after one cycle without any answer: tests/drivers/lossy_run.py
OLD_BEHAVIOUR; the old end-of-cycle publishing is not reproducible by settings). Printed per run:
reconnects (new TCP connections), log lines, % of Good samples (every tag looked at every poll
interval), the longest time each unit's measurement went without a Good value, and the worst age
beyond poll interval + timeout_s of a value seen Good (0 means the freshness rule held).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tests.drivers.fault_proxy import Faults
from tests.drivers.lossy_run import OLD_BEHAVIOUR, run_lossy

SCENARIOS = [("5 % / 1 unit", 0.05, 1), ("20 % / 3 units", 0.20, 3)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="length of each run (default 90)")
    parser.add_argument("--poll", type=float, default=0.5, help="poll interval, s (default 0.5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="20 s runs")
    parser.add_argument("--only", choices=["5", "20"], help="run one scenario (loss in %%)")
    parser.add_argument("--new-only", action="store_true", help="skip the old-behaviour runs")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else args.seconds
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # its per-frame error lines (structlog events are counted, not printed)
    print(f"{seconds:g} s per run, poll {args.poll:g} s, seed {args.seed}")
    print("| scenario | settings | cycles | requests | reconnects | log lines | Good % | longest gap per unit (s) | worst overage (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, loss, units in SCENARIOS:
        if args.only and round(loss * 100) != int(args.only):
            continue
        for label, settings in (("defaults", {}), ("old behaviour", OLD_BEHAVIOUR))[: 1 if args.new_only else 2]:
            r = await run_lossy(_free_port(), Faults(drop=loss), units=units, seconds=seconds, poll_s=args.poll, seed=args.seed, settings=settings)
            gaps = ", ".join(f"{g:.2f}" for _, g in sorted(r.longest_gap_s.items()))
            row = [name, label, r.cycles, r.requests, r.connections - 1, r.log_lines, f"{r.good_pct:.1f}", gaps, f"{r.overage_s:.2f}"]
            print("| " + " | ".join(str(x) for x in row) + " |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
