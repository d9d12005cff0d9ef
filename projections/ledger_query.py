"""The dashboard's ledger (台账): the current ledger filtered, sorted and read a page at a time,
and the number of its rows, from rm_ledger on SQLite and PostgreSQL alike.

Every sort has an index whose key is the sort column then the ref (the tiebreaker, unique), so
`ORDER BY column, ref` is read in index order in either direction (both parts always share it: a
mixed direction would sort the whole table). Each such index also carries every column a filter
reads (`database.LEDGER_FILTERS`), so a filtered page walks one index and skips its offset without
touching the table; only the page's own rows are read, by ref. On SQLite the index is named
(`INDEXED BY`), so the plan does not depend on statistics the read model never gathers.

Search is `LIKE '%term%'` over `search` (ref, project, party and village, lower-cased): an FTS5
trigram index would be faster but finds nothing for terms under three characters, and most
surnames and village names are two. Each whitespace-separated term must match.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from domain.case import STATES
from domain.events import AlertSettings
from domain.values import VIOLATION_TYPES, china_today
from projections.alerts import CASE_ALERTS, alert_where
from projections.database import SORT_KEYS, Database
from projections.ledger import unpacked
from projections.personal import unseal
from projections.readmodel import STAGE, ReadModel, searchable

SORTS = tuple(SORT_KEYS)  # township (the official order, the default), ref, state, found_on…
DEFAULT_SORT = "township"
_ZERO = Decimal("0.00")


@dataclass(frozen=True)
class LedgerQuery:
    """What the 台账 screen shows: filters (None: any), a search text and a sort."""

    text: str = ""  # search: every whitespace-separated term in ref, project, party or village
    township: str | None = None
    unit: str | None = None
    state: str | None = None
    violation_type: str | None = None
    alert: str | None = None  # one of alerts.CASE_ALERTS: overdue, crime, decision, supervised…
    sort: str = DEFAULT_SORT  # one of SORTS
    descending: bool = False
    today: date | None = None  # the day alerts and overdue are judged on (None: today in China)

    def __post_init__(self) -> None:
        if self.sort not in SORT_KEYS:
            raise ValueError(f"unknown sort {self.sort!r}; one of {SORTS}")
        if self.alert is not None and self.alert not in CASE_ALERTS:
            raise ValueError(f"unknown alert {self.alert!r}; one of {CASE_ALERTS}")
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"unknown state {self.state!r}")
        if self.violation_type is not None and self.violation_type not in VIOLATION_TYPES:
            raise ValueError(f"unknown violation type {self.violation_type!r}")

    @property
    def terms(self) -> list[str]:
        return searchable(self.text).split()

    def sorted_by(self, sort: str, descending: bool = False) -> "LedgerQuery":
        return replace(self, sort=sort, descending=descending)

    def cycled(self, sort: str) -> "LedgerQuery":
        """A click on a column's header: ascending by it, then descending, then back to the
        default order."""
        if self.sort != sort:
            return self.sorted_by(sort)
        if not self.descending:
            return self.sorted_by(sort, descending=True)
        return self.sorted_by(DEFAULT_SORT)


class LedgerLine(NamedTuple):
    """A ledger row as the table shows it."""

    case_id: str
    ref: str
    township: str
    village: str
    project_name: str
    party_name: str
    violation_types: tuple[str, ...]
    area_m2: Decimal
    state: str
    found_on: date
    due_on: date | None
    overdue: bool  # its due date has passed and it is not rectified
    flags: tuple[str, ...]


def escape_like(term: str) -> str:
    """User text as a LIKE pattern's literal part (escape character: backslash)."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parts(source: ReadModel | Database) -> tuple[Database, dict[str, int] | None, int]:
    if isinstance(source, ReadModel):
        return source.db, source.place, source.config.alerts.decision_days
    return source, None, AlertSettings().decision_days


def where(source: ReadModel | Database, query: LedgerQuery) -> tuple[str, list[Any]]:
    """The query's WHERE condition over rm_ledger ("1 = 1" when it has none) and parameters."""
    _, places, decision_days = _parts(source)
    conditions: list[str] = []
    params: list[Any] = []
    if query.township is not None:
        if places is not None:
            conditions.append("place = ?")
            params.append(places.get(query.township, -1))
        else:  # no campaign at hand: the township's place as its cases have it
            conditions.append("place = (SELECT place FROM rm_ledger WHERE township = ? LIMIT 1)")
            params.append(query.township)
    if query.unit is not None:
        conditions.append("unit = ?")
        params.append(query.unit)
    if query.state is not None:
        conditions.append("stage = ?")
        params.append(STAGE[query.state])
    if query.violation_type is not None:
        conditions.append("(vtypes & ?) <> 0")
        params.append(1 << VIOLATION_TYPES.index(query.violation_type))
    if query.alert is not None:
        condition, values = alert_where(query.alert, _today(query), decision_days)
        conditions.append(f"({condition})")
        params += values
    for term in query.terms:
        conditions.append("search LIKE ? ESCAPE '\\'")
        params.append(f"%{escape_like(term)}%")
    return " AND ".join(conditions) or "1 = 1", params


def _today(query: LedgerQuery) -> date:
    return query.today or china_today()


def _table(db: Database, sort: str) -> str:
    index = SORT_KEYS[sort][1]
    return "rm_ledger" if db.postgres else f"rm_ledger INDEXED BY {index}"


def count_sql(source: ReadModel | Database, query: LedgerQuery) -> tuple[str, list[Any]]:
    """The statement `count` runs (in SQLite's form) and its parameters."""
    db = _parts(source)[0]
    condition, params = where(source, query)
    # One covering index, no table page: the one whose leading column a filter fixes (a range
    # of it is read), else the default order's (all of it).
    if not params and condition == "1 = 1":  # the whole ledger: SQLite counts a b-tree's cells
        return "SELECT count(*) FROM rm_ledger", []
    sort = "township" if query.township else "state" if query.state else DEFAULT_SORT
    return f"SELECT count(*) FROM {_table(db, sort)} WHERE {condition}", params


