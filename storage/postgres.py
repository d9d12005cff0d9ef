"""The ref index on PostgreSQL: a module of its own, so SQLite users never import psycopg."""

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from storage.sqlite import LedgerRecorder, LogRow


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

    def _insert_stored_events(
        self,
        curs: Any,
        stored_events: Sequence[StoredEvent],
        *,
        refs: Sequence[tuple[str, UUID]] = (),
        **kwargs: Any,
    ) -> None:
        if refs:
            # Take the events table lock first, as every writer does: ref inserts never deadlock.
            self._lock_table(curs)
            curs.executemany(SQL("INSERT INTO {} VALUES (%s, %s)").format(self.refs_table), refs)
        super()._insert_stored_events(curs, stored_events, **kwargs)

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
