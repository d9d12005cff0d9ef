"""The persisted read model, in the event store's own database (a SQLite file or a PostgreSQL
schema), following the log exactly once through a tracking position.

Tables:
- rm_ledger: one row per case (its ledger row's values as JSON, plus the columns screens sort by);
- rm_stats / rm_due: the running statistics by every grouping (rm_due holds unrectified
  violations by due date, because `overdue` depends on the day it is asked);
- rm_versions: the case's statistics vector for every stretch of business dates and recorded
  times it held, so a statistics cutoff is one filtered scan, not a replay (see `_advance`).
"""

import gc
import multiprocessing
import sqlite3
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from operator import add, sub
from pathlib import Path
from typing import Any, cast

import orjson

from domain import events as e
from domain.campaign import Campaign
from domain.case import CLOSED_OUT, DISMISSED, FOUND, RECTIFIED, STATES
from domain.errors import DomainError
from domain.events import CampaignConfig
from domain.values import VIOLATION_TYPES, china_today
from projections import stats
from projections.ledger import Fact, Row, fold, included, packed, unpacked, us_of
from projections.personal import seal, unseal
from storage.mapper import PydanticMapper
from storage.sqlite import LedgerRecorder, LogRow
from storage.store import EventStore

PAGE = 5000
PARTS = 2  # processes folding a rebuild on SQLite (the machines we run on have two cores)
ID_RANGE = 2**40  # version ids of one part of a rebuild
SCHEMA = 9  # the read model's layout: a store with another is rebuilt from the log
NEVER = 2**62  # "not yet": an open end of business dates or recorded times
KIND_OF_TOPIC = {cls.TOPIC: cls.__name__ for cls in e.EVENT_CLASSES if issubclass(cls, e.CaseEvent)}
M = ", ".join(stats.SUMMED)
M_PLACES = ", ".join("?" * len(stats.SUMMED))


@lru_cache(maxsize=8192)
def day_number(iso: str) -> int:
    """'2022-02-28' → 20220228: comparable as an integer."""
    return int(iso[:4]) * 10000 + int(iso[5:7]) * 100 + int(iso[8:10])


def facts_of(app: EventStore, rows: Iterable[LogRow]) -> Iterator[Fact]:
    """Log rows → the read side's facts (case events only), decoded but not validated."""
    decode = cast(PydanticMapper, app.mapper).decode_state
    kinds = KIND_OF_TOPIC
    for position, case_id, version, topic, state in rows:
        kind = kinds.get(topic)
        if kind is not None:
            try:
                data = decode(topic, state)
            except Exception as error:
                raise _unreadable(position, case_id, version, topic, error) from None
            yield Fact.of(position, case_id, version, kind, data)


def _unreadable(
    position: int, case_id: str, version: int, kind: str, error: Exception
) -> DomainError:
    return DomainError(
        f"存储已损坏：第 {position} 个事件（案件对象 {case_id} 第 {version} 个事件，{kind}）"
        f"无法读取：{error!r}。请用备份恢复，或交管理员核查"
    )


def log(app: EventStore, after: int = 0, page: int = PAGE) -> Iterator[list[LogRow]]:
    """The log from a position on, in pages."""
    while rows := cast(LedgerRecorder, app.recorder).log_page(after, page):
        yield rows
        after = rows[-1][0]


def all_facts(app: EventStore) -> Iterator[Fact]:
    for rows in log(app):
        yield from facts_of(app, rows)


def case_chunks(app: EventStore, total: int, part: int, parts: int) -> Iterator[list[Fact]]:
    """The facts of one part of the cases (by the last hex digit of their random id) up to the
    position `total`, in case order, a page or so at a time and never a case split between two.

    A rebuild folds in this order rather than the log's: each case's row is then worked on
    while it is in the processor's cache, and dropped when done. In log order every event
    touches a row last seen thousands of events before: a province's fold took a third longer,
    and held every row in memory to the end."""
    recorder = cast(LedgerRecorder, app.recorder)
    digits = None if parts == 1 else "".join(f"{d:x}" for d in range(16) if d % parts == part)
    after = ("0" * 32, 0)  # no case has the all-zero id
    carried: list[LogRow] = []
    while rows := recorder.case_page(after, PAGE, upto=total, digits=digits):
        after = (rows[-1][1], rows[-1][2])
        rows = carried + rows
        cut = len(rows)
        while cut and rows[cut - 1][1] == after[0]:  # the last case may go on in the next page
            cut -= 1
        carried = rows[cut:]
        if cut:
            yield list(facts_of(app, rows[:cut]))
    if carried:
        yield list(facts_of(app, carried))


