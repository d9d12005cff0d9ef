"""The case states of one batch: the most recently used in memory, the others in a temporary
SQLite file, so that a large file is checked without holding a state for each case it names.

A state leaves memory as a marshal'd list of plain values, by field position: the Case's fields,
then its site's (a SiteFound event: about 30 fields). Each field that marshal cannot hold has a
converter chosen once from its class's annotation (Decimal as its text, which keeps its
exponent; date as its ordinal; UUID as its bytes; a UTC datetime as its microseconds), and it
comes back through `assembled` / `unchecked`, not validated again: it was valid when it left.
About 6 µs to write a state and 10 to read it back; pickle took 22 and 15 (bench/case_states.py).
"""

import marshal
import pickle
import sqlite3
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any, cast
from uuid import UUID

from pydantic_core import TzInfo

from domain import events as e
from domain.case import Case
from domain.fast import assembled, unchecked

# Case states of one batch kept in memory (about 4 KB of resident memory each): a file touching
# more cases keeps the least recently used of them in its temporary file. 30,000 held a
# province's `record --file` at 292 MB, 20,000 at 261 (README, issue 15).
LIVE = 20_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_STORED_UTC = TzInfo(0)  # how pydantic reads a stored event's "…Z" timestamp


class _Odd(Exception):
    """A value its converter does not take (a state read from an older store may hold one):
    that state is pickled whole instead."""


def _from_decimal(value: Decimal) -> str:
    if type(value) is not Decimal:
        raise _Odd
    return str(value)


def _from_date(value: date) -> int:
    if type(value) is not date:
        raise _Odd
    return value.toordinal()


def _from_uuid(value: UUID) -> bytes:
    if type(value) is not UUID:
        raise _Odd
    return value.bytes


def _from_datetime(value: datetime) -> int | tuple[int]:
    """A recorded time: new events carry datetime.UTC, events read back pydantic's own UTC."""
    if type(value) is not datetime:
        raise _Odd
    if value.tzinfo is UTC:
        return (value - _EPOCH) // _MICROSECOND
    if type(value.tzinfo) is TzInfo and not value.utcoffset():
        return ((value - _EPOCH) // _MICROSECOND,)
    raise _Odd


def _to_datetime(value: int | tuple[int]) -> datetime:
    if isinstance(value, int):
        return _EPOCH + value * _MICROSECOND
    return (_EPOCH + value[0] * _MICROSECOND).replace(tzinfo=_STORED_UTC)


def _to_uuid(value: bytes) -> UUID:
    return UUID(bytes=value)


_CONVERTERS: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    Decimal: (_from_decimal, Decimal),
    date: (_from_date, date.fromordinal),
    UUID: (_from_uuid, _to_uuid),
    datetime: (_from_datetime, _to_datetime),
}


