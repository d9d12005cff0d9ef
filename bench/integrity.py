"""What tamper evidence and encryption at rest cost, against raw baselines on the same rows.

    python bench/integrity.py --store PATH [--repeat 3]        verify on an existing SQLite store,
                                                               and the links' cost on append
    python bench/integrity.py --scale district|city|province   the cipher's costs: a campaign
                                                               recorded twice, in clear and
                                                               encrypted (append, rebuild, verify)

`verify` figures: `Session.verify` (wall and CPU seconds), beside the raw baseline: plain sqlite3
reading the same rows in log order with hashlib computing the same chain (storage/chain.py), and
the SHA-256 of the stored bytes alone. The machine is shared: CPU seconds are steadier than wall.
"""

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.commands import parse_command
from projections.readmodel import ReadModel
from service.demo import demo_commands
from service.ledger import LandLedger
from service.session import Session, without_cycle_collector
from storage.sqlite import SQLiteLedgerRecorder
from storage.store import new_cipher_key

SCALES = {"district": 5_000, "city": 50_000, "province": 200_000}
BATCH = 20000


def clocked(action: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def raw_verify(path: str) -> tuple[int, str]:
    """Plain sqlite3 and hashlib: the same chain over the same rows, nothing else."""
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
    return n, f"{n}:{prev.hex()}"


def raw_hash_only(path: str) -> int:
    conn = sqlite3.connect(path)
    states = [s for (s,) in conn.execute("SELECT state FROM stored_events ORDER BY rowid")]
    conn.close()
    started = time.perf_counter()
    for state in states:
        hashlib.sha256(state).digest()
    return round((time.perf_counter() - started) * 1000)


def verify_figures(path: str, repeat: int) -> dict[str, Any]:
    session = Session(path, "bench")
    session.verify()  # links an old store once; warms the page cache
    runs = [clocked(session.verify) for _ in range(repeat)]
    result = runs[-1][2]
    assert result.ok, result.difference
    raws = [clocked(lambda: raw_verify(path)) for _ in range(repeat)]
    assert raws[-1][2][1] == result.fingerprint, "the raw chain differs from verify's"
    session.close()
    return {
        "events": result.checked,
        "verify_s": round(statistics.median(r[0] for r in runs), 2),
        "verify_cpu_s": round(statistics.median(r[1] for r in runs), 2),
        "verify_raw_s": round(statistics.median(r[0] for r in raws), 2),
        "verify_raw_cpu_s": round(statistics.median(r[1] for r in raws), 2),
        "sha256_of_states_alone_ms": raw_hash_only(path),
    }


def link_figures(path: str, folder: Path, rows: int = 200_000) -> dict[str, Any]:
    """The chain's cost when appending: the persistence step (already-encoded events into a
    fresh store, batches of 20,000) with its links and with the link step switched off, and
    plain sqlite3 inserting the same rows into a table of the same shape (no links)."""
    source = LandLedger(path)
    stored = []
    for notification in source.notifications():
        stored.append(notification)
        if len(stored) >= rows:
            break
    source.close()

    def persist(name: str) -> tuple[float, float]:
        fresh = LandLedger(str(folder / f"{name}.db"))
        wall, cpu, _ = clocked(
            lambda: [
                fresh.recorder.insert_events(stored[i : i + BATCH])
                for i in range(0, len(stored), BATCH)
            ]
        )
        fresh.close()
        return len(stored) / wall, len(stored) / cpu

    def raw() -> tuple[float, float]:
        conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        params = [
            (cast(UUID, r.originator_id).hex, r.originator_version, r.topic, r.state)
            for r in stored
        ]

        def insert() -> None:
            for i in range(0, len(params), BATCH):
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO stored_events VALUES (?, ?, ?, ?)", params[i : i + BATCH]
                )
                conn.execute("COMMIT")

        wall, cpu, _ = clocked(insert)
        conn.close()
        return len(stored) / wall, len(stored) / cpu

    with_links = persist("links")
    link = SQLiteLedgerRecorder._link
    SQLiteLedgerRecorder._link = lambda *_: None  # type: ignore[method-assign]
    try:
        without = persist("nolinks")
    finally:
        SQLiteLedgerRecorder._link = link  # type: ignore[method-assign]
    baseline = raw()
    return {
        "rows": len(stored),
        "persist_with_links_events_per_s": round(with_links[0]),
        "persist_with_links_events_per_cpu_s": round(with_links[1]),
        "persist_without_links_events_per_s": round(without[0]),
        "persist_without_links_events_per_cpu_s": round(without[1]),
        "raw_sqlite3_rows_per_s": round(baseline[0]),
        "raw_sqlite3_rows_per_cpu_s": round(baseline[1]),
    }


