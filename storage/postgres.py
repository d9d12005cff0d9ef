"""The ref index on PostgreSQL: a module of its own, so SQLite users never import psycopg."""

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier

from storage.sqlite import LedgerRecorder, LogRow

CHUNK = 2000  # events a statement: a few hundred KB each way


class PostgresLedgerRecorder(PostgresApplicationRecorder, LedgerRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refs_table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier("case_refs")
        )
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (ref text PRIMARY KEY, case_id uuid NOT NULL)"
            ).format(self.refs_table)
        )

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        refs: Sequence[tuple[str, UUID]] = (),
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
            insert_ref = SQL("INSERT INTO {} VALUES (%s, %s)").format(self.refs_table)
            for start in range(0, len(refs), CHUNK):
                curs.executemany(insert_ref, refs[start : start + CHUNK])
            for start in range(0, len(stored_events), CHUNK):
                chunk = stored_events[start : start + CHUNK]
                PostgresAggregateRecorder._insert_stored_events(self, curs, chunk)
                ids.extend(row["notification_id"] for row in curs.fetchall())
        return ids

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