def count(source: ReadModel | Database, query: LedgerQuery) -> int:
    """How many cases the query finds."""
    return int(_parts(source)[0].rows(*count_sql(source, query))[0][0])


def refs_sql(
    source: ReadModel | Database,
    query: LedgerQuery,
    offset: int,
    limit: int,
    total: int | None = None,
) -> tuple[str, list[Any], bool]:
    """The statement `refs` runs (in SQLite's form), its parameters, and whether it reads
    from the far end (its rows come in reverse order).

    Given the query's row count, a page in the second half is read from the other end of the
    index: End costs what Home does, and no page walks more than half the matching rows."""
    db = _parts(source)[0]
    condition, params = where(source, query)
    column = SORT_KEYS[query.sort][0]
    offset, limit = max(offset, 0), max(limit, 0)
    backwards = total is not None and offset + limit // 2 > total // 2
    if backwards:
        assert total is not None
        limit = max(0, min(limit, total - offset))
        offset = max(0, total - offset - limit)
    descending = query.descending != backwards
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT ref FROM {_table(db, query.sort)} WHERE {condition} "
        f"ORDER BY {column} {direction}, ref {direction} LIMIT ? OFFSET ?"
    )
    return sql, [*params, limit, offset], backwards


def refs(
    source: ReadModel | Database,
    query: LedgerQuery,
    offset: int,
    limit: int,
    total: int | None = None,
) -> list[str]:
    """The refs of the query's rows offset … offset + limit, in its order (`total`: its row
    count, if known: see refs_sql)."""
    db = _parts(source)[0]
    sql, params, backwards = refs_sql(source, query, offset, limit, total)
    found = [ref for (ref,) in db.rows(sql, params)]
    return found[::-1] if backwards else found


ROWS_SQL = "SELECT ref, pending_due, body FROM rm_ledger WHERE ref IN ({marks})"


def page(
    source: ReadModel | Database,
    query: LedgerQuery,
    offset: int,
    limit: int,
    total: int | None = None,
) -> list[LedgerLine]:
    """The query's rows offset … offset + limit (fewer at the end), in its order. `total`:
    the query's row count if the caller has it (a table does), so that pages past the middle
    are read from the far end."""
    db = _parts(source)[0]
    wanted = refs(source, query, offset, limit, total)
    if not wanted:
        return []
    today = _today(query).isoformat()
    marks = ", ".join("?" * len(wanted))
    found = {
        ref: _line(body, pending_due is not None and pending_due < today, db.cipher)
        for ref, pending_due, body in db.rows(ROWS_SQL.format(marks=marks), wanted)
    }
    return [found[ref] for ref in wanted if ref in found]


def position(source: ReadModel | Database, query: LedgerQuery, ref: str) -> int | None:
    """The row number of a case under the query (None: the query does not find it), so a
    screen can keep its cursor on a case when the order changes."""
    db = _parts(source)[0]
    condition, params = where(source, query)
    column = SORT_KEYS[query.sort][0]
    key = db.rows(f"SELECT {column} FROM rm_ledger WHERE ({condition}) AND ref = ?", [*params, ref])
    if not key:
        return None
    before = ">" if query.descending else "<"
    sql = (
        f"SELECT count(*) FROM {_table(db, query.sort)} WHERE ({condition}) AND "
        f"({column} {before} ? OR ({column} = ? AND ref {before} ?))"
    )
    return int(db.rows(sql, [*params, key[0][0], key[0][0], ref])[0][0])


def _line(body: bytes, overdue: bool, cipher: Any) -> LedgerLine:
    row = unpacked(unseal(orjson.loads(body), cipher))
    area = row["area_m2"]
    due = row["due_on"]
    return LedgerLine(
        case_id=row["id"],
        ref=row["ref"],
        township=row["township"],
        village=row["village"] or "",
        project_name=row["project_name"] or "",
        party_name=row["party_name"] or "",
        violation_types=tuple(row["violation_types"]),
        area_m2=Decimal(area).scaleb(-2) if area else _ZERO,
        state=row["state"],
        found_on=date.fromisoformat(row["found_on"]),
        due_on=date.fromisoformat(due) if due else None,
        overdue=overdue,
        flags=tuple(row["flags"]),
    )


class LedgerPages:
    """The ledger as the dashboard's table reads it (tui.ledger_table.LedgerSource): the
    functions above bound to one read model or database. Give it a connection of its own
    (`ReadModel(app)` or `Database(app)`): the table calls it from a worker thread."""

    def __init__(self, source: ReadModel | Database) -> None:
        self.source = source
        self._counted: tuple[LedgerQuery, int] | None = None  # the last count, for page()

    def count(self, query: LedgerQuery) -> int:
        found = count(self.source, query)
        self._counted = (query, found)
        return found

    def page(self, query: LedgerQuery, offset: int, limit: int) -> Sequence[LedgerLine]:
        total = self._counted[1] if self._counted and self._counted[0] == query else None
        return page(self.source, query, offset, limit, total)

    def interrupt(self) -> None:
        """Stop the count or page another thread is reading (see Database.interrupt)."""
        _parts(self.source)[0].interrupt()


__all__ = [
    "DEFAULT_SORT",
    "ROWS_SQL",
    "SORTS",
    "LedgerLine",
    "LedgerPages",
    "LedgerQuery",
    "count",
    "count_sql",
    "escape_like",
    "page",
    "position",
    "refs",
    "refs_sql",
    "where",
]
