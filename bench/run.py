"""LandLedger at district, city and province scale, against raw sqlite3 on the same rows.

    python bench/run.py --scale district|city|province [--json OUT] [--dir DIR]

Generates a seeded campaign (service.demo, about 4.6 events a case) and records it through the
public command path (parse_command + LandLedger.record, batches of 20000 commands; the rate
over all batches and over the last quarter of them), then times the persistence step alone, a
rebuild of the read model, single commands with their projection update, statistics now and at
a cutoff, `landledger stats` start-up, `landledger export ledger` (time and peak memory) and
`verify` (the whole hash chain). The `_raw_` figures are the baseline, measured in the same run
on the same rows:
- append_raw_rows_per_s: plain sqlite3 inserting the same stored rows, batches of 20000, into a
  table of the event store's shape (with its unique primary key), WAL and synchronous=FULL;
- rebuild_raw_rows_per_s: plain sqlite3 reading the same rows, orjson, the same fold and the
  same read-model inserts (ReadModel.refill), so the difference is what the library costs;
- verify_raw_s: plain sqlite3 reading the same rows in log order, hashlib computing the same
  chain. (append_raw_rows_per_s writes no links: the chain's cost is in persist_events_per_s.)
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import parse_command
from projections.facts import KIND_OF_TOPIC
from projections.ledger import Fact
from projections.readmodel import ReadModel
from service.demo import demo_commands
from service.ledger import LandLedger
from service.session import Session, without_cycle_collector

SCALES = {"district": 5_000, "city": 50_000, "province": 200_000}
BATCH = 20000  # commands a `record` batch (one transaction); the stored rows likewise


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def append(app: LandLedger, commands: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """Each batch's seconds and events."""
    batches = []
    for i in range(0, len(commands), BATCH):
        started = time.perf_counter()
        batch = [parse_command(c) for c in commands[i : i + BATCH]]
        events = app.record(batch, "bench").events
        batches.append((time.perf_counter() - started, events))
    return batches


def rate(batches: list[tuple[float, int]]) -> int:
    return round(sum(events for _, events in batches) / sum(seconds for seconds, _ in batches))


def stored_rows(app: LandLedger) -> list[Any]:
    return list(app.notifications())


def persist(rows: list[Any], folder: Path) -> float:
    """The persistence step alone: already-encoded events into a fresh store."""
    fresh = LandLedger(str(folder / "persist.db"))
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        fresh.recorder.insert_events(rows[i : i + BATCH])
    elapsed = time.perf_counter() - started
    fresh.close()
    return elapsed


def raw_append(rows: list[Any], folder: Path) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
        "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
    )
    params = [(r.originator_id.hex, r.originator_version, r.topic, r.state) for r in rows]
    started = time.perf_counter()
    for i in range(0, len(params), BATCH):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", params[i : i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_facts(path: Path) -> Iterator[Fact]:
    conn = sqlite3.connect(path)
    position = 0
    while True:
        page = conn.execute(
            "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? ORDER BY rowid LIMIT 5000",
            (position,),
        ).fetchall()
        if not page:
            return
        for rowid, originator, version, topic, state in page:
            kind = KIND_OF_TOPIC.get(topic)
            if kind is not None:
                yield Fact.of(rowid, originator, version, kind, orjson.loads(state))
        position = page[-1][0]


def raw_rebuild(model: ReadModel, path: Path, total: int) -> float:
    started = time.perf_counter()
    model.refill(raw_facts(path), total)
    return time.perf_counter() - started


