"""The read API the interfaces use: the ledger and the statistics, now or at a cutoff."""

from collections.abc import Collection, Iterable, Iterator
from datetime import date, datetime
from typing import Any

from projections.facts import all_facts
from projections.ledger import LedgerRow, replay, us_of, view
from projections.readmodel import ReadModel
from storage.store import EventStore


class CurrentLedger(Collection[LedgerRow]):
    """The current ledger as a sized collection whose rows are read and typed page by page
    while a consumer (an export) goes through them: memory stays flat at any scale."""

    def __init__(self, model: ReadModel) -> None:
        self.model = model

    def __len__(self) -> int:
        return self.model.ledger_count()

    def __iter__(self) -> Iterator[LedgerRow]:
        return (view(row) for row in self.model.ledger_rows())

    def __contains__(self, item: object) -> bool:
        return any(row == item for row in self)


class Reader:
    """Answers from a read model (caught up with the log when made, unless one is given: then
    its owner keeps it caught up)."""

    def __init__(self, app: EventStore, model: ReadModel | None = None) -> None:
        self.app = app
        if model is None:
            model = ReadModel(app)
            model.catch_up()
        self.model = model

    def ledger(
        self, *, as_of: date | None = None, known_at: datetime | None = None
    ) -> Collection[LedgerRow]:
        """Every case, in the campaign's township order, then by ref. At a cutoff the ledger is
        folded again from the log (the statistics at a cutoff need no such replay)."""
        if as_of is None and known_at is None:
            return CurrentLedger(self.model)
        rows = replay(
            all_facts(self.app),
            as_of=as_of.isoformat() if as_of else None,
            known_us=us_of(known_at) if known_at else None,
        ).values()
        place = self.model.place
        return [view(r) for r in sorted(rows, key=lambda r: (place[r["township"]], r["ref"]))]

    def rows(self, refs: Iterable[str]) -> list[LedgerRow]:
        """The current rows of these cases (those that exist)."""
        return [view(row) for row in self.model.ledger_rows(refs)]

    def stats(
        self,
        *,
        by: str = "township",
        as_of: date | None = None,
        known_at: datetime | None = None,
    ) -> dict[str, Any]:
        return self.model.stats(by=by, as_of=as_of, known_at=known_at)