def _base(annotation: Any) -> tuple[type | None, bool]:
    """The class a field's values have (None: any marshal holds) and whether it may be None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base(kinds[0])[0] if len(kinds) == 1 else None, True
    if typing.get_origin(annotation) is typing.Annotated:
        return _base(typing.get_args(annotation)[0])
    return (annotation if annotation in _CONVERTERS else None), False


_CASE_FIELDS = tuple(f.name for f in fields(Case))
_SITE_FIELDS = tuple(e.SiteFound.model_fields)
_SITE_AT = _CASE_FIELDS.index("site")
_CASE_COUNT = len(_CASE_FIELDS)
_case_values = itemgetter(*_CASE_FIELDS)
_site_values = itemgetter(*_SITE_FIELDS)
# (position, to plain, from plain, may be None) of each value that needs converting.
_CONVERTED = [
    (position, *_CONVERTERS[kind], optional)
    for position, (kind, optional) in enumerate(
        [_base(f.type) for f in fields(Case)]
        + [_base(f.annotation) for f in e.SiteFound.model_fields.values()]
    )
    if kind is not None
]


def encoded(case: Case) -> bytes:
    """The state as bytes that `decoded` turns back into an equal one."""
    values = [*_case_values(case.__dict__), *_site_values(case.site.__dict__)]
    values[_SITE_AT] = None
    try:
        if type(case.site) is not e.SiteFound:
            raise _Odd
        for position, plain, _, optional in _CONVERTED:
            value = values[position]
            if value is not None or not optional:
                values[position] = plain(value)
        return marshal.dumps(values)
    except (_Odd, ValueError):  # ValueError: a value marshal does not hold
        return marshal.dumps(pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL))


def decoded(data: bytes) -> Case:
    values = marshal.loads(data)
    if type(values) is bytes:
        return pickle.loads(values)  # written by `encoded`, to this batch's own file
    for position, _, back, _ in _CONVERTED:
        value = values[position]
        if value is not None:
            values[position] = back(value)
    site = values[_CASE_COUNT:]
    del values[_CASE_COUNT:]
    values[_SITE_AT] = unchecked(e.SiteFound, dict(zip(_SITE_FIELDS, site, strict=True)))
    return assembled(Case, dict(zip(_CASE_FIELDS, values, strict=True)))


class CaseStates:
    """A batch's case states by ref, as a dict would keep them, and the refs and ids of the
    cases the batch found: at most LIVE states in memory, the least recently used moved to a
    temporary SQLite file, deleted when closed. Until it holds more than LIVE, it is plain
    dicts; past that every ref it holds is a row of the file (in the order first set), so that
    nothing in memory grows with the number of cases."""

    def __init__(self) -> None:
        # In the order first set; once states have moved out, least recently used first.
        self.live: dict[str, Case] = {}
        self.found: dict[str, UUID] = {}  # until states move out: the new cases, in order
        self.db: sqlite3.Connection | None = None
        self.count = self.found_count = 0  # once states have moved out: rows, and new cases

    def __contains__(self, ref: str) -> bool:
        if ref in self.live:
            return True
        if self.db is None:
            return False
        return self.db.execute("SELECT 1 FROM states WHERE ref = ?", (ref,)).fetchone() is not None

    def __len__(self) -> int:
        return len(self.live) if self.db is None else self.count

    def found_cases(self) -> int:
        """How many cases the batch found."""
        return len(self.found) if self.db is None else self.found_count

    def get(self, ref: str) -> Case | None:
        case = self.live.get(ref)
        if case is None and self.db is not None:
            row = self.db.execute("SELECT state FROM states WHERE ref = ?", (ref,)).fetchone()
            if row is not None:
                case = decoded(row[0])
                self._keep(ref, case)
        return case

    def __setitem__(self, ref: str, case: Case) -> None:
        if self.db is not None and ref not in self.live:
            self.count += self.db.execute(
                "INSERT OR IGNORE INTO states (ref) VALUES (?)", (ref,)
            ).rowcount
        self._keep(ref, case)

    def add_found(self, ref: str, case: Case) -> None:
        """A case the batch found (no state of its ref is held): set, and its ref and id
        kept for `found_refs`."""
        if self.db is None:
            self.found[ref] = case.id
        else:
            self.db.execute("INSERT INTO states (ref, found) VALUES (?, ?)", (ref, case.id.bytes))
            self.count += 1
            self.found_count += 1
        self._keep(ref, case)

    def _keep(self, ref: str, case: Case) -> None:
        self.live[ref] = case
        if self.db is not None:  # the most recently used last
            cast(OrderedDict[str, Case], self.live).move_to_end(ref)
        if len(self.live) > LIVE and self.db is None:
            self._start_moving_out()
        elif len(self.live) > LIVE:
            self._move_out()

    def _start_moving_out(self) -> None:
        # "": SQLite's own temporary file, deleted when the connection closes. One
        # transaction, never committed: the file is written to only as its cache spills.
        # A state is NULL while it is in memory and has never left it.
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("CREATE TABLE states (ref TEXT PRIMARY KEY, state BLOB, found BLOB)")
        self.db.execute("BEGIN")
        found = self.found
        self.db.executemany(
            "INSERT INTO states (ref, found) VALUES (?, ?)",
            ((ref, found[ref].bytes if ref in found else None) for ref in self.live),
        )
        self.count, self.found_count = len(self.live), len(found)
        self.found = {}
        # An OrderedDict takes its oldest out in constant time; a dict would walk the holes
        # its earlier removals left at its front.
        self.live = OrderedDict(self.live)
        self._move_out()

    def _move_out(self) -> None:
        """The least recently used state to the file."""
        assert self.db is not None
        ref, case = cast(OrderedDict[str, Case], self.live).popitem(last=False)
        self.db.execute("UPDATE states SET state = ? WHERE ref = ?", (encoded(case), ref))

    def everything(self) -> dict[str, Case]:
        """Every state, in the order first set (those moved out read back, for a case cache)."""
        if self.db is None:
            return self.live
        rows = self.db.execute("SELECT ref, state FROM states ORDER BY rowid")
        return {ref: self.live.get(ref) or decoded(state) for ref, state in rows}

    def found_refs(self, size: int) -> Iterator[list[tuple[str, UUID]]]:
        """The refs and ids of the cases the batch found, in the order found, `size` at a
        time (none: no part)."""
        if self.db is None:
            found = list(self.found.items())
            for start in range(0, len(found), size):
                yield found[start : start + size]
            return
        rows = self.db.execute(
            "SELECT ref, found FROM states WHERE found IS NOT NULL ORDER BY rowid"
        )
        while part := rows.fetchmany(size):
            yield [(ref, UUID(bytes=case_id)) for ref, case_id in part]

    def let_go(self) -> None:
        """The states in memory are let go (their memory goes to the writing); the refs found
        are kept for it."""
        self.live = {}

    def close(self) -> None:
        """Everything let go, and the file deleted."""
        self.live, self.found = {}, {}
        if self.db is not None:
            self.db.close()