def command_latencies(app: LandLedger, model: ReadModel, refs: list[str], n: int) -> list[float]:
    rng = random.Random(5)
    latencies = []
    for ref in rng.sample(refs, min(n, len(refs))):
        command = parse_command({"cmd": "flag", "ref": ref, "on": "2022-04-15", "kind": "典型案件"})
        started = time.perf_counter()
        app.record([command], "bench")
        model.catch_up()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def export_ledger(env: dict[str, str], folder: Path) -> tuple[float, int]:
    """`landledger export ledger` as a user runs it: wall time and the child's peak memory."""
    script = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    command = [sys.executable, "-m", "tui.cli", "export", "ledger", "--out", str(folder / "l.xlsx")]
    done = subprocess.run(
        [sys.executable, "-c", script, *command],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    seconds, kilobytes = done.stdout.split()
    return float(seconds), int(kilobytes) // 1024


def raw_verify(path: Path) -> str:
    """Plain sqlite3 and hashlib: the hash chain (storage/chain.py) over the same rows."""
    conn = sqlite3.connect(path)
    cursor = conn.execute(
        "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
        "ORDER BY rowid"
    )
    prev, n, sha = bytes(32), 0, hashlib.sha256
    while page := cursor.fetchmany(20000):
        for position, originator, version, topic, state in page:
            entry = f"{position}|{originator}|{version}|{topic}|{sha(state).hexdigest()}"
            prev = sha(prev + entry.encode()).digest()
        n += len(page)
    conn.close()
    return f"{n}:{prev.hex()}"


def median_time(action: Any, repeat: int) -> float:
    return statistics.median(timed(action)[0] for _ in range(repeat))


def run(scale: str, folder: Path) -> dict[str, Any]:
    cases = SCALES[scale]
    db = folder / "ledger.db"
    app = LandLedger(str(db))
    commands = demo_commands(app.campaign().config, cases)
    batches = append(app, commands)
    events = sum(n for _, n in batches)
    rows = stored_rows(app)
    persist_s = persist(rows, folder)
    raw_append_s = raw_append(rows, folder)

    model = ReadModel(app)
    total = app.recorder.max_notification_id() or 0
    raw_rebuild_s = raw_rebuild(model, db, total)
    rebuild_s, _ = timed(model.rebuild)
    model.catch_up()

    refs = sorted({c["ref"] for c in commands})
    latencies = command_latencies(app, model, refs, 300)
    stats_s = median_time(model.stats, 5)
    as_of_s = median_time(lambda: model.stats(as_of=date(2022, 2, 28)), 3)
    env = {**os.environ, "LANDLEDGER_DB": str(db)}
    startup_s = median_time(
        lambda: subprocess.run(
            [sys.executable, "-m", "tui.cli", "stats", "--json"],
            env=env,
            check=True,
            capture_output=True,
        ),
        3,
    )
    export_s, export_mb = export_ledger(env, folder)
    session = Session(str(db), "bench")
    verify_s, checked = timed(session.verify)
    session.close()
    raw_verify_s, raw_fingerprint = timed(lambda: raw_verify(db))
    assert checked.ok and checked.fingerprint == raw_fingerprint
    quantiles = statistics.quantiles(latencies, n=20)
    return {
        "scale": scale,
        "cases": cases,
        "events": events,
        "append_events_per_s": rate(batches),
        # The last quarter of the batches, recorded onto a store that holds three quarters of
        # the events already: whether the rate holds as the store grows.
        "append_last_quarter_events_per_s": rate(batches[len(batches) * 3 // 4 :]),
        "persist_events_per_s": round(len(rows) / persist_s),
        "append_raw_rows_per_s": round(len(rows) / raw_append_s),
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_events_per_s": round(total / rebuild_s),
        "rebuild_raw_rows_per_s": round(total / raw_rebuild_s),
        "command_p50_ms": round(statistics.median(latencies), 2),
        "command_p95_ms": round(quantiles[18], 2),
        "stats_s": round(stats_s, 4),
        "as_of_stats_s": round(as_of_s, 3),
        "startup_stats_s": round(startup_s, 3),
        "export_ledger_s": round(export_s, 2),
        "export_ledger_peak_mb": export_mb,
        "versions": model.db.rows("SELECT count(*) FROM rm_versions")[0][0],
        "verify_s": round(verify_s, 2),
        "verify_raw_s": round(raw_verify_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="district")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed after)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="landledger-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with without_cycle_collector():  # as the landledger command runs
            figures = run(args.scale, folder)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
