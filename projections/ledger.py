"""The ledger (台账): one row per case, folded from its events by a pure function.

`apply(row, event) -> row` feeds the persisted read model, a rebuild and an in-memory replay
alike. A row is plain JSON-ready data (amounts as integer hundredths, dates as ISO text), so
rows are folded straight from the stored JSON without building event objects: that is what
keeps a rebuild of a province's log within seconds. `view()` turns a row into typed values.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

from domain.case import FOUND, Case, derive_state
from domain.commands import SITE_FIELDS, FindSite
from domain.errors import DomainError
from domain.fast import assembled, unchecked

Row = dict[str, Any]

# Amount fields are held as integer hundredths (分, 0.01 ㎡): exact, and summed by SQL as integers.
AMOUNT_SUFFIXES = ("_m2", "_yuan")
CASE_FLAGS = ("stopped", "dismissed", "filed", "decided", "rectifying", "rectified", "closed_out")
MILESTONES = (
    "stopped_on",
    "dismissed_on",
    "filed_on",
    "decided_on",
    "ordered_on",
    "rectified_on",
    "closed_on",
    "reopened_on",
)


class Fact(NamedTuple):
    """A stored event as the read side sees it: its position in the log and its JSON fields."""

    position: int
    case_id: str  # hex
    version: int
    kind: str  # the event class name, e.g. "SiteFound"
    data: dict[str, Any]
    on: str  # its business date
    recorded_us: int  # when it was recorded, in microseconds since the epoch

    @classmethod
    def of(
        cls, position: int, case_id: str, version: int, kind: str, data: dict[str, Any]
    ) -> "Fact":
        return cls(
            position, case_id, version, kind, data, data["on"], timestamp_us(data["timestamp"])
        )


@lru_cache(maxsize=4096)  # a batch's events share one timestamp
def timestamp_us(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def us_of(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# The largest amount a row may hold, in hundredths: 10,000,000,000 元 (an area's bound is
# lower). The domain checks each amount and each case's totals at the door; an event stored
# before it did, with a value past this, is left out of the read side (`fold`) rather than
# allowed to overflow the 64-bit sums every reader depends on.
MAX_CENTS = 10**12
MAX_PERSONS = 10_000


def cents(value: Any) -> int:
    """'123.45' → 12345; values were validated to at most two decimal places."""
    if value == "0" or value == 0:  # half of all amounts: no Decimal needed
        return 0
    found = int(Decimal(value) * 100)
    if not 0 <= found <= MAX_CENTS:
        raise ValueError(f"amount out of range: {value}")
    return found


def is_amount(field: str) -> bool:
    return field.endswith(AMOUNT_SUFFIXES)


_SITE_TEXTS = tuple(f for f in SITE_FIELDS if not is_amount(f))
_SITE_AMOUNTS = tuple(f for f in SITE_FIELDS if is_amount(f))


def _site(data: dict[str, Any]) -> Row:
    """The site facts an event gives, amounts in hundredths."""
    site = {f: data[f] for f in _SITE_TEXTS if f in data}
    for f in _SITE_AMOUNTS:
        if f in data:
            site[f] = cents(data[f])
    return site


# A ledger row before its case is found: every field, in the order every row keeps them (rows
# are stored as their values alone, see `FIELDS`).
_BLANK: Row = {
    "id": "",
    "ref": "",
    "version": 0,
    "found_on": "",
    "last_on": "",
    "recorded_us": 0,
    **dict.fromkeys(SITE_FIELDS),  # lon and lat are the only site facts that may be absent
    **dict.fromkeys(CASE_FLAGS, False),
    "state": FOUND,
    **dict.fromkeys(MILESTONES),
    "order_no": "",
    "stop_outcome": "",
    "dismiss_reason": "",
    "case_no": "",
    "filing_unit": "",
    "handlers": [],
    "decision_no": "",
    "fine_yuan": 0,
    "confiscated_income_yuan": 0,
    "demolish_m2": 0,
    "confiscate_building_m2": 0,
    "referrals": [],
    "measures": [],
    "due_on": None,
    "demolished_m2": 0,
    "restored_m2": 0,
    "fine_paid_yuan": 0,
    "permits": 0,
    "permit_area_m2": 0,
    "flags": [],
    "corrections": 0,
}
# A row's fields in order: `apply` only ever replaces values, so `list(row.values())` lines up
# with these, and a stored row is less than half the size of the same row with its keys.
FIELDS = tuple(_BLANK)


def new_row(fact: Fact) -> Row:
    data = fact.data
    row = {**_BLANK, **_site(data)}
    row.update(
        id=fact.case_id,
        ref=data["ref"],
        version=fact.version,
        found_on=data["on"],
        last_on=data["on"],
        recorded_us=fact.recorded_us,
        handlers=[],  # lists of its own: no row shares one with another
        referrals=[],
        measures=[],
        flags=[],
    )
    return row


def packed(row: Row) -> list[Any]:
    return list(row.values())


def unpacked(values: list[Any]) -> Row:
    return dict(zip(FIELDS, values, strict=True))


def apply(row: Row | None, fact: Fact) -> Row:
    """Fold one case event into its ledger row (a new dict; the old one is left as it was)."""
    if fact.kind == "SiteFound":
        return new_row(fact)
    if row is None:  # the read model's caller names the event and its position
        raise DomainError(f"案件的第一个事件是 {fact.kind}，不是发现（SiteFound）")
    new = _apply(row, fact)
    new["state"] = state(new)  # kept in the row: every reader needs it
    return new


def _apply(row: Row, fact: Fact) -> Row:
    d = fact.data
    on = d["on"]
    kind = fact.kind
    new = {**row, "version": fact.version, "recorded_us": fact.recorded_us}
    if kind == "SiteCorrected":
        new.update(_site(d))
        new["corrections"] = row["corrections"] + 1
        return new  # a correction fixes what was known: it is not a business milestone
    new["last_on"] = max(row["last_on"], on)
    if kind == "Stopped":
        new.update(stopped=True, stopped_on=on, order_no=d.get("order_no", ""))
        new["stop_outcome"] = d.get("outcome", "")
    elif kind == "Dismissed":
        new.update(dismissed=True, dismissed_on=on, dismiss_reason=d["reason"])
    elif kind == "CaseFiled":
        new.update(filed=True, filed_on=on, case_no=d["case_no"], filing_unit=d.get("unit", ""))
        new["handlers"] = list(d.get("handlers", ()))
    elif kind == "PenaltyDecided":
        new.update(decided=True, decided_on=on, decision_no=d["decision_no"])
        for f in ("fine_yuan", "confiscated_income_yuan", "demolish_m2", "confiscate_building_m2"):
            new[f] = cents(d.get(f, 0))
    elif kind == "Referred":
        persons = d.get("persons", 0)
        if type(persons) is not int or not 0 <= persons <= MAX_PERSONS:
            raise ValueError(f"persons out of range: {persons!r}")
        referral = [d["agency"], on, d.get("doc_no", ""), persons]
        new["referrals"] = [*row["referrals"], referral]
    elif kind == "RectificationOrdered":
        new.update(rectifying=True, ordered_on=on, measures=list(d["measures"]), due_on=d["due_on"])
    elif kind == "RectificationRecorded":
        new["rectifying"] = True
        for f in ("demolished_m2", "restored_m2", "fine_paid_yuan", "permit_area_m2"):
            new[f] = row[f] + cents(d.get(f, 0))
            if new[f] > MAX_CENTS:
                raise ValueError(f"{f} total out of range")
        new["permits"] = row["permits"] + (1 if d.get("permit_doc_no") else 0)
    elif kind == "RectificationCompleted":
        new.update(rectified=True, rectified_on=on)
    elif kind == "ClosedOut":
        new.update(closed_out=True, closed_on=on)
    elif kind == "Reopened":
        # The row shows the current cycle: what the reopening undid is blank again.
        new.update(closed_out=False, dismissed=False, rectified=False, reopened_on=on)
        new.update(dismissed_on=None, rectified_on=None, closed_on=None)
    elif kind == "Flagged":
        new["flags"] = [*row["flags"], d["kind"]]
    return new


# DomainError: an event before the case's SiteFound (`apply`), only in a damaged store.
FOLD_ERRORS = (KeyError, TypeError, ValueError, AssertionError, ArithmeticError, DomainError)


def fold(row: Row | None, fact: Fact, skipped: list[Fact] | None = None) -> Row | None:
    """`apply`, except that an event the read side cannot fold (a value out of range, stored
    before the domain checked it) leaves the row as it was, and is noted in `skipped`: one bad
    event must not stop every statistic, export and later catch-up. Every reader folds
    through here, so a rebuild and the incremental read model skip the same events."""
    try:
        return apply(row, fact)
    except FOLD_ERRORS:
        if skipped is not None:
            skipped.append(fact)
        return row


def state(row: Row) -> str:
    """The case's state, derived from its flags in DESIGN's order."""
    return derive_state(
        closed_out=row["closed_out"],
        dismissed=row["dismissed"],
        rectified=row["rectified"],
        rectifying=row["rectifying"],
        decided=row["decided"],
        filed=row["filed"],
        stopped=row["stopped"],
    )


def included(fact: Fact, row: Row | None, as_of: str | None, known_us: int | None) -> bool:
    """Whether a cutoff keeps this event. `as_of` keeps events whose business date is on or
    before it, but a correction fixes what was known, not what happened, so it applies at every
    business date; `known_us` keeps events recorded by then. The two combine."""
    if known_us is not None and fact.recorded_us > known_us:
        return False
    if row is None and fact.kind != "SiteFound":
        return False  # a correction of a case not yet found at the cutoff
    return as_of is None or fact.kind == "SiteCorrected" or fact.on <= as_of


def replay(
    facts: Iterable[Fact], *, as_of: str | None = None, known_us: int | None = None
) -> dict[str, Row]:
    """The ledger at a cutoff, folded in memory from the log."""
    rows: dict[str, Row] = {}
    for fact in facts:
        row = rows.get(fact.case_id)
        if included(fact, row, as_of, known_us):
            new = fold(row, fact)
            if new is not None:
                rows[fact.case_id] = new
    return rows


# Typed view ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Referral:
    agency: str
    on: date
    doc_no: str
    persons: int


@dataclass(frozen=True)
class LedgerRow:
    """A ledger row with typed values (Decimal, date), for exports and screens."""

    case: Case  # identity, current site facts, state flags
    last_on: date
    recorded_at: datetime
    stopped_on: date | None
    dismissed_on: date | None
    filed_on: date | None
    decided_on: date | None
    ordered_on: date | None
    rectified_on: date | None
    closed_on: date | None
    reopened_on: date | None
    order_no: str
    stop_outcome: str
    dismiss_reason: str
    case_no: str
    filing_unit: str
    handlers: tuple[str, ...]
    decision_no: str
    fine_yuan: Decimal
    confiscated_income_yuan: Decimal
    demolish_m2: Decimal
    confiscate_building_m2: Decimal
    referrals: tuple[Referral, ...]
    measures: tuple[str, ...]
    due_on: date | None
    demolished_m2: Decimal
    restored_m2: Decimal
    fine_paid_yuan: Decimal
    permits: int
    permit_area_m2: Decimal
    flags: tuple[str, ...]
    corrections: int
    data: Row = field(repr=False, compare=False)  # the row it was made from, for the rules

    @property
    def state(self) -> str:
        return self.case.state


_ZERO = Decimal("0.00")


def _hundredths(value: int) -> Decimal:
    return Decimal(value).scaleb(-2) if value else _ZERO  # most amounts are 0


def _converter(name: str) -> Callable[[Any], Any] | None:
    """How a field's JSON value becomes its typed value (None: it already is)."""
    if is_amount(name):
        return _hundredths
    if name.endswith("_on"):
        return date.fromisoformat
    if name in ("lon", "lat"):
        return lambda value: Decimal(str(value))
    if name in ("violation_types", "handlers", "measures", "flags"):
        return tuple
    return None


