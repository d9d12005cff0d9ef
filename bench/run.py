"""LandLedger at district, city and province scale, against the raw client on the same rows.

    python bench/run.py --scale district|city|province [--json OUT] [--dir DIR] [--db SERVER]

With `--db postgresql://user@host:port` the stores are on that PostgreSQL server, in a database
the run creates (landledger_pgbench_<random>) and drops after, and the raw client is psycopg.

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
- command_raw_*: on PostgreSQL, a case's events read and one event inserted and committed;
- as_of_stats_raw_s: the same SELECT … GROUP BY the as-of statistics run, on the plain client;
- page_*: the dashboard's 台账 queries (bench/dashboard.py: count, first page, last page, every
  filter and sort) and the same statements on the plain client (`raw`): the worst of each.
On PostgreSQL the insert has two baselines, psycopg's executemany and binary COPY
(append_raw_rows_per_s is the faster of them), into a table of the event store's shape (its
primary key, bigserial position and unique index), one transaction a batch; the rebuild's reads
the rows with plain psycopg in pages of 5000 by position.
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
from typing import Any, cast
from urllib.parse import urlparse

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dashboard import Raw, measure_query, queries
from domain.commands import parse_command
from projections.facts import KIND_OF_TOPIC
from projections.ledger import Fact
from projections.readmodel import ReadModel
from projections.versions import NEVER, day_number
from service.demo import demo_commands
from service.ledger import LandLedger
from service.session import Session, without_cycle_collector

SCALES = {"district": 5_000, "city": 50_000, "province": 200_000}
BATCH = 20000  # commands a `record` batch (one transaction); the stored rows likewise
AS_OF = date(2022, 2, 28)

LogPage = list[tuple[int, str, int, str, bytes]]  # position, case id (hex), version, topic, state


class SqliteStores:
    """A run's stores as SQLite files in the work folder; the raw client is sqlite3."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def url(self, name: str) -> str:
        return str(self.folder / f"{name}.db")

    def raw_append(self, rows: list[Any]) -> dict[str, float]:
        conn = sqlite3.connect(self.folder / "raw.db", isolation_level=None)
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
        return {"executemany": elapsed}

    def raw_commands(self, table: str, rows: list[Any], n: int) -> list[float]:
        return []  # SQLite's command figures are measured alone

    def raw_log(self, table: str) -> Iterator[LogPage]:
        """The log (the events table of the store "ledger") in pages of 5000, in log order."""
        conn = sqlite3.connect(self.url("ledger"))
        position = 0
        while page := conn.execute(
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
            "WHERE rowid > ? ORDER BY rowid LIMIT 5000",
            (position,),
        ).fetchall():
            yield page
            position = page[-1][0]
        conn.close()

    def close(self) -> None:
        pass


