"""The read model's tables and the little SQL it needs, the same on SQLite and PostgreSQL."""

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from projections import stats
from storage.store import EventStore

SCHEMA = 10  # the read model's layout: a store with another is rebuilt from the log
# Rows from which an INSERT on PostgreSQL goes through COPY (Database._copy); fewer, as one
# command's catch-up writes, go through executemany: COPY's savepoint, temporary table and
# extra statements cost a dozen round trips, more than these rows cost sent one by one.
FEW = 50

# The dashboard's ledger (projections.ledger_query): what it filters and sorts rm_ledger by.
# Every filter of the ledger reads only these columns; each sort index carries them all after
# its key and the ref (the tiebreaker), so a filtered, sorted page walks one index in order and
# reads the table only for the rows it returns, and a count reads one index, not the table.
LEDGER_FILTERS = (
    "place",
    "unit",
    "stage",
    "state",
    "vtypes",
    "crime",
    "supervised",
    "pending_due",
    "filed_on",
    "decided",
    "search",
)
# Sort name → (column, the index that serves ORDER BY column, ref in either direction).
SORT_KEYS = {
    "township": ("place", "rm_ledger_by_place"),
    "ref": ("ref", "rm_ledger_by_ref"),
    "state": ("stage", "rm_ledger_by_stage"),
    "found_on": ("found_on", "rm_ledger_by_found"),
    "due_on": ("due_key", "rm_ledger_by_due"),
    "area": ("area", "rm_ledger_by_area"),
}