def campaign(
    folder: Path, name: str, commands: list[dict[str, Any]], repeat: int
) -> dict[str, Any]:
    """Record the campaign into a fresh store, rebuild its read model, verify it."""
    path = str(folder / f"{name}.db")
    app = LandLedger(path)
    seconds = cpu = events = 0.0
    for i in range(0, len(commands), BATCH):
        batch = [parse_command(c) for c in commands[i : i + BATCH]]
        wall, used, recorded = clocked(lambda batch=batch: app.record(batch, "bench"))
        events += recorded.events
        seconds, cpu = seconds + wall, cpu + used
    model = ReadModel(app)
    # On SQLite in two processes: wall time only. Medians of `repeat`.
    rebuild_s = statistics.median(clocked(model.rebuild)[0] for _ in range(repeat))
    model.close()
    app.close()
    session = Session(path, "bench")
    runs = [clocked(session.verify) for _ in range(repeat)]
    assert all(run[2].ok for run in runs)
    verify_s = statistics.median(run[0] for run in runs)
    verify_cpu = statistics.median(run[1] for run in runs)
    session.close()
    size = sum(os.path.getsize(f) for f in folder.glob(f"{name}.db*"))
    return {
        "events": int(events),
        "append_events_per_s": round(events / seconds),
        "append_events_per_cpu_s": round(events / cpu),
        "rebuild_s": round(rebuild_s, 2),
        "verify_s": round(verify_s, 2),
        "verify_cpu_s": round(verify_cpu, 2),
        "store_mb": round(size / 2**20),
    }


def cipher_figures(scale: str, folder: Path, repeat: int) -> dict[str, Any]:
    """The campaign in clear and encrypted, alternately `repeat` times each (the machine's
    speed drifts: alternating keeps the comparison fair); medians."""
    os.environ.pop("LANDLEDGER_CIPHER_KEY", None)
    config = LandLedger(str(folder / "config.db")).campaign().config
    commands = demo_commands(config, SCALES[scale])
    runs: dict[str, list[dict[str, Any]]] = {"clear": [], "encrypted": []}
    for k in range(repeat):
        for name in runs:
            if name == "encrypted":
                os.environ["LANDLEDGER_CIPHER_KEY"] = new_cipher_key()
            try:
                runs[name].append(campaign(folder, f"{name}{k}", commands, 1))
            finally:
                os.environ.pop("LANDLEDGER_CIPHER_KEY", None)
            for leftover in folder.glob(f"{name}{k}.db*"):
                leftover.unlink()
    figures: dict[str, Any] = {"scale": scale, "runs": repeat}
    for name, found in runs.items():
        figures[name] = {key: statistics.median(run[key] for run in found) for key in found[0]}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="an existing SQLite store: verify's figures")
    parser.add_argument("--scale", choices=list(SCALES), help="the cipher's costs at this scale")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with without_cycle_collector():
        if args.store:
            figures["verify"] = verify_figures(args.store, args.repeat)
            folder = Path(tempfile.mkdtemp(prefix="landledger-bench-"))
            try:
                figures["links"] = link_figures(args.store, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        if args.scale:
            folder = Path(tempfile.mkdtemp(prefix="landledger-bench-"))
            try:
                figures["cipher"] = cipher_figures(args.scale, folder, args.repeat)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