class PostgresStores:
    """A run's stores as schemas of a database made for the run on a PostgreSQL server (dropped
    by `close`); the raw client is psycopg."""

    def __init__(self, server: str) -> None:
        self.server = urlparse(server)
        self.dbname = f"landledger_pgbench_{random.randrange(16**8):08x}"
        with self._connect("postgres") as admin:
            admin.execute(f"CREATE DATABASE {self.dbname}")
        self.conn = self._connect(self.dbname)
        for schema in ("persist", "raw"):
            self.conn.execute(f"CREATE SCHEMA {schema}")

    def _connect(self, dbname: str) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.server.hostname or "127.0.0.1",
            port=self.server.port or 5432,
            user=self.server.username or "postgres",
            password=self.server.password or None,
            dbname=dbname,
            autocommit=True,
        )

    def url(self, name: str) -> str:
        schema = "public" if name == "ledger" else name
        return self.server._replace(path=f"/{self.dbname}", query=f"schema={schema}").geturl()

    def raw_append(self, rows: list[Any]) -> dict[str, float]:
        params = [(r.originator_id, r.originator_version, r.topic, r.state) for r in rows]
        elapsed = {}
        for how in ("executemany", "copy"):
            table = f"raw.{how}"
            self.conn.execute(
                f"CREATE TABLE {table} (originator_id uuid NOT NULL, "
                "originator_version bigint NOT NULL, topic text, state bytea, "
                "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
            )
            self.conn.execute(f"CREATE UNIQUE INDEX ON {table} (notification_id)")
            columns = "(originator_id, originator_version, topic, state)"
            started = time.perf_counter()
            for i in range(0, len(params), BATCH):
                with self.conn.transaction(), self.conn.cursor() as curs:
                    if how == "copy":
                        binary = f"COPY {table} {columns} FROM STDIN (FORMAT BINARY)"
                        with curs.copy(binary) as copy:
                            copy.set_types(["uuid", "int8", "text", "bytea"])
                            for row in params[i : i + BATCH]:
                                copy.write_row(row)
                    else:
                        curs.executemany(
                            f"INSERT INTO {table} {columns} VALUES (%s, %s, %s, %s)",
                            params[i : i + BATCH],
                        )
            elapsed[how] = time.perf_counter() - started
        return elapsed

    def raw_commands(self, table: str, rows: list[Any], n: int) -> list[float]:
        """A command's floor on the plain client: a case's events read, one event inserted
        and committed (waiting for the disk, as the event store's commit does), in ms."""
        rng = random.Random(5)
        latencies: list[float] = []
        for row in rng.sample(rows, n):
            started = time.perf_counter()
            with self.conn.transaction():
                self.conn.execute(
                    f"SELECT * FROM {table} WHERE originator_id = %s", (row.originator_id,)
                ).fetchall()
                self.conn.execute(
                    "INSERT INTO raw.copy (originator_id, originator_version, topic, state) "
                    "VALUES (%s, %s, %s, %s)",
                    (row.originator_id, 10**6 + len(latencies), row.topic, row.state),
                )
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    def raw_log(self, table: str) -> Iterator[LogPage]:
        """The log (the events table of the store "ledger") in pages of 5000, in log order."""
        position = 0
        with self._connect(self.dbname) as conn:
            while page := conn.execute(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {table} WHERE notification_id > %s "
                "ORDER BY notification_id LIMIT 5000",
                (position,),
            ).fetchall():
                yield [(i, o.hex, v, t, s) for i, o, v, t, s in page]
                position = page[-1][0]

    def close(self) -> None:
        self.conn.close()
        with self._connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")


Stores = SqliteStores | PostgresStores


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


def persist(rows: list[Any], store: str) -> float:
    """The persistence step alone: already-encoded events into a fresh store."""
    fresh = LandLedger(store)
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        fresh.recorder.insert_events(rows[i : i + BATCH])
    elapsed = time.perf_counter() - started
    fresh.close()
    return elapsed


def raw_facts(stores: Stores, table: str) -> Iterator[Fact]:
    for page in stores.raw_log(table):
        for position, originator, version, topic, state in page:
            kind = KIND_OF_TOPIC.get(topic)
            if kind is not None:
                yield Fact.of(position, originator, version, kind, orjson.loads(state))


def raw_rebuild(model: ReadModel, stores: Stores, table: str, total: int) -> float:
    started = time.perf_counter()
    model.refill(raw_facts(stores, table), total)
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


def raw_verify(stores: Stores, table: str) -> str:
    """The plain client and hashlib: the hash chain (storage/chain.py) over the same rows."""
    prev, n, sha = bytes(32), 0, hashlib.sha256
    for page in stores.raw_log(table):
        for position, originator, version, topic, state in page:
            entry = f"{position}|{originator}|{version}|{topic}|{sha(state).hexdigest()}"
            prev = sha(prev + entry.encode()).digest()
        n += len(page)
    return f"{n}:{prev.hex()}"


def median_time(action: Any, repeat: int) -> float:
    return statistics.median(timed(action)[0] for _ in range(repeat))


def as_of_raw(raw: Raw) -> list[Any]:
    """The as-of statistics' scan (ReadModel._at, by township) on the plain client."""
    on = day_number(AS_OF.isoformat())
    return raw.rows(
        ReadModel._at_sql("township", False), [on, on, NEVER - 1, NEVER - 1, on, NEVER - 1]
    )


def page_queries(model: ReadModel, raw: Raw) -> dict[str, float]:
    """The dashboard's 台账 queries, the worst of each kind, beside the plain client's worst."""
    measured = [measure_query(model, raw, query, 3) for query in queries().values()]
    worst = {}
    for kind in ("count", "first", "end"):
        worst[f"page_{kind}_worst_ms"] = max(m[f"{kind}_ms"] for m in measured)
        worst[f"page_{kind}_worst_raw_ms"] = max(m[f"raw_{kind}_ms"] for m in measured)
    all_cases = measured[0]  # no filter: what the 台账 screen opens on
    worst["page_all_first_ms"] = all_cases["first_ms"]
    worst["page_all_first_raw_ms"] = all_cases["raw_first_ms"]
    return worst


