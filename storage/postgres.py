"""The ref index on PostgreSQL: a module of its own, so SQLite users never import psycopg."""

import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier, Literal

from storage import chain
from storage.sqlite import LedgerRecorder, LogRow, Write

CHUNK = 2000  # refs a statement

# The events' rows in PostgreSQL's binary COPY format, formatted here: psycopg's pure-Python
# `write_row` took about 2.5 µs of the client's processor a row, more than the hash chain's
# 1.7, and the server's inserts wait for the same two cores. A row is its number of fields
# (5), then each field's length and bytes: uuid, bigint, text (UTF-8), bytea, bigint.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
ROW_START = struct.Struct("!hi16siqi")  # fields; uuid; version; the topic's length
LENGTH = struct.Struct("!i")  # the state's
POSITION = struct.Struct("!iq")
COPY_END = b"\xff\xff"


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
        # The events go in by binary COPY with their positions given here (see _write); the
        # sequence behind the column's default is then moved past them, so a write through
        # the library's own insert stays correct.
        self.copy_events = SQL(
            "COPY {} (originator_id, originator_version, topic, state, notification_id) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(self.events_table)
        sequence = SQL(
            "pg_get_serial_sequence(quote_ident({}) || '.' || quote_ident({}), 'notification_id')"
        ).format(Literal(self.datastore.schema), Literal(self.events_table_name))
        # Under the lock: the last position written and the chain's last link, one round trip.
        self.select_start = SQL(
            "SELECT (SELECT max(notification_id) FROM {}) AS last, l.first, "
            "l.n + length(l.links) / 32 - 1 AS n, "
            "substring(l.positions from length(l.positions) - 7) AS p, "
            "substring(l.links from length(l.links) - 31) AS l "
            "FROM (SELECT) AS one LEFT JOIN LATERAL "
            "(SELECT * FROM {} ORDER BY first DESC LIMIT 1) AS l ON true"
        ).format(self.events_table, self.links_table)
        self.insert_links = SQL(
            "WITH linked AS (INSERT INTO {} VALUES (%s, %s, %b, %b)) SELECT setval({}, %s)"
        ).format(self.links_table, sequence)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (ref text PRIMARY KEY, case_id uuid NOT NULL)"
            ).format(self.refs_table),
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (first bigint PRIMARY KEY, n bigint NOT NULL, "
                "positions bytea NOT NULL, links bytea NOT NULL)"
            ).format(self.links_table),
            # Kept as they are, not compressed: a batch's 40 bytes an event do not compress
            # (hashes) and trying took a 20,000-event batch 15 ms of the server's time.
            # Changed once on a store made before, and only then (the change locks the table).
            SQL(
                "DO $$ BEGIN IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = "
                "(quote_ident({}) || '.chain_links')::regclass AND attstorage = 'x') THEN "
                "ALTER TABLE {} ALTER positions SET STORAGE EXTERNAL, "
                "ALTER links SET STORAGE EXTERNAL; END IF; END $$"
            ).format(Literal(self.datastore.schema), self.links_table),
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
        **kwargs: Any,
    ) -> Sequence[int] | None:
        """All of a batch in one transaction (see _write). Not the library's insert: it sends a
        whole batch through psycopg's pipeline and reads nothing until it syncs, and past some
        tens of thousands of events both directions' buffers filled and client and server
        waited on each other for ever, with the table lock held (NOTES: "PostgreSQL through
        the library")."""
        with self.appending() as write:
            return write(stored_events, refs)

    @contextmanager
    def appending(self) -> Iterator[Write]:
        """The transaction is begun and ended by hand, so that its first and last statements
        share a round trip with others (a command's path)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            try:
                # BEGIN; the events table lock first, as every writer takes it: ref inserts
                # never deadlock; NOTIFY; under the lock, the last position and link written.
                with conn.pipeline():
                    curs.execute("BEGIN")
                    self._lock_table(curs)
                    self._notify_channel(curs)
                    curs.execute(self.select_start)
                # Carried from part to part: the chain's head, and the last part's row of links
                # (written with the COMMIT).
                head = [self._start(curs, curs.fetchone())]
                links: list[tuple[Any, ...]] = []
                yield lambda stored, refs: self._write(curs, stored, refs, head, links)
                with conn.pipeline():
                    for row in links:
                        curs.execute(self.insert_links, row)
                    curs.execute("COMMIT")
            except BaseException:
                if conn.info.transaction_status.name in ("INTRANS", "INERROR"):
                    conn.execute("ROLLBACK")
                raise

    def _write(
        self,
        curs: Any,
        stored_events: Sequence[StoredEvent],
        refs: Sequence[tuple[str, UUID]],
        head: list[tuple[int, int, bytes]],
        links_rows: list[tuple[Any, ...]],
    ) -> list[int]:
        """The events by binary COPY at positions numbered here, after the last one written,
        with their links. Positions stay in commit order with nothing skipped for the readers
        that follow the log by position (the read model's catch-up, the dashboard's poll,
        LISTEN/NOTIFY), as the sequence gave them before: every writer holds the table's
        EXCLUSIVE lock from before it reads the last position until it commits, so no other
        transaction can number, write or commit events in between; a reader sees the whole
        transaction at its commit or none of it. A transaction that rolls back leaves no
        position used, or a gap where the library's insert drew on the sequence."""
        insert_refs = SQL("INSERT INTO {} SELECT * FROM unnest(%b::text[], %b::uuid[])").format(
            self.refs_table
        )
        for start in range(0, len(refs), CHUNK):
            chunk_refs = refs[start : start + CHUNK]
            curs.execute(
                insert_refs, ([ref for ref, _ in chunk_refs], [case for _, case in chunk_refs])
            )
        if not stored_events:
            return []
        last, n, prev = head[0]
        ids = range(last + 1, last + 1 + len(stored_events))
        # Each event's link is computed beside its row, while the server inserts the rows
        # already sent (storage/chain.py).
        linking = chain.links(
            prev,
            ids,
            chain.entries(
                (cast(UUID, e.originator_id).hex, e.originator_version, e.topic, e.state)
                for e in stored_events
            ),
        )
        links = []
        with curs.copy(self.copy_events) as copy:
            parts = [COPY_SIGNATURE]
            for e, i, link in zip(stored_events, ids, linking, strict=True):
                topic = e.topic.encode()
                parts += (
                    ROW_START.pack(
                        5,
                        16,
                        cast(UUID, e.originator_id).bytes,
                        8,
                        e.originator_version,
                        len(topic),
                    ),
                    topic,
                    LENGTH.pack(len(e.state)),
                    e.state,
                    POSITION.pack(8, i),
                )
                links.append(link)
                if len(parts) > 2000:  # some hundred KB at a time
                    copy.write(b"".join(parts))
                    parts = []
            parts.append(COPY_END)
            copy.write(b"".join(parts))
        row = chain.link_row(n, ids, links)
        for earlier in links_rows:  # a part before: written now, so that one part is held
            curs.execute(self.insert_links, earlier)
        links_rows[:] = [(*row, ids[-1])]
        head[0] = chain.head_of(row)
        return list(ids)

    def _start(self, curs: Any, row: Any) -> tuple[int, int, bytes]:
        """(last position, its ordinal, its link) from `select_start`, read under the lock;
        events written around the chain (none linked yet: an old store) are linked first."""
        last = row["last"] or 0
        position, n, prev = self._head_of(row)
        if last > position:  # events the chain does not cover yet
            if n:
                raise chain.ChainBroken(position)
            n, prev = self._backfill(curs, last)
        # Past the chain's head too: links of events no longer in the log are verify's to name.
        return max(last, position), n, prev

    def _head(self, curs: Any) -> tuple[int, int, bytes]:
        curs.execute(self.select_start)
        return self._head_of(curs.fetchone())

    @staticmethod
    def _head_of(row: Any) -> tuple[int, int, bytes]:
        """(position, n, link) of the chain's last link, from a row of `select_start`."""
        if row["first"] is None:
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
        # One statement sees one snapshot: no BEGIN and ROLLBACK round trips around it (here
        # and in case_ids, both on every command's path).
        table = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        query = "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
        with self.datastore.cursor() as curs:
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
        with self.datastore.cursor() as curs:
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


def check_connection(env: Mapping[str, str]) -> None:
    """One connection with the store's settings, at once: a wrong port, database or user is
    named now, where the library's pool would retry for its 5 s and say only that it "couldn't
    get a connection"."""
    psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5),
    ).close()