def _finished(part: Future[None]) -> None:
    """Wait for another process's part; a damaged event found there is raised here."""
    try:
        part.result()
    except BrokenProcessPool:  # killed (out of memory, by hand): say so, keep the read model
        raise DomainError("重建未完成：辅助进程意外退出，读模型保持原样，请重试") from None


_folded: Any = None  # in a rebuild's helper process: the events each part has folded, shared


def _share_counts(folded: Any) -> None:
    global _folded
    _folded = folded


def fold_part(store: str, part: int, total: int, into: str) -> None:
    """In a process of its own: fold one part of the cases into a scratch file, as a read model
    of its own. Its version ids start at part × ID_RANGE, so the parts' ids never meet."""
    gc.disable()  # it makes no reference cycles: see tui.cli
    app = EventStore(store)
    model = ReadModel(app, staging=into)

    def progress(events: int) -> None:
        _folded[part] += events

    try:
        with model.db.writing():
            model._fold(total, part, PARTS, part * ID_RANGE + 1, progress)
    finally:
        model.close()
        app.close()


# The dashboard's ledger (projections.ledger_query): what it filters and sorts rm_ledger by.
SUPERVISED_FLAG = "挂牌督办"
SEARCHED = 120  # characters of each searched field (see search_text)
NO_DUE = "9999-12-31"  # due_key of a case never ordered to rectify: last when sorted by due date
STAGE = {state: i for i, state in enumerate(STATES)}  # a state's place in DESIGN's order
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
# The case alerts as conditions over rm_ledger: the one definition ReadModel.alerts and the
# dashboard's alert filter share. "supervised" (挂牌督办) is a flag, not among alerts() yet.
CASE_ALERTS = ("overdue", "crime", "decision", "supervised", "phase:survey", "phase:rectify")
OPEN_STATES = f"state NOT IN ('{CLOSED_OUT}', '{DISMISSED}')"
NOT_RECTIFIED = f"state NOT IN ('{RECTIFIED}', '{CLOSED_OUT}', '{DISMISSED}')"


def alert_where(kind: str, today: date, decision_days: int) -> tuple[str, list[Any]]:
    """The WHERE condition (and its parameters) of a case alert on `today`."""
    if kind == "overdue":
        return "pending_due < ?", [today.isoformat()]
    if kind == "crime":
        return "crime = 1", []
    if kind == "decision":
        late_filing = (today - timedelta(days=decision_days)).isoformat()
        return f"filed_on < ? AND decided = 0 AND {OPEN_STATES}", [late_filing]
    if kind == "supervised":
        return "supervised = 1", []
    if kind == "phase:survey":
        return f"state = '{FOUND}'", []
    if kind == "phase:rectify":
        return NOT_RECTIFIED, []
    raise ValueError(f"unknown alert {kind!r}")


