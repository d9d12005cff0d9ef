"""Storage: how events become rows (pydantic + orjson), time-ordered ids, and the ref index.

The ref index (`case_refs`) lives in the event store's database and is written in the same
transaction as the events, so two sessions can never record the same `ref` twice.
"""

import os
import threading
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from pydantic import ValidationError

from domain.errors import DomainError
from domain.events import BY_TOPIC, Event
from domain.fast import assembled

_ENVELOPE_IDS = {"originator_id", "originator_version"}
_uuid7_lock = threading.Lock()
_uuid7_last = [0, 0]  # last millisecond, counter within it


def uuid7() -> UUID:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of the index."""
    with _uuid7_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _uuid7_last[0]:
            ms, counter = _uuid7_last[0], _uuid7_last[1] + 1
            if counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                ms, counter = ms + 1, 0
        else:
            counter = 0
        _uuid7_last[:] = [ms, counter]
    tail = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    return UUID(int=(ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail)


@cache
def _serializer(cls: type[Event]) -> Any:
    """The class's pydantic serializer, built on first use (schemas are deferred for start-up)."""
    cls.model_rebuild()
    return cls.__pydantic_serializer__


class OrjsonTranscoder(Transcoder):
    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Events are pydantic models; their JSON form keeps Decimal, date and Chinese text exact."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event = cast(Event, domain_event)
        serializer = _serializer(type(event))
        if event.class_version == 1:  # the model's own JSON: the same bytes as orjson's
            data = serializer.to_json(event, exclude=_ENVELOPE_IDS, exclude_none=True)
        else:
            state = serializer.to_python(
                event, mode="json", exclude=_ENVELOPE_IDS, exclude_none=True
            )
            data = self.transcoder.encode({**state, "class_version": event.class_version})
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return assembled(
            StoredEvent,
            {
                "originator_id": event.originator_id,
                "originator_version": event.originator_version,
                "topic": event.TOPIC,
                "state": data,
            },
        )

    def decode_state(self, topic: str, data: bytes) -> dict[str, Any]:
        """The event's JSON fields, decrypted, decompressed and upcast; not validated (the
        read side folds these directly, which is what makes a rebuild fast)."""
        cls = BY_TOPIC[topic]
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        state: dict[str, Any] = self.transcoder.decode(data)
        version = state.pop("class_version", 1)
        while version < cls.class_version:
            getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
            version += 1
        return state

    def to_domain_event(self, stored_event: StoredEvent) -> Event:
        try:
            cls = BY_TOPIC[stored_event.topic]
            state = self.decode_state(stored_event.topic, stored_event.state)
            state["originator_id"] = stored_event.originator_id
            state["originator_version"] = stored_event.originator_version
            return _validated(cls, state)
        except Exception as error:
            raise DomainError(
                f"存储已损坏：对象 {stored_event.originator_id} 的第 "
                f"{stored_event.originator_version} 个事件（{stored_event.topic}）无法读取："
                f"{error!r}。请用备份恢复，或交管理员核查"
            ) from None


def _validated(cls: type[Event], state: dict[str, Any]) -> Event:
    """A stored event as its class. One stored by an older version may hold a value its field
    no longer takes (a float where an integer belongs): it is read with that value as stored,
    for history and audit, as long as everything else about the event is sound."""
    try:
        return cls.model_validate(state)
    except ValidationError as error:
        odd = {str(p["loc"][0]) for p in error.errors() if p["loc"]} - _ENVELOPE_IDS
        if not odd or not odd.isdisjoint(("on", "timestamp")):
            raise
        event = cls.model_validate({k: v for k, v in state.items() if k not in odd})
        event.__dict__.update({k: _as_stored(cls, k, state[k]) for k in odd if k in state})
        return event


def _as_stored(cls: type[Event], name: str, raw: Any) -> Any:
    """A value as stored, typed as its field when it can be (an amount past today's bound is
    still a Decimal: the case's totals add it up)."""
    info = cls.model_fields.get(name)
    if info is not None and info.annotation is Decimal and not isinstance(raw, bool):
        try:
            return Decimal(str(raw))
        except ArithmeticError:
            pass
    return raw


# One row of the log as the read side reads it: position, case id (hex), version, topic, state.
LogRow = tuple[int, str, int, str, bytes]


class RefIndex:
    """What both recorders add: the case_refs table, written with the events, and a plain
    reader of the log (no Notification or UUID objects: a rebuild reads a million rows)."""

    def log_page(self, after: int, limit: int) -> list[LogRow]:
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

    def count_events(self) -> int:
        raise NotImplementedError


class SQLiteLedgerRecorder(SQLiteApplicationRecorder, RefIndex):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS case_refs "
            "(ref TEXT PRIMARY KEY, case_id TEXT NOT NULL) WITHOUT ROWID",
        ]

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
        return list(range(last - len(stored_events) + 1, last + 1))

    def log_page(self, after: int, limit: int) -> list[LogRow]:
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
        )

    def case_page(
        self, after: tuple[str, int], limit: int, *, upto: int, digits: str | None = None
    ) -> list[LogRow]:
        # In case order the rows lie all over the table: reading them through a memory map
        # saves a system call and a copy for each (a fifth of the time, here).
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE (originator_id, originator_version) > (?, ?) "
            "AND rowid <= ? AND (? IS NULL OR instr(?, substr(originator_id, 32)) > 0) "
            "ORDER BY originator_id, originator_version LIMIT ?",
            (*after, upto, digits, digits, limit),
            mapped=True,
        )

    def case_log(self, case_id: str, upto: int) -> list[LogRow]:
        return self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE originator_id = ? "
            "AND originator_version <= ? ORDER BY originator_version",
            (case_id, upto),
        )

    def _rows(self, sql: str, params: Sequence[Any], *, mapped: bool = False) -> list[LogRow]:
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples: the library's sqlite3.Row costs a rebuild 2 s
            if mapped:
                cursor.execute(f"PRAGMA mmap_size={2**40}")  # at most the file's size
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

    def count_refs(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*) FROM case_refs")
            return int(c.fetchone()[0])

    def count_events(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT count(*) FROM {self.events_table_name}")
            return int(c.fetchone()[0])