def run(scale: str, folder: Path, stores: Stores) -> dict[str, Any]:
    cases = SCALES[scale]
    db = stores.url("ledger")
    app = LandLedger(db)
    commands = demo_commands(app.campaign().config, cases)
    batches = append(app, commands)
    events = sum(n for _, n in batches)
    rows = stored_rows(app)
    persist_s = persist(rows, stores.url("persist"))
    raw_append_s = stores.raw_append(rows)

    model = ReadModel(app)
    total = app.recorder.max_notification_id() or 0
    table: str = cast(Any, app.recorder).events_table_name  # both recorders have one
    raw_rebuild_s = raw_rebuild(model, stores, table, total)
    rebuild_s, _ = timed(model.rebuild)
    model.catch_up()

    refs = sorted({c["ref"] for c in commands})
    latencies = command_latencies(app, model, refs, 300)
    stats_s = median_time(model.stats, 5)
    as_of_s = median_time(lambda: model.stats(as_of=AS_OF), 3)
    raw = Raw(model, db)
    as_of_raw_s = median_time(lambda: as_of_raw(raw), 3)
    pages = page_queries(model, raw)
    env = {**os.environ, "LANDLEDGER_DB": db}
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
    session = Session(db, "bench")
    verify_s, checked = timed(session.verify)
    session.close()
    raw_verify_s, raw_fingerprint = timed(lambda: raw_verify(stores, table))
    assert checked.ok and checked.fingerprint == raw_fingerprint
    quantiles = statistics.quantiles(latencies, n=20)
    raw_latencies = stores.raw_commands(table, rows, 300)
    raw_command = (
        {
            "command_raw_p50_ms": round(statistics.median(raw_latencies), 2),
            "command_raw_p95_ms": round(statistics.quantiles(raw_latencies, n=20)[18], 2),
        }
        if raw_latencies
        else {}
    )
    versions = model.db.rows("SELECT count(*) FROM rm_versions")[0][0]
    raw.conn.close()
    model.close()
    app.close()
    return {
        "scale": scale,
        "backend": "postgres" if isinstance(stores, PostgresStores) else "sqlite",
        "load_average_at_start": LOAD_AT_START,
        "cases": cases,
        "events": events,
        "append_events_per_s": rate(batches),
        # The last quarter of the batches, recorded onto a store that holds three quarters of
        # the events already: whether the rate holds as the store grows.
        "append_last_quarter_events_per_s": rate(batches[len(batches) * 3 // 4 :]),
        "persist_events_per_s": round(len(rows) / persist_s),
        "append_raw_rows_per_s": round(len(rows) / min(raw_append_s.values())),
        **{
            f"append_raw_{how}_rows_per_s": round(len(rows) / seconds)
            for how, seconds in raw_append_s.items()
            if len(raw_append_s) > 1
        },
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_events_per_s": round(total / rebuild_s),
        "rebuild_raw_rows_per_s": round(total / raw_rebuild_s),
        "command_p50_ms": round(statistics.median(latencies), 2),
        "command_p95_ms": round(quantiles[18], 2),
        **raw_command,
        "stats_s": round(stats_s, 4),
        "as_of_stats_s": round(as_of_s, 3),
        "as_of_stats_raw_s": round(as_of_raw_s, 3),
        **pages,
        "startup_stats_s": round(startup_s, 3),
        "export_ledger_s": round(export_s, 2),
        "export_ledger_peak_mb": export_mb,
        "versions": versions,
        "verify_s": round(verify_s, 2),
        "verify_raw_s": round(raw_verify_s, 2),
        "load_average_at_end": round(os.getloadavg()[0], 2),
    }


LOAD_AT_START = round(os.getloadavg()[0], 2)  # other work on the machine slows every figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="district")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--dir", help="work folder (default: a temporary one, removed after)")
    parser.add_argument(
        "--db",
        help="a PostgreSQL server, postgresql://user@host:port: the stores go in a database "
        "made for the run there, dropped after (default: SQLite files in the work folder)",
    )
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="landledger-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    stores: Stores = PostgresStores(args.db) if args.db else SqliteStores(folder)
    try:
        with without_cycle_collector():  # as the landledger command runs
            figures = run(args.scale, folder, stores)
    finally:
        stores.close()
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
