"""The ref index on PostgreSQL: a module of its own, so SQLite users never import psycopg."""

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from storage import chain
from storage.sqlite import LedgerRecorder, LogRow

CHUNK = 2000  # events a statement: a few hundred KB each way


def _racing(error: BaseException) -> bool:
    text = str(error)
    return "concurrently" in text or "duplicate key" in text or "already exists" in text


class PostgresLedgerRecorder(PostgresApplicationRecorder, LedgerRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refs_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier("case_refs")
        )
        self.links_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier("chain_links")
        )
        self.meta_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier("chain_meta")
        )
        self.events_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (ref text PRIMARY KEY, case_id uuid NOT NULL)"
            ).format(self.refs_table),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (first bigint PRIMARY KEY, n bigint NOT NULL, "
                "positions bytea NOT NULL, links bytea NOT NULL)"
            ).format(self.links_table),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} "
                "(linked_at text NOT NULL, upto bigint NOT NULL, n bigint NOT NULL)"
            ).format(self.meta_table),
        ]

    def create_table(self) -> None:
        """Several servers opening one database at once: the library's DDL (CREATE TYPE,
        CREATE OR REPLACE FUNCTION) can fail with "tuple concurrently updated" or a duplicate;
        the tables are there by then, so trying again succeeds."""
        for attempt in range(5):
            try:
                super().create_table()
                return
            except Exception as error:  # psycopg's InternalError_ or UniqueViolation, wrapped
                if attempt == 4 or not _racing(error):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _create_table(self, curs: Any) -> None:
        # One opener's DDL at a time (the lock ends with the transaction).
        curs.execute("SELECT pg_advisory_xact_lock(hashtext('landledger create table'))")
        super()._create_table(curs)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        refs: Sequence[tuple[str, UUID]] = (),
        recheck: Callable[[], tuple[Sequence[StoredEvent], Sequence[tuple[str, UUID]]]]
        | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """All of a batch in one transaction, written in bounded chunks, each chunk's returned
        ids read before the next is sent. The library sends a whole batch through psycopg's
        pipeline and reads nothing until it syncs: past some tens of thousands of events both
        directions' buffers filled and client and server waited on each other for ever, with
        the table lock held (NOTES: "PostgreSQL through the library")."""
        ids: list[int] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            # The events table lock first, as every writer takes it: ref inserts never deadlock.
            self._lock_table(curs)
            self._notify_channel(curs)
            if recheck is not None:  # the batch as the store stands under the lock
                stored_events, refs = recheck()
            insert_ref = SQL("INSERT INTO {} VALUES (%s, %s)").format(self.refs_table)
            for start in range(0, len(refs), CHUNK):
                curs.executemany(insert_ref, refs[start : start + CHUNK])
            for start in range(0, len(stored_events), CHUNK):
                chunk = stored_events[start : start + CHUNK]
                PostgresAggregateRecorder._insert_stored_events(self, curs, chunk)
                chunk_ids = [row["notification_id"] for row in curs.fetchall()]
                # The chunk's links, under the lock, in this transaction (storage/chain.py).
                self._link(curs, chunk_ids, chunk)
                ids.extend(chunk_ids)
        return ids

    def _link(self, curs: Any, ids: Sequence[int], stored_events: Sequence[StoredEvent]) -> None:
        """The new events' links, in this transaction, under the events table's EXCLUSIVE lock
        taken by the insert: the previous link is the last one committed."""
        if not ids:
            return
        position, n, prev = self._head(curs)
        curs.execute(
            SQL("SELECT max(notification_id) AS m FROM {} WHERE notification_id < %s").format(
                self.events_table
            ),
            (ids[0],),
        )
        before = curs.fetchone()["m"] or 0
        if before > position:  # events the chain does not cover yet
            if n:
                raise chain.ChainBroken(position)
            n, prev = self._backfill(curs, before)
        rows = [
            (i, cast(UUID, s.originator_id).hex, s.originator_version, s.topic, s.state)
            for i, s in zip(ids, stored_events, strict=True)
        ]
        curs.execute(
            SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(self.links_table),
            chain.extend(n, prev, rows),
        )

    def _head(self, curs: Any) -> tuple[int, int, bytes]:
        curs.execute(
            SQL(
                "SELECT first, n + length(links) / 32 - 1 AS n, "
                "substring(positions from length(positions) - 7) AS p, "
                "substring(links from length(links) - 31) AS l "
                "FROM {} ORDER BY first DESC LIMIT 1"
            ).format(self.links_table)
        )
        row = curs.fetchone()
        if not row:
            return (0, 0, chain.GENESIS)
        return chain.head_of((row["first"], row["n"], bytes(row["p"]), bytes(row["l"])))

    def _backfill(self, curs: Any, upto: int) -> tuple[int, bytes]:
        n, prev, after = 0, chain.GENESIS, 0
        while True:
            curs.execute(
                SQL(
                    "SELECT notification_id, originator_id, originator_version, topic, state "
                    "FROM {} WHERE notification_id > %s AND notification_id <= %s "
                    "ORDER BY notification_id LIMIT 20000"
                ).format(self.events_table),
                (after, upto),
            )
            rows = [
                (
                    r["notification_id"],
                    r["originator_id"].hex,
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                )
                for r in curs.fetchall()
            ]
            if not rows:
                break
            links = chain.extend(n, prev, rows)
            curs.execute(
                SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(self.links_table), links
            )
            after, n, prev = chain.head_of(links)
        if n:
            curs.execute(
                SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(self.meta_table),
                (datetime.now(UTC).isoformat(timespec="seconds"), after, n),
            )
        return n, prev

    def chain_head(self) -> tuple[int, int, bytes]:
        with self.datastore.transaction(commit=False) as curs:
            return self._head(curs)

    def link_rows(self, after: int, limit: int) -> list[chain.LinkRow]:
        return self._link_rows("WHERE first > %s ORDER BY first LIMIT %s", (after, limit))

    def link_row_at(self, position: int) -> chain.LinkRow | None:
        found = self._link_rows("WHERE first <= %s ORDER BY first DESC LIMIT 1", (position,))
        return found[0] if found else None

    def _link_rows(self, where: str, params: Sequence[Any]) -> list[chain.LinkRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT first, n, positions, links FROM {} " + where).format(self.links_table),
                params,
            )
            return [
                (r["first"], r["n"], bytes(r["positions"]), bytes(r["links"]))
                for r in curs.fetchall()
            ]

    def chain_linked_on(self) -> tuple[str, int] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT linked_at, n FROM {}").format(self.meta_table))
            row = curs.fetchone()
            return (row["linked_at"], row["n"]) if row else None

    def link_unlinked(self) -> int:
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)  # as every writer does
            _, n, _ = self._head(curs)
            if n:
                return 0
            curs.execute(SQL("SELECT max(notification_id) AS m FROM {}").format(self.events_table))
            row = curs.fetchone()
            last = row["m"] if row and row["m"] else 0
            return self._backfill(curs, last)[0] if last else 0

    def log_page(self, after: int, limit: int) -> list[LogRow]:
        return self._rows(
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s", (after, limit)
        )

    def case_page(
        self, after: tuple[str, int], limit: int, *, upto: int, digits: str | None = None
    ) -> list[LogRow]:
        return self._rows(
            "WHERE (originator_id, originator_version) > (%s::uuid, %s) "
            "AND notification_id <= %s "
            "AND (%s::text IS NULL OR strpos(%s, right(originator_id::text, 1)) > 0) "
            "ORDER BY originator_id, originator_version LIMIT %s",
            (*after, upto, digits, digits, limit),
        )

    def case_log(self, case_id: str, upto: int) -> list[LogRow]:
        return self._rows(
            "WHERE originator_id = %s::uuid AND originator_version <= %s "
            "ORDER BY originator_version",
            (case_id, upto),
        )

    def _rows(self, where: str, params: Sequence[Any]) -> list[LogRow]:
        table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        query = "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL(query + where).format(table), params)
            return [
                (
                    r["notification_id"],
                    r["originator_id"].hex,
                    r["originator_version"],
                    r["topic"],
                    r["state"],
                )
                for r in curs.fetchall()
            ]

    def case_ids(self, refs: Iterable[str]) -> dict[str, UUID]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT ref, case_id FROM {} WHERE ref = ANY(%s)").format(self.refs_table),
                (list(refs),),
            )
            return {row["ref"]: row["case_id"] for row in curs.fetchall()}

    def ref_of(self, case_id: str) -> str | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT ref FROM {} WHERE case_id = %s::uuid").format(self.refs_table),
                (case_id,),
            )
            row = curs.fetchone()
            return str(row["ref"]) if row else None

    def count_refs(self) -> int:
        return self._count(self.refs_table)

    def count_events(self) -> int:
        return self._count(
            SQL("{}.{}").format(
                Identifier(self.datastore.schema), Identifier(self.events_table_name)
            )
        )

    def _count(self, table: Any) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT count(*) AS n FROM {}").format(table))
            row = curs.fetchone()
            return int(row["n"]) if row else 0