class Database:
    """The little SQL the read model needs, the same on SQLite and PostgreSQL."""

    def __init__(self, app: EventStore, staging: str | None = None) -> None:
        env = app.env
        self.cipher = app.mapper.cipher  # personal data in rm_ledger bodies is sealed with it
        self.postgres = env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"
        self.pipeline: Any = None  # PostgreSQL's, inside `pipelined`
        if staging:  # a rebuild's scratch file: thrown away if anything fails, so no journal
            self.conn: Any = sqlite3.connect(staging, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=OFF")
            self.conn.execute("PRAGMA synchronous=OFF")
        elif self.postgres:
            import psycopg

            self.conn = psycopg.connect(
                host=env.get("POSTGRES_HOST"),
                port=env.get("POSTGRES_PORT"),
                dbname=env.get("POSTGRES_DBNAME"),
                user=env.get("POSTGRES_USER"),
                password=env.get("POSTGRES_PASSWORD") or None,
                autocommit=True,
            )
            self.conn.execute(f'SET search_path TO "{env.get("POSTGRES_SCHEMA") or "public"}"')
        else:
            self.conn = sqlite3.connect(
                env.get("SQLITE_DBNAME") or "",
                isolation_level=None,
                timeout=30,
                check_same_thread=False,
            )
            # The read model can always be rebuilt from the log: no fsync per transaction.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # Nor does it hold anything the log doesn't: freed pages need not be zeroed (some
            # SQLite builds do it by default), which made dropping it write every page again.
            self.conn.execute("PRAGMA secure_delete=FAST")

    def sql(self, text: str) -> str:
        return text.replace("?", "%s") if self.postgres else text

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self.sql(text), params)
        if self.pipeline is not None:  # its result, and whether it has rows, once synced
            self.pipeline.sync()
        return list(cursor.fetchall()) if cursor.description else []

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        few = len(rows) <= FEW or self.pipeline is not None
        if self.postgres and text.startswith("INSERT INTO ") and not few:
            self._copy(text, rows)
            return
        if len(rows) == 1:  # on PostgreSQL one round trip; executemany's pipeline takes three
            self.conn.execute(self.sql(text), rows[0])
            return
        self.conn.cursor().executemany(self.sql(text), rows)

    def _copy(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """An INSERT of many rows on PostgreSQL, through COPY: psycopg's executemany sends and
        flushes each row by itself, most of a catch-up's time (100,000 events: ~50 s; COPY is
        about four times faster). An upsert is copied into a temporary table first."""
        head, _, _ = text.partition(" VALUES ")
        target = head.removeprefix("INSERT INTO ")
        table, _, columns = target.partition(" ")
        conflict = text.partition(") ON CONFLICT")[2]
        into = f"stage_{table}" if conflict else table
        with self.conn.transaction():  # a savepoint inside the caller's transaction
            if conflict:
                self.conn.execute(f"CREATE TEMPORARY TABLE {into} (LIKE {table}) ON COMMIT DROP")
            with self.conn.cursor().copy(f"COPY {into} {columns} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if conflict:
                select = columns.strip("()") or "*"
                self.conn.execute(
                    f"INSERT INTO {target} SELECT {select} FROM {into} ON CONFLICT{conflict}"
                )
                self.conn.execute(f"DROP TABLE {into}")

    def stream(self, text: str, params: Sequence[Any] = (), size: int = 2000) -> Iterator[Any]:
        """Rows of one query, fetched a page at a time from one consistent snapshot."""
        if self.postgres:
            with self.conn.transaction(), self.conn.cursor(name="stream") as cursor:
                cursor.execute(self.sql(text), params)
                while page := cursor.fetchmany(size):
                    yield from page
            return
        cursor = self.conn.execute(text, params)
        while page := cursor.fetchmany(size):
            yield from page

    @contextmanager
    def writing(
        self, *, immediate: bool = True, first: str | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """One writer at a time: every catch-up runs inside this exclusive transaction (a
        deferred one takes SQLite's write lock at its first write). Yields the rows of the
        query `first`, read inside it (on PostgreSQL in the same round trip as BEGIN and the
        lock: a command's path)."""
        try:
            if self.postgres:
                # As on SQLite (synchronous=NORMAL): the read model can always be refilled from
                # the log, so its commits do not wait for the disk. A server crash loses the
                # last of them whole, tracking position included: they are folded again.
                with self.conn.pipeline():
                    self.conn.execute("BEGIN")
                    self.conn.execute("LOCK TABLE rm_tracking IN EXCLUSIVE MODE")
                    self.conn.execute("SET LOCAL synchronous_commit TO OFF")
                    cursor = self.conn.execute(first) if first else None
                rows = cursor.fetchall() if cursor else []
            else:
                self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                rows = self.rows(first) if first else []
            yield rows
        except BaseException:
            if self._in_transaction():
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _in_transaction(self) -> bool:
        if self.postgres:  # not when the connection is gone (UNKNOWN)
            return self.conn.info.transaction_status.name in ("INTRANS", "INERROR")
        return bool(self.conn.in_transaction)

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """On PostgreSQL, the block's statements sent without waiting for each one's result
        (a read waits for those before it): a catch-up of a few events writes a handful of
        statements of a row or two, each a round trip otherwise. No COPY can be sent in a
        pipeline: `many` sends the rows with executemany there."""
        if not self.postgres:
            yield
            return
        with self.conn.pipeline() as pipeline:
            self.pipeline = pipeline
            try:
                yield
            finally:
                self.pipeline = None

    def index(self) -> None:
        """The ledger's secondary indexes."""
        for statement in (
            "CREATE INDEX IF NOT EXISTS rm_ledger_place ON rm_ledger (place, ref)",
            "CREATE UNIQUE INDEX IF NOT EXISTS rm_ledger_ref ON rm_ledger (ref)",
            # The alerts read these few cases without touching the rows' bodies.
            "CREATE INDEX IF NOT EXISTS rm_ledger_state ON rm_ledger (state, place, ref)",
            "CREATE INDEX IF NOT EXISTS rm_ledger_due ON rm_ledger (pending_due, place, ref) "
            "WHERE pending_due IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS rm_ledger_crime ON rm_ledger (place, ref) WHERE crime = 1",
            "CREATE INDEX IF NOT EXISTS rm_ledger_undecided "
            "ON rm_ledger (filed_on, state, place, ref) WHERE decided = 0",
            *(
                f"CREATE INDEX IF NOT EXISTS {name} ON rm_ledger ({column}, ref, "
                + ", ".join(c for c in LEDGER_FILTERS if c != column)
                + ")"
                for column, name in SORT_KEYS.values()
            ),
        ):
            self.conn.execute(statement)

    def create(self) -> None:
        """Create what is missing; a read model of another layout is dropped: it refills from
        the log. One opener at a time, in one transaction: several commands starting at once on
        a new store (or after an upgrade) would otherwise create the same tables together, which
        PostgreSQL refuses ("duplicate key", "tuple concurrently updated"), or one would drop
        what another had just made."""
        with self._creating():
            if self._layout() != SCHEMA:
                self.drop()
            self.tables()
            self.index()
            self.seed()

    @contextmanager
    def _creating(self) -> Iterator[None]:
        if not self.postgres:
            with self.writing():  # SQLite's write lock, taken at BEGIN IMMEDIATE
                yield
            return
        with self.conn.transaction():  # PostgreSQL's DDL is transactional too
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('landledger read model'))")
            yield

    def _layout(self) -> Any:
        """The recorded layout; None without a read model, or one from before it was recorded."""
        try:  # a failed query ends a PostgreSQL transaction: this one only to its savepoint
            with self.conn.transaction() if self.postgres else nullcontext():
                rows = self.rows("SELECT schema FROM rm_tracking")
        except Exception:
            return None
        return rows[0][0] if rows else None

    def tables(self) -> None:
        key = "BIGINT PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY"
        json = "BYTEA" if self.postgres else "BLOB"  # orjson's bytes, stored as they are
        sums = ", ".join(f"{m} BIGINT NOT NULL" for m in stats.SUMMED)
        # The store-wide running sums are added in Python's integers (see ReadModel._add_stats)
        # and kept exactly: NUMERIC on PostgreSQL; on SQLite a column without affinity, which
        # holds a sum past 2^63 as its decimal text rather than turning it into a REAL.
        totals = ", ".join(
            f"{m} {'NUMERIC' if self.postgres else 'BLOB'} NOT NULL" for m in stats.SUMMED
        )
        for statement in (
            "CREATE TABLE IF NOT EXISTS rm_tracking (name TEXT PRIMARY KEY, "
            "position BIGINT NOT NULL, next_version BIGINT NOT NULL, schema INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS rm_ledger (case_id TEXT PRIMARY KEY, ref TEXT NOT NULL, "
            "place INTEGER NOT NULL, township TEXT NOT NULL, unit TEXT NOT NULL, "
            "state TEXT NOT NULL, found_on TEXT NOT NULL, pending_due TEXT, filed_on TEXT, "
            "decided INTEGER NOT NULL, crime INTEGER NOT NULL, "
            # What the dashboard filters and sorts by (see LEDGER_FILTERS and SORT_KEYS).
            "search TEXT NOT NULL, vtypes INTEGER NOT NULL, supervised INTEGER NOT NULL, "
            "stage INTEGER NOT NULL, area BIGINT NOT NULL, due_key TEXT NOT NULL, "
            f"body {json} NOT NULL, "
            f"live {json} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS rm_versions (id {key}, on_from BIGINT NOT NULL, "
            "known_from BIGINT NOT NULL, next_on BIGINT NOT NULL, next_known BIGINT NOT NULL, "
            "closed_at BIGINT NOT NULL, township INTEGER NOT NULL, unit INTEGER NOT NULL, "
            f"month INTEGER NOT NULL, vtypes INTEGER NOT NULL, due_on INTEGER, {sums})",
            f"CREATE TABLE IF NOT EXISTS rm_stats (grouping TEXT NOT NULL, key TEXT NOT NULL, "
            f"{totals}, PRIMARY KEY (grouping, key))",
            "CREATE TABLE IF NOT EXISTS rm_due (grouping TEXT NOT NULL, key TEXT NOT NULL, "
            "due_on TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (grouping, key, due_on))",
        ):
            self.conn.execute(statement)

    def seed(self) -> None:
        if not self.rows("SELECT 1 FROM rm_tracking"):
            self.many("INSERT INTO rm_tracking VALUES (?, ?, ?, ?)", [("ledger", 0, 1, SCHEMA)])

    def close(self) -> None:
        self.conn.close()

    def interrupt(self) -> None:
        """Stop the statement another thread is running on this connection (it raises there);
        a no-op when none runs. SQLite only: PostgreSQL's cancel request arrives when it
        arrives, and could stop the statement that follows instead."""
        if not self.postgres:
            self.conn.interrupt()

    def drop(self) -> None:
        # rm_vtypes: a table of an earlier layout, dropped with the rest.
        # main.: while a rebuild has scratch files attached, a name missing from the store
        # would otherwise be looked up in them.
        schema = "" if self.postgres else "main."
        for table in ("rm_tracking", "rm_ledger", "rm_versions", "rm_stats", "rm_due", "rm_vtypes"):
            self.conn.execute(f"DROP TABLE IF EXISTS {schema}{table}")
