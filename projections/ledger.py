"""The ledger (台账): one row per case, folded from its events by a pure function.

`apply(row, event) -> row` feeds both the persisted read model and an in-memory replay.
The case's state comes from the domain's own fold, so the two can never disagree.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from domain import case as case_rules
from domain import events as e
from domain.case import Case

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Referral:
    agency: str
    on: date
    doc_no: str
    persons: int


@dataclass(frozen=True, slots=True)
class LedgerRow:
    case: Case  # identity, current site facts, state flags
    last_on: date
    stopped_on: date | None = None
    dismissed_on: date | None = None
    filed_on: date | None = None
    decided_on: date | None = None
    ordered_on: date | None = None
    rectified_on: date | None = None
    closed_on: date | None = None
    reopened_on: date | None = None
    order_no: str = ""
    stop_outcome: str = ""
    dismiss_reason: str = ""
    case_no: str = ""
    handlers: tuple[str, ...] = ()
    decision_no: str = ""
    fine_yuan: Decimal = ZERO
    confiscated_income_yuan: Decimal = ZERO
    demolish_m2: Decimal = ZERO
    confiscate_building_m2: Decimal = ZERO
    referrals: tuple[Referral, ...] = ()
    measures: tuple[str, ...] = ()
    due_on: date | None = None  # of the latest rectification order
    demolished_m2: Decimal = ZERO
    restored_m2: Decimal = ZERO
    fine_paid_yuan: Decimal = ZERO
    permits: int = 0  # rectification records carrying a permit_doc_no
    permit_area_m2: Decimal = ZERO
    flags: tuple[str, ...] = ()
    corrections: int = 0
    recorded_at: datetime | None = None  # when the latest event was recorded

    @property
    def state(self) -> str:
        return self.case.state


def apply(row: LedgerRow | None, event: e.CaseEvent) -> LedgerRow:
    """Fold one event into a case's ledger row."""
    case = case_rules.mutate(row.case if row else None, event)
    if row is None:
        return LedgerRow(case=case, last_on=event.on, recorded_at=event.timestamp)
    row = replace(row, case=case, last_on=max(row.last_on, event.on), recorded_at=event.timestamp)
    match event:
        case e.SiteCorrected():
            return replace(row, corrections=row.corrections + 1)
        case e.Stopped():
            return replace(
                row, stopped_on=event.on, order_no=event.order_no, stop_outcome=event.outcome
            )
        case e.Dismissed():
            return replace(row, dismissed_on=event.on, dismiss_reason=event.reason)
        case e.CaseFiled():
            return replace(row, filed_on=event.on, case_no=event.case_no, handlers=event.handlers)
        case e.PenaltyDecided():
            return replace(
                row,
                decided_on=event.on,
                decision_no=event.decision_no,
                fine_yuan=event.fine_yuan,
                confiscated_income_yuan=event.confiscated_income_yuan,
                demolish_m2=event.demolish_m2,
                confiscate_building_m2=event.confiscate_building_m2,
            )
        case e.Referred():
            referral = Referral(event.agency, event.on, event.doc_no, event.persons)
            return replace(row, referrals=(*row.referrals, referral))
        case e.RectificationOrdered():
            return replace(row, ordered_on=event.on, measures=event.measures, due_on=event.due_on)
        case e.RectificationRecorded():
            return replace(
                row,
                demolished_m2=row.demolished_m2 + event.demolished_m2,
                restored_m2=row.restored_m2 + event.restored_m2,
                fine_paid_yuan=row.fine_paid_yuan + event.fine_paid_yuan,
                permits=row.permits + (1 if event.permit_doc_no else 0),
                permit_area_m2=row.permit_area_m2 + event.permit_area_m2,
            )
        case e.RectificationCompleted():
            return replace(row, rectified_on=event.on)
        case e.ClosedOut():
            return replace(row, closed_on=event.on)
        case e.Reopened():
            # The row shows the current cycle: the dates the reopening undid are blank again.
            return replace(
                row, reopened_on=event.on, dismissed_on=None, rectified_on=None, closed_on=None
            )
        case e.Flagged():
            return replace(row, flags=(*row.flags, event.kind))
    return row


def replay(
    events: Iterable[e.Event], *, as_of: date | None = None, known_at: datetime | None = None
) -> dict[UUID, LedgerRow]:
    """The ledger at a cutoff, folded in memory.

    `as_of` keeps the events whose business date is on or before it; a correction fixes what was
    known, not what happened, so it applies at every business date. `known_at` keeps the events
    recorded by then. The two combine.
    """
    rows: dict[UUID, LedgerRow] = {}
    for event in events:
        if not isinstance(event, e.CaseEvent):
            continue
        if known_at is not None and event.timestamp > known_at:
            continue
        row = rows.get(event.originator_id)
        if as_of is not None and event.on > as_of and not isinstance(event, e.SiteCorrected):
            continue
        if row is None and not isinstance(event, e.SiteFound):
            continue  # a correction of a case not yet found at the cutoff
        rows[event.originator_id] = apply(row, event)
    return rows