def searchable(text: str) -> str:
    """Text as the ledger's search compares it: full-width letters, digits and punctuation as
    their ASCII forms (an IME in full-width mode types ＳＤ－２０２２), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def search_text(row: Row, *, sealed: bool = False) -> str:
    """What the ledger's search box matches (`LIKE '%term%'` on `searchable` text): the ref,
    project, party and village, one a line, so a term never matches across two of them. Each
    is cut at SEARCHED characters: the sort indexes carry this text, and a PostgreSQL index
    entry must stay under 2704 bytes. In an encrypted store (`sealed`) the party's name is
    personal data kept only encrypted (projections/personal.py): it is not searchable there."""
    party = "" if sealed else row["party_name"]
    texts = (row["ref"], row["project_name"], party, row["village"])
    return searchable("\n".join((t or "")[:SEARCHED] for t in texts))


@dataclass(frozen=True)
class Alert:
    kind: str  # overdue, crime, decision, phase:<key>
    title: str
    count: int
    first: list[str]  # the first refs (or units), in official order


class Database:
    """The little SQL the read model needs, the same on SQLite and PostgreSQL."""

    def __init__(self, app: EventStore, staging: str | None = None) -> None:
        env = app.env
        self.cipher = app.mapper.cipher  # personal data in rm_ledger bodies is sealed with it
        self.postgres = env.get("PERSISTENCE_MODULE") == "eventsourcing.postgres"
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
        return list(cursor.fetchall()) if cursor.description else []

    def many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.postgres and text.startswith("INSERT INTO "):
            self._copy(text, rows)
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
    def writing(self, *, immediate: bool = True) -> Iterator[None]:
        """One writer at a time: every catch-up runs inside this exclusive transaction (a
        deferred one takes SQLite's write lock at its first write)."""
        if self.postgres:
            with self.conn.transaction():
                self.conn.execute("LOCK TABLE rm_tracking IN EXCLUSIVE MODE")
                yield
            return
        self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

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
        the log."""
        try:
            layout = self.rows("SELECT schema FROM rm_tracking")
        except Exception:  # no read model yet, or one from before the layout was recorded
            layout = [(None,)]
        if layout and layout[0][0] != SCHEMA:
            self.drop()
        self.tables()
        self.index()
        with self.writing():
            self.seed()

    def tables(self) -> None:
        key = "BIGINT PRIMARY KEY" if self.postgres else "INTEGER PRIMARY KEY"
        json = "BYTEA" if self.postgres else "BLOB"  # orjson's bytes, stored as they are
        sums = ", ".join(f"{m} BIGINT NOT NULL" for m in stats.SUMMED)
        # The store-wide running sums are added in Python's integers (see `_add_stats`) and
        # kept exactly: NUMERIC on PostgreSQL; on SQLite a column without affinity, which
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

    def drop(self) -> None:
        # rm_vtypes: a table of an earlier layout, dropped with the rest.
        # main.: while a rebuild has scratch files attached, a name missing from the store
        # would otherwise be looked up in them.
        schema = "" if self.postgres else "main."
        for table in ("rm_tracking", "rm_ledger", "rm_versions", "rm_stats", "rm_due", "rm_vtypes"):
            self.conn.execute(f"DROP TABLE IF EXISTS {schema}{table}")


_SPLIT = [m in stats.AMOUNTS for m in stats.SUMMED]


def _joined(values: Sequence[Any]) -> list[int]:
    """A row of `_at`'s sums on SQLite (each amount as its high and low 32 bits) → the sums."""
    figures, position = [], 0
    for split in _SPLIT:
        if split:
            high, low = values[position : position + 2]
            figures.append(int(high or 0) * 2**32 + int(low or 0))
            position += 2
        else:
            figures.append(int(values[position] or 0))
            position += 1
    figures += [int(v or 0) for v in values[position:]]  # the overdue count
    return figures


@lru_cache(maxsize=256)
def _bits(violation_types: tuple[str, ...]) -> int:
    return sum(1 << VIOLATION_TYPES.index(v) for v in set(violation_types))


class _Entry:
    """A case while a transaction works on it: its row and vector before and now, its live
    version ids, and its newest version row while that may still change (so most version rows
    are written once, and the statistics change once per case per transaction)."""

    __slots__ = ("before", "live", "pending", "row", "vector")

    def __init__(self, row: Row | None, vector: tuple[int, ...], live: list[int]) -> None:
        self.before = (row, vector) if row is not None else None
        self.row: Row = row or {}
        self.vector, self.live = vector, live
        self.pending: list[Any] | None = None


LEDGER_COLUMNS = (
    "case_id, ref, place, township, unit, state, found_on, pending_due, filed_on, decided, "
    "crime, search, vtypes, supervised, stage, area, due_key, body, live"
)
CRIME = stats.SUMMED.index("over_crime_threshold_unreferred")

# Positions within a version row (see Database.create: rm_versions).
_ON_FROM, _KNOWN_FROM, _NEXT_ON, _NEXT_KNOWN, _CLOSED = 1, 2, 3, 4, 5


class ReadModel:
    def __init__(self, app: EventStore, staging: str | None = None) -> None:
        self.app = app
        self.cipher = app.mapper.cipher  # personal data in rm_ledger is sealed with it
        self.config: CampaignConfig = app.campaign().config
        self.db = Database(app, staging)
        if staging:
            self.db.tables()
            self.db.seed()
        else:
            self.db.create()
        self.place = {name: i for i, name in enumerate(self.config.townships)}
        self.unit_place = {name: i for i, name in enumerate(self.config.units)}
        self.skipped: list[Fact] = []  # events left out of the read side (see `fold`)

    def close(self) -> None:
        self.db.close()

    # Following the log ----------------------------------------------------------

    def position(self) -> int:
        """The position of the last event folded."""
        return int(self.db.rows("SELECT position FROM rm_tracking")[0][0])

    def catch_up(self, upto: int | None = None) -> int:
        """Apply every event recorded since the tracked position (up to `upto`); returns how
        many."""
        applied = 0
        while True:
            with self.db.writing():
                tracking = self.db.rows("SELECT position, next_version FROM rm_tracking")
                position, next_id = tracking[0]
                page = cast(LedgerRecorder, self.app.recorder).log_page(position, PAGE)
                if upto is not None:
                    page = [row for row in page if row[0] <= upto]
                if not page:
                    return applied
                facts = list(facts_of(self.app, page))
                cache = self._load(f.case_id for f in facts) if position else {}
                buckets: dict[tuple[Any, ...], list[int]] = {}
                self._apply(facts, next_id, page[-1][0], cache, buckets)
                self._write_stats(buckets)
            applied += len(page)

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop the read model and fold the whole log again, in one transaction: if anything
        fails (a damaged store), the read model is left as it was.

        On SQLite the cases are split by id: other processes fold their parts into scratch files
        while this one folds its part into the read model (the fold is most of a rebuild's time);
        the scratch files are then copied in, in the same transaction. PostgreSQL folds here."""
        total = self.app.recorder.max_notification_id() or 0
        spawn = multiprocessing.get_context("spawn")  # fresh processes: no shared handles
        # The events each part has folded: shared with the helper processes on SQLite.
        folded = [0] if self.db.postgres else spawn.Array("q", PARTS, lock=False)

        def count(events: int) -> None:
            folded[0] += events
            if progress:
                progress(min(sum(folded), total), total)

        if self.db.postgres:
            with self.db.writing():
                self._reset()
                self._fold(total, 0, 1, 1, count)
                count(total)  # the campaign's events are in no part
                self.db.index()  # after loading: faster than keeping indexes up to date
            # The dashboard's counts and pages read only the ledger's indexes: an index-only
            # scan needs the visibility map, and the planner the statistics, now rather than
            # when autovacuum comes by (2 s at 200,000 cases; outside the transaction).
            self.db.conn.execute("VACUUM ANALYZE rm_ledger")
            return total
        store = Path(self.app.env["SQLITE_DBNAME"])
        names = [f"part{k}" for k in range(1, PARTS)]
        with tempfile.TemporaryDirectory(prefix=".rebuild-", dir=store.parent) as folder:
            paths = [str(Path(folder) / f"{name}.db") for name in names]
            for name, path in zip(names, paths, strict=True):  # not allowed in a transaction
                self.db.conn.execute(f"ATTACH DATABASE ? AS {name}", (path,))
            try:
                with ProcessPoolExecutor(
                    PARTS - 1, mp_context=spawn, initializer=_share_counts, initargs=(folded,)
                ) as pool:
                    others = [
                        pool.submit(fold_part, str(store), k, total, path)
                        for k, path in enumerate(paths, start=1)
                    ]
                    # Deferred: an immediate transaction would lock the scratch files as well.
                    with self.db.writing(immediate=False):
                        self._reset()
                        self._fold(total, 0, PARTS, 1, count)
                        for other in others:
                            _finished(other)
                        count(total)  # the campaign's events are in no part
                        self._copy_in(names, total)
                        self.db.index()
            finally:
                for name in names:
                    self.db.conn.execute(f"DETACH DATABASE {name}")
        return total

    def _fold(
        self, total: int, part: int, parts: int, next_id: int, progress: Callable[[int], None]
    ) -> None:
        """Fold one part of the cases into this (empty) read model, a page of cases at a time;
        the statistics are written once, at the end."""
        buckets: dict[tuple[Any, ...], list[int]] = {}
        for facts in case_chunks(self.app, total, part, parts):
            next_id = self._apply(facts, next_id, total, {}, buckets)
            progress(len(facts))
        self._write_stats(buckets)

    def _reset(self) -> None:
        self.db.drop()
        self.db.tables()
        self.db.seed()

    def _copy_in(self, names: list[str], total: int) -> None:
        """Add the attached scratch files' rows to the read model being rebuilt."""
        next_ids = [self.db.rows("SELECT next_version FROM rm_tracking")[0][0]]
        for name in names:
            for table in ("rm_versions", "rm_ledger"):
                self.db.conn.execute(f"INSERT INTO {table} SELECT * FROM {name}.{table}")
            part = self.db.rows(f"SELECT grouping, key, {M} FROM {name}.rm_stats")
            self._add_stats({(g, k): [int(v) for v in values] for g, k, *values in part})
            # WHERE true: SQLite's grammar needs it before an upsert's ON CONFLICT.
            self.db.conn.execute(
                f"INSERT INTO rm_due SELECT * FROM {name}.rm_due WHERE true ON CONFLICT "
                "(grouping, key, due_on) DO UPDATE SET n = rm_due.n + excluded.n"
            )
            next_ids += self.db.rows(f"SELECT next_version FROM {name}.rm_tracking")[0]
        self.db.many(
            "UPDATE rm_tracking SET position = ?, next_version = ?", [(total, max(next_ids))]
        )

    def _apply(
        self,
        facts: Iterable[Fact],
        next_id: int,
        to: int,
        cache: dict[str, _Entry],
        buckets: dict[tuple[Any, ...], list[int]],
    ) -> int:
        """Fold facts into the read model inside the current transaction, then write it.
        `cache` holds the stored rows of the cases the facts touch (none in a rebuild). The
        statistics' changes are added to `buckets` (by group signature), for the caller to
        write once. Returns the next version id."""
        inserts: list[list[Any]] = []
        updates: list[tuple[str, int, int, int]] = []  # ("end", on, t, id) or ("close", t, 0, id)
        alerts = self.config.alerts
        for fact in facts:
            entry = cache.get(fact.case_id)
            if entry is None:
                entry = cache[fact.case_id] = _Entry(None, stats.ZEROS, [])
            old = entry.row or None
            new = fold(old, fact, self.skipped)
            if new is None or new is old:  # left out: see projections.ledger.fold
                continue
            entry.row = new
            entry.vector = stats.contribution(entry.row, alerts)
            next_id = self._advance(entry, fact, old, next_id, inserts, updates)
            if len(inserts) >= PAGE:
                self._write_versions(inserts, updates)
                inserts, updates = [], []
        for entry in cache.values():
            if entry.pending is not None:
                inserts.append(entry.pending)
        self._write_versions(inserts, updates)
        found = [entry for entry in cache.values() if entry.row]  # a case never found: no row
        self._write_ledger(found)
        for entry in found:
            if entry.before is not None:
                self._count(buckets, *entry.before, sub)
            self._count(buckets, entry.row, entry.vector, add)
        self.db.many("UPDATE rm_tracking SET position = ?, next_version = ?", [(to, next_id)])
        return next_id

    def _advance(
        self,
        entry: _Entry,
        fact: Fact,
        old: Row | None,
        next_id: int,
        inserts: list[list[Any]],
        updates: list[tuple[str, int, int, int]],
    ) -> int:
        """Record the case's new version for as-of and known-at queries.

        A version row holds from business date `on_from` and recorded time `known_from` on,
        except where both the next version's date and time are reached (`next_on`,
        `next_known`), and not from `closed_at` on. An event dated on or after every earlier one
        only ends the latest version from its date on. A correction, or an event dated before
        one already recorded (a stop entered late), changes earlier dates too: then every live
        version is closed and the case's versions are derived again from its events.
        """
        t = fact.recorded_us
        if fact.kind != "SiteCorrected" and (old is None or fact.on >= old["last_on"]):
            on = day_number(fact.on)
            self._end(entry, on, t, inserts, updates)
            if entry.pending is not None:
                inserts.append(entry.pending)
            entry.pending = [
                next_id,
                on,
                t,
                NEVER,
                NEVER,
                NEVER,
                *self._signature(entry.row),
                *entry.vector,
            ]
            entry.live.append(next_id)
            return next_id + 1
        for version_id in entry.live:
            self._close(entry, version_id, t, updates)
        versions = self._derive(fact)
        entry.live = []
        for i, (on_from, row, vector) in enumerate(versions):
            if entry.pending is not None:
                inserts.append(entry.pending)
            nxt = versions[i + 1][0] if i + 1 < len(versions) else NEVER
            entry.pending = [next_id, on_from, t, nxt, t if nxt != NEVER else NEVER, NEVER]
            entry.pending += self._signature(row) + list(vector)
            entry.live.append(next_id)
            next_id += 1
        return next_id

    def _end(self, entry: _Entry, on: int, t: int, inserts: list[Any], updates: list[Any]) -> None:
        if not entry.live:
            return
        pending = entry.pending
        if pending is not None and pending[0] == entry.live[-1]:
            if (pending[_ON_FROM], pending[_KNOWN_FROM]) == (on, t):
                # Ended at the very date and time it began (two steps of one case, same day,
                # same batch): no cutoff can ever see it, so it is not written at all.
                entry.live.pop()
            else:
                pending[_NEXT_ON], pending[_NEXT_KNOWN] = on, t
                inserts.append(pending)
            entry.pending = None
        else:
            updates.append(("end", on, t, entry.live[-1]))

    def _close(self, entry: _Entry, version_id: int, t: int, updates: list[Any]) -> None:
        if entry.pending is not None and entry.pending[0] == version_id:
            entry.pending[_CLOSED] = t
        else:
            updates.append(("close", t, 0, version_id))

    def _derive(self, fact: Fact) -> list[tuple[int, Row, tuple[int, ...]]]:
        """The case's version for each business date it has, from its events up to this one."""
        rows = cast(LedgerRecorder, self.app.recorder).case_log(fact.case_id, fact.version)
        history = list(facts_of(self.app, rows))
        days = sorted({f.on for f in history if f.kind != "SiteCorrected"})
        versions = []
        for day in days:
            row: Row | None = None
            for f in history:
                if included(f, row, day, None):
                    row = fold(row, f)
            assert row is not None
            versions.append((day_number(day), row, stats.contribution(row, self.config.alerts)))
        return versions

    def _signature(self, row: Row) -> list[Any]:
        due = stats.pending_due(row)
        return [
            self.place[row["township"]],
            self.unit_place[row["unit"]],
            day_number(row["found_on"]) // 100,
            _bits(tuple(row["violation_types"])),
            day_number(due) if due else None,
        ]

    def _count(
        self, buckets: dict[Any, list[int]], row: Row, vector: tuple[int, ...], op: Any
    ) -> None:
        """Add or take away a case's vector under its group signature (expanded when written)."""
        due = stats.pending_due(row)
        key = (
            row["township"],
            row["unit"],
            row["found_on"][:7],
            tuple(row["violation_types"]),
            due,
        )
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [0] * (len(stats.SUMMED) + 1)
        bucket[:-1] = map(op, bucket[:-1], vector)
        bucket[-1] = op(bucket[-1], 1)

    def _load(self, case_ids: Iterable[str]) -> dict[str, _Entry]:
        """The stored rows of these cases, a few hundred a query."""
        wanted, found = list(dict.fromkeys(case_ids)), {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT case_id, body, live FROM rm_ledger WHERE case_id IN ({marks})"
            for case_id, body, live in self.db.rows(sql, chunk):
                row = unpacked(unseal(orjson.loads(body), self.cipher))
                vector = stats.contribution(row, self.config.alerts)
                found[case_id] = _Entry(row, vector, orjson.loads(live))
        return found

    # Writing -----------------------------------------------------------------------

    def _write_versions(self, inserts: list[list[Any]], updates: list[Any]) -> None:
        columns = 11 + len(stats.SUMMED)
        self.db.many(f"INSERT INTO rm_versions VALUES ({', '.join('?' * columns)})", inserts)
        self.db.many(
            "UPDATE rm_versions SET next_on = ?, next_known = ? WHERE id = ?",
            [(on, t, vid) for kind, on, t, vid in updates if kind == "end"],
        )
        self.db.many(
            "UPDATE rm_versions SET closed_at = ? WHERE id = ?",
            [(t, vid) for kind, t, _, vid in updates if kind == "close"],
        )

    def _write_ledger(self, entries: Iterable[_Entry]) -> None:
        columns = LEDGER_COLUMNS.split(", ")
        self.db.many(
            f"INSERT INTO rm_ledger ({LEDGER_COLUMNS}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (case_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns[1:]),
            [
                (
                    r["id"],
                    r["ref"],
                    self.place[r["township"]],
                    r["township"],
                    r["unit"],
                    r["state"],
                    r["found_on"],
                    stats.pending_due(r),
                    r["filed_on"],
                    int(r["decided"]),
                    entry.vector[CRIME],
                    search_text(r, sealed=self.cipher is not None),
                    _bits(tuple(r["violation_types"])),
                    int(SUPERVISED_FLAG in r["flags"]),
                    STAGE[r["state"]],
                    r["area_m2"],
                    r["due_on"] or NO_DUE,
                    orjson.dumps(seal(packed(r), self.cipher)),
                    orjson.dumps(entry.live),
                )
                for entry in entries
                for r in [entry.row]
            ],
        )

    def _write_stats(self, buckets: dict[Any, list[int]]) -> None:
        sums: dict[tuple[str, str], list[int]] = {}
        due: dict[tuple[str, str, str], int] = {}
        for (township, unit, month, vtypes, pending), bucket in buckets.items():
            keys = [("township", township), ("unit", unit), ("month", month), ("total", "")]
            keys += [("violation_type", v) for v in dict.fromkeys(vtypes)]
            for key in keys:
                total = sums.setdefault(key, [0] * len(stats.SUMMED))
                total[:] = map(add, total, bucket[:-1])
                if pending is not None:
                    due[(*key, pending)] = due.get((*key, pending), 0) + bucket[-1]
        self._add_stats(sums)
        self.db.many(
            "INSERT INTO rm_due VALUES (?, ?, ?, ?) ON CONFLICT (grouping, key, due_on) "
            "DO UPDATE SET n = rm_due.n + excluded.n",
            [(*key, n) for key, n in due.items() if n],
        )

    def _add_stats(self, sums: dict[tuple[str, str], list[int]]) -> None:
        """Add to the persisted statistics exactly. The sums are added here, in Python's
        integers, not by SQL: SQLite silently turns an integer addition past 2^63 into an
        inexact REAL. The table has a few dozen rows: reading them all costs nothing."""
        changed = {key: values for key, values in sums.items() if any(values)}
        if not changed:
            return
        stored = {
            (g, k): [int(v) for v in values]
            for g, k, *values in self.db.rows(f"SELECT grouping, key, {M} FROM rm_stats")
        }
        rows = []
        for key, values in changed.items():
            old = stored.get(key)
            new = list(map(add, old, values)) if old else values
            rows.append((*key, *map(self._exact, new)))
        update = ", ".join(f"{m} = excluded.{m}" for m in stats.SUMMED)
        self.db.many(
            f"INSERT INTO rm_stats VALUES (?, ?, {M_PLACES}) "
            f"ON CONFLICT (grouping, key) DO UPDATE SET {update}",
            rows,
        )

    def _exact(self, value: int) -> int | str:
        """A sum as the database keeps it exactly (SQLite's integers end at 2^63)."""
        return value if self.db.postgres or -(2**63) <= value < 2**63 else str(value)

    # Reading -----------------------------------------------------------------------

    def ledger_rows(self, refs: Iterable[str] | None = None) -> Iterator[Row]:
        """The current ledger (or these cases of it), in the official township order, then by
        ref, streamed."""
        if refs is None:
            for (body,) in self.db.stream("SELECT body FROM rm_ledger ORDER BY place, ref"):
                yield unpacked(unseal(orjson.loads(body), self.cipher))
            return
        wanted = list(refs)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT body FROM rm_ledger WHERE ref IN ({marks}) ORDER BY place, ref"
            for (body,) in self.db.rows(sql, chunk):
                yield unpacked(unseal(orjson.loads(body), self.cipher))

    def ledger_count(self) -> int:
        return int(self.db.rows("SELECT count(*) FROM rm_ledger")[0][0])

    def alerts(self, today: date, campaign: Campaign, *, listed: int = 20) -> list[Alert]:
        """DESIGN's derived alerts, as queries over the current ledger: each with how many cases
        (or units) it concerns and the first refs, in official order."""
        decision_days = self.config.alerts.decision_days

        def where(kind: str) -> tuple[str, list[Any]]:
            return alert_where(kind, today, decision_days)

        found: list[Alert] = [
            self._alert("overdue", "整改逾期未到位", *where("overdue"), listed),
            self._alert("crime", "达到刑事追诉标准未移送公安", *where("crime"), listed),
            self._alert(
                "decision", f"立案超过{decision_days}日未作出处罚决定", *where("decision"), listed
            ),
        ]
        for phase in self.config.phases:
            due = campaign.deadlines.get(phase.key, phase.due_on)
            if due >= today:
                continue
            title = f"{phase.name}（{due} 到期）"
            if phase.key == "contacts":
                missing = [u for u in self.config.units if u not in campaign.contacts]
                found.append(
                    Alert(
                        f"phase:{phase.key}",
                        title + "：未报联络人的单位",
                        len(missing),
                        missing[:listed],
                    )
                )
            elif phase.key == "survey":
                kind = f"phase:{phase.key}"
                found.append(self._alert(kind, title + "：发现后尚未处置", *where(kind), listed))
            elif phase.key == "rectify":
                kind = f"phase:{phase.key}"
                found.append(self._alert(kind, title + "：未整改到位", *where(kind), listed))
        return found

    def _alert(self, kind: str, title: str, where: str, params: list[Any], listed: int) -> Alert:
        count = self.db.rows(f"SELECT count(*) FROM rm_ledger WHERE {where}", params)[0][0]
        refs = self.db.rows(
            f"SELECT ref FROM rm_ledger WHERE {where} ORDER BY place, ref LIMIT ?",
            [*params, listed],
        )
        return Alert(kind, title, int(count), [ref for (ref,) in refs])

    def stats(
        self, *, by: str = "township", as_of: date | None = None, known_at: datetime | None = None
    ) -> dict[str, Any]:
        cutoff = (as_of or china_today()).isoformat()
        if as_of is None and known_at is None:
            groups = self._running(by, cutoff)
            total = self._running("total", cutoff).get("", (stats.ZEROS, 0))
        else:
            groups, total = self._at(
                by,
                day_number(as_of.isoformat()) if as_of else NEVER - 1,
                us_of(known_at) if known_at else NEVER - 1,
                day_number(cutoff),
            )
        months = [k for k, (sums, _) in groups.items() if sums[0]] if by == "month" else []
        order = stats.group_order(by, self.config, months)
        return stats.document(by, order, groups, total, as_of, known_at)

    def _running(self, grouping: str, cutoff: str) -> dict[str, tuple[Sequence[int], int]]:
        """The persisted statistics: no replay, a few dozen rows."""
        overdue = dict(
            self.db.rows(
                "SELECT key, SUM(n) FROM rm_due WHERE grouping = ? AND due_on < ? GROUP BY key",
                [grouping, cutoff],
            )
        )
        rows = self.db.rows(f"SELECT key, {M} FROM rm_stats WHERE grouping = ?", [grouping])
        return {key: ([int(v) for v in values], int(overdue.get(key, 0))) for key, *values in rows}

    @staticmethod
    def _at_sql(column: str, split: bool) -> str:
        halves = "SUM({0} >> 32), SUM({0} & 4294967295)"
        sums = ", ".join(
            halves.format(m) if split and m in stats.AMOUNTS else f"SUM({m})" for m in stats.SUMMED
        )
        return (
            f"SELECT {column}, {sums}, SUM(CASE WHEN due_on < ? THEN 1 ELSE 0 END) "
            "FROM rm_versions WHERE on_from <= ? AND known_from <= ? AND closed_at > ? "
            f"AND (next_on > ? OR next_known > ?) GROUP BY {column}"
        )

    def _at(
        self, by: str, on: int, known: int, cutoff: int
    ) -> tuple[dict[str, tuple[Sequence[int], int]], tuple[Sequence[int], int]]:
        """Statistics at a cutoff: one scan over the versions valid then, grouped by the
        column of `by` (violation types by their set, split into each type afterwards)."""
        column = {"violation_type": "vtypes"}.get(by, by)
        params = [cutoff, on, known, known, on, known]
        split = False
        try:
            found = self.db.rows(self._at_sql(column, split), params)
        except sqlite3.OperationalError as error:
            # SQLite's SUM stops with "integer overflow" past 2^63 (PostgreSQL's sum of BIGINT
            # is NUMERIC): then each amount is summed in two halves, joined again in Python.
            if "overflow" not in str(error):
                raise
            split = True
            found = self.db.rows(self._at_sql(column, split), params)
        names = {
            "township": dict(enumerate(self.config.townships)),
            "unit": dict(enumerate(self.config.units)),
        }.get(by, {})
        groups: dict[str, list[int]] = {}
        total = [0] * (len(stats.SUMMED) + 1)  # the sums, then the overdue count
        for key, *values in found:
            figures = _joined(values) if split else [int(v or 0) for v in values]
            total = list(map(add, total, figures))
            if by == "violation_type":
                keys = [v for i, v in enumerate(VIOLATION_TYPES) if key & (1 << i)]
            elif by == "month":
                keys = [f"{key // 100:04d}-{key % 100:02d}"]
            else:
                keys = [names[key]]
            for name in keys:
                into = groups.setdefault(name, [0] * len(figures))
                into[:] = map(add, into, figures)
        return {k: (v[:-1], v[-1]) for k, v in groups.items()}, (total[:-1], total[-1])