class FieldConversions:
    """Which fields a view copies as they are and which it converts."""

    def __init__(self, names: Iterable[str]) -> None:
        converters = {name: _converter(name) for name in names}
        self.plain = [name for name, convert in converters.items() if convert is None]
        self.converted = [(n, c) for n, c in converters.items() if c is not None]

    def typed(self, row: Row) -> dict[str, Any]:
        typed = {name: row.get(name) for name in self.plain}
        for name, convert in self.converted:
            value = row.get(name)
            typed[name] = None if value is None else convert(value)
        return typed


_OWN_FIELDS = [f for f in LedgerRow.__dataclass_fields__ if f not in ("case", "referrals", "data")]
_SITE_PLAN = FieldConversions(SITE_FIELDS)
_VIEW_PLAN = FieldConversions(f for f in _OWN_FIELDS if f != "recorded_at")


def view(row: Row) -> LedgerRow:
    """The typed LedgerRow of a ledger row."""
    found_on = date.fromisoformat(row["found_on"])
    site = _SITE_PLAN.typed(row)
    flags: dict[str, Any] = {f: row[f] for f in CASE_FLAGS}
    case = assembled(
        Case,
        {
            "id": UUID(row["id"]),
            "version": row["version"],
            "ref": row["ref"],
            "found_on": found_on,
            "site": unchecked(FindSite, {"ref": row["ref"], "on": found_on, **site}),
            **flags,
        },
    )
    us = row["recorded_us"]
    fields = _VIEW_PLAN.typed(row)
    fields["recorded_at"] = datetime.fromtimestamp(us // 1_000_000, UTC).replace(
        microsecond=us % 1_000_000
    )
    referrals = tuple(
        Referral(a, date.fromisoformat(on), doc, n) for a, on, doc, n in row["referrals"]
    )
    return assembled(LedgerRow, {"case": case, "referrals": referrals, "data": row, **fields})
