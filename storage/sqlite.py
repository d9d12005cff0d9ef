"""The recorders: the library's, plus the ref index and a plain reader of the log.

The ref index (`case_refs`) lives in the event store's database and is written in the same
transaction as the events, so two sessions can never record the same `ref` twice.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

from storage import chain

# One row of the log as the read side reads it: position, case id (hex), version, topic, state.
LogRow = tuple[int, str, int, str, bytes]
# Writes a part of a batch (events, then the refs of new cases) into an open transaction.
Write = Callable[[Sequence[StoredEvent], Sequence[tuple[str, UUID]]], Sequence[int] | None]


class LedgerRecorder:
    """What both recorders add: the case_refs table, written with the events, and a plain
    reader of the log (no Notification or UUID objects: a rebuild reads a million rows)."""

    def log_page(self, after: int, limit: int) -> list[LogRow]:
        raise NotImplementedError

    def appending(self) -> AbstractContextManager[Write]:
        """One transaction that a batch is written into in parts, each with its links: all
        parts are committed when the block ends, none if it raises. A large batch is then
        never held whole (service.ledger)."""
        raise NotImplementedError

    def case_page(
        self, after: tuple[str, int], limit: int, *, upto: int, digits: str | None = None
    ) -> list[LogRow]:
        """The log in case order (by case id, then version): up to `limit` events after the
        case and version `after`, recorded at positions up to `upto`; with `digits`, only the
        cases whose id ends in one of these hex digits (a rebuild's share)."""
        raise NotImplementedError

    def case_log(self, case_id: str, upto: int) -> list[LogRow]:
        """One case's events up to a version, in order."""
        raise NotImplementedError

    def case_ids(self, refs: Iterable[str]) -> dict[str, UUID]:
        raise NotImplementedError

    def count_refs(self) -> int:
        raise NotImplementedError

    def ref_of(self, case_id: str) -> str | None:
        """A case's ref from its id (hex): a slow scan, for naming one damaged event."""
        raise NotImplementedError

    def count_events(self) -> int:
        raise NotImplementedError

    # The hash chain (storage/chain.py) ------------------------------------------------------

    def chain_head(self) -> tuple[int, int, bytes]:
        """(position, n, link) of the newest link; (0, 0, GENESIS) when there is none."""
        raise NotImplementedError

    def link_rows(self, after: int, limit: int) -> list[chain.LinkRow]:
        """Stored rows of links whose first position is after `after`, in order."""
        raise NotImplementedError

    def link_row_at(self, position: int) -> chain.LinkRow | None:
        """The stored row of links that covers a position (the last one starting at or before
        it)."""
        raise NotImplementedError

    def chain_linked_on(self) -> tuple[str, int] | None:
        """When events written before the chain existed were linked, and how many."""
        raise NotImplementedError

    def link_unlinked(self) -> int:
        """Link the events written before the chain existed (once); returns how many."""
        raise NotImplementedError


class SQLiteLedgerRecorder(SQLiteApplicationRecorder, LedgerRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS case_refs "
            "(ref TEXT PRIMARY KEY, case_id TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS chain_links (first INTEGER PRIMARY KEY, "
            "n INTEGER NOT NULL, positions BLOB NOT NULL, links BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS chain_meta "
            "(linked_at TEXT NOT NULL, upto INTEGER NOT NULL, n INTEGER NOT NULL)",
        ]

    @contextmanager
    def appending(self) -> Iterator[Write]:
        with self.datastore.transaction(commit=True) as c:
            # SQLite's write lock at once (any write takes it, even one that changes nothing),
            # as PostgreSQL's recorder takes its table lock: what the block checks before its
            # first part is written is what stands when it commits (service.ledger).
            c.execute("DELETE FROM case_refs WHERE 0")
            yield lambda stored, refs: self._insert_events(c, stored, refs=refs)

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        refs: Sequence[tuple[str, UUID]] = (),
        **_: Any,
    ) -> Sequence[int] | None:
        """One executemany instead of the library's execute per row; the rowids are then
        consecutive, because this transaction holds SQLite's only write lock."""
        # Checkpoint the WAL every ~40 MB rather than every 4 MB: at a province's size each
        # checkpoint rewrites pages scattered over the file, and fewer coalesce more of them.
        c.execute("PRAGMA wal_autocheckpoint=10000")
        c.execute("PRAGMA cache_size=-65536")  # 64 MB: a large index, inserts scattered over it
        if refs:
            c.executemany("INSERT INTO case_refs VALUES (?, ?)", [(r, i.hex) for r, i in refs])
        c.executemany(
            self.insert_events_statement,
            [
                (cast(UUID, s.originator_id).hex, s.originator_version, s.topic, s.state)
                for s in stored_events
            ],
        )
        c.execute("SELECT last_insert_rowid()")
        last = c.fetchone()[0]
        ids = list(range(last - len(stored_events) + 1, last + 1))
        self._link(c, ids, stored_events)
        return ids

    def _link(
        self, c: SQLiteCursor, ids: Sequence[int], stored_events: Sequence[StoredEvent]
    ) -> None:
        """The new events' links, in this transaction, after the events took the write lock."""
        if not ids:
            return
        position, n, prev = self._head(c)
        c.execute(f"SELECT max(rowid) FROM {self.events_table_name} WHERE rowid < ?", (ids[0],))
        before = c.fetchone()[0] or 0
        if before > position:  # events the chain does not cover yet
            if n:
                raise chain.ChainBroken(position)
            n, prev = self._backfill(c, before)
        rows = [
            (i, cast(UUID, s.originator_id).hex, s.originator_version, s.topic, s.state)
            for i, s in zip(ids, stored_events, strict=True)
        ]
        c.execute("INSERT INTO chain_links VALUES (?, ?, ?, ?)", chain.extend(n, prev, rows))

    def _head(self, c: SQLiteCursor) -> tuple[int, int, bytes]:
        c.execute(
            "SELECT first, n, substr(positions, -8), substr(links, -32), length(links) / 32 "
            "FROM chain_links ORDER BY first DESC LIMIT 1"
        )
        row = c.fetchone()
        if not row:
            return (0, 0, chain.GENESIS)
        return chain.head_of((row[0], row[1] + row[4] - 1, bytes(row[2]), bytes(row[3])))

    def _backfill(self, c: SQLiteCursor, upto: int) -> tuple[int, bytes]:
        """Link every event up to a position, on a store whose chain is empty."""
        n, prev, after = 0, chain.GENESIS, 0
        while True:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid > ? AND rowid <= ? "
                "ORDER BY rowid LIMIT 20000",
                (after, upto),
            )
            rows: list[chain.LinkSource] = [(r[0], r[1], r[2], r[3], r[4]) for r in c.fetchall()]
            if not rows:
                break
            links = chain.extend(n, prev, rows)
            c.execute("INSERT INTO chain_links VALUES (?, ?, ?, ?)", links)
            after, n, prev = chain.head_of(links)
        if n:
            c.execute(
                "INSERT INTO chain_meta VALUES (?, ?, ?)",
                (datetime.now(UTC).isoformat(timespec="seconds"), after, n),
            )
        return n, prev

    def log_page(self, after: int, limit: int) -> list[LogRow]:
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
        )

    def case_page(
        self, after: tuple[str, int], limit: int, *, upto: int, digits: str | None = None
    ) -> list[LogRow]:
        # In case order the rows lie all over the table. Not read through a memory map: it
        # saved a fifth of the reading, but the mapped store counted in the process's resident
        # memory (a province's `record --file` 659 MB, of which 300 private; README, issue 15).
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE (originator_id, originator_version) > (?, ?) "
            "AND rowid <= ? AND (? IS NULL OR instr(?, substr(originator_id, 32)) > 0) "
            "ORDER BY originator_id, originator_version LIMIT ?",
            (*after, upto, digits, digits, limit),
        )

    def case_log(self, case_id: str, upto: int) -> list[LogRow]:
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE originator_id = ? "
            "AND originator_version <= ? ORDER BY originator_version",
            (case_id, upto),
        )

    def _rows(self, sql: str, params: Sequence[Any]) -> list[LogRow]:
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples: the library's sqlite3.Row costs a rebuild 2 s
            cursor.execute(sql, params)
            return cursor.fetchall()

    def case_ids(self, refs: Iterable[str]) -> dict[str, UUID]:
        found: dict[str, UUID] = {}
        wanted = list(refs)
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(f"SELECT ref, case_id FROM case_refs WHERE ref IN ({marks})", chunk)
                found.update((row[0], UUID(row[1])) for row in c.fetchall())
        return found

    def ref_of(self, case_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT ref FROM case_refs WHERE case_id = ?", (case_id,))
            row = c.fetchone()
            return str(row[0]) if row else None

    def count_refs(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*) FROM case_refs")
            return int(c.fetchone()[0])

    def count_events(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT count(*) FROM {self.events_table_name}")
            return int(c.fetchone()[0])

    def chain_head(self) -> tuple[int, int, bytes]:
        with self.datastore.transaction(commit=False) as c:
            return self._head(c)

    def link_rows(self, after: int, limit: int) -> list[chain.LinkRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT first, n, positions, links FROM chain_links WHERE first > ? "
                "ORDER BY first LIMIT ?",
                (after, limit),
            )
            return [(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in c.fetchall()]

    def link_row_at(self, position: int) -> chain.LinkRow | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT first, n, positions, links FROM chain_links WHERE first <= ? "
                "ORDER BY first DESC LIMIT 1",
                (position,),
            )
            r = c.fetchone()
            return (r[0], r[1], bytes(r[2]), bytes(r[3])) if r else None

    def chain_linked_on(self) -> tuple[str, int] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT linked_at, n FROM chain_meta")
            row = c.fetchone()
            return (row[0], row[1]) if row else None

    def link_unlinked(self) -> int:
        with self.datastore.transaction(commit=True) as c:
            c.execute("UPDATE chain_meta SET n = n WHERE 0")  # take the write lock first
            _, n, _ = self._head(c)
            if n:
                return 0
            c.execute(f"SELECT max(rowid) FROM {self.events_table_name}")
            last = c.fetchone()[0] or 0
            return self._backfill(c, last)[0] if last else 0
