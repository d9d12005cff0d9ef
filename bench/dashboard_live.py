"""The dashboard as a user meets it, at district, city or province scale, on SQLite or PostgreSQL.

    python bench/dashboard_live.py --scale province [--db URL] [--events 20] [--json OUT]

- first paint: from the process's start (a fresh `python` running the app headless at 120×40)
  and from the app's mount, until the overview's figures and the ledger's first rows are drawn;
- live: another process records one command at a time; the time from its commit to the
  overview showing the new count (p50 / p95 over `--events` commands);
- peak RSS of the dashboard's process.
The store is generated once (the demo generator, as bench/run.py) and kept for later runs.
"""

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCALES = {"district": 5_000, "city": 50_000, "province": 200_000}
BATCH = 20_000
SIZE = (120, 40)


def build(db: str, cases: int) -> None:
    from domain.commands import parse_command
    from service.demo import demo_commands
    from service.session import Session, without_cycle_collector

    session = Session(db, "bench")
    if session.ledger.ledger_recorder.count_refs() >= cases:
        session.close()
        return
    config = session.ledger.campaign().config
    commands = demo_commands(config, cases)
    started = time.perf_counter()
    with without_cycle_collector():
        for i in range(0, len(commands), BATCH):
            session.ledger.record([parse_command(c) for c in commands[i : i + BATCH]], "bench")
        session.catch_up()
    print(f"built {cases} cases in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    session.close()


def peak_rss_mb() -> int:
    """This process's own peak (getrusage's counts the parent it was forked from: the build)."""
    status = Path("/proc/self/status").read_text()
    return round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)  # type: ignore[union-attr]


def kpi_text(app: Any) -> str:
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(app.screen.query_one("#kpis").content)
    return console.export_text()


def ledger_rows(app: Any) -> int:
    table = next(iter(app.screen.query("LedgerTable")), None)
    return int(getattr(table, "row_count", 0) or 0) if table is not None else -1


async def paint(db: str, started: float, as_of: date | None) -> dict[str, Any]:
    """In a fresh process: the app until its figures and first ledger rows are on screen."""
    from service.session import Session
    from tui.app import LandLedgerApp

    app = LandLedgerApp(Session(db, "bench"), as_of=as_of)
    async with app.run_test(size=SIZE) as pilot:
        mounted = time.time()
        await pilot.press("2")  # the ledger is drawn while the overview fills in
        while not kpi_text(app).strip() or ledger_rows(app) == 0:
            await asyncio.sleep(0.005)
        painted = time.time()
    return {
        "first_paint_from_start_s": round(painted - started, 3),
        "first_paint_from_mount_s": round(painted - mounted, 3),
        "first_paint_cpu_s": round(time.process_time(), 3),  # steadier than wall on a busy machine
    }


WRITER = """
import sys, time, json
sys.path.insert(0, {root!r})
from domain.commands import parse_command
from service.session import Session
session = Session({db!r}, "writer")
for n in range({events}):
    time.sleep(1.2)
    command = parse_command({{"cmd": "find_site", "ref": "LIVE-%d-%d" % ({seed}, n),
        "on": "2022-03-01", "source": "巡查", "township": "苏店镇", "unit": "苏店自然资源所",
        "violation_types": ["占用耕地"], "area_m2": "100"}})
    session.ledger.record([command], "writer")
    print(time.time(), flush=True)
"""


async def live(db: str, events: int, as_of: date | None) -> dict[str, Any]:
    """Another process's commits against the moment the overview shows them."""
    from service.session import Session
    from tui.app import LandLedgerApp

    app = LandLedgerApp(Session(db, "bench"), as_of=as_of)
    seen: list[float] = []
    async with app.run_test(size=SIZE):
        while not kpi_text(app).strip():
            await asyncio.sleep(0.01)
        shown = kpi_text(app)
        root = str(Path(__file__).resolve().parent.parent)
        code = WRITER.format(root=root, db=db, events=events, seed=int(time.time()))
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        deadline = time.time() + events * 1.2 + 30
        while len(seen) < events and time.time() < deadline:
            await asyncio.sleep(0.005)
            now = kpi_text(app)
            if now != shown:
                shown = now
                seen.append(time.time())
        out, _ = writer.communicate(timeout=60)
    commits = [float(line) for line in out.split()]
    delays = [s - c for c, s in zip(commits, seen, strict=False)]
    delays.sort()
    return {
        "live_events": len(delays),
        "live_p50_s": round(statistics.median(delays), 3) if delays else None,
        "live_p95_s": round(delays[max(0, round(0.95 * len(delays)) - 1)], 3) if delays else None,
        "rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=SCALES, default="district")
    parser.add_argument("--db", help="a SQLite path or postgresql:// URL (default: /tmp)")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--as-of", help="the dashboard's cutoff (default: today, as staff open it)")
    parser.add_argument("--json")
    parser.add_argument("--child", choices=["paint", "live"], help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    db = args.db or f"/tmp/landledger-dashboard-{args.scale}.db"
    as_of = date.fromisoformat(args.as_of) if args.as_of else None
    if args.child == "paint":
        print(json.dumps(asyncio.run(paint(db, args.started, as_of))))
        return
    if args.child == "live":  # a process of its own: the build's memory is not in its RSS
        print(json.dumps(asyncio.run(live(db, args.events, as_of))))
        return
    build(db, SCALES[args.scale])
    started = time.time()
    child = subprocess.run(
        [sys.executable, __file__, "--db", db, "--child", "paint", "--started", str(started)]
        + (["--as-of", args.as_of] if args.as_of else []),
        capture_output=True,
        text=True,
        check=True,
    )
    backend = "postgres" if "://" in db else "sqlite"
    result: dict[str, Any] = {"scale": args.scale, "backend": backend, "as_of": args.as_of}
    result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    live_child = subprocess.run(
        [sys.executable, __file__, "--db", db, "--child", "live", "--events", str(args.events)]
        + (["--as-of", args.as_of] if args.as_of else []),
        capture_output=True,
        text=True,
        check=True,
    )
    result.update(json.loads(live_child.stdout.strip().splitlines()[-1]))
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
