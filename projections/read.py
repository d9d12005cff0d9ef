"""The read API the interfaces use: the ledger and the statistics, now or at a cutoff."""

from datetime import date, datetime
from typing import Any

from domain.service import LandLedger
from projections.ledger import LedgerRow, replay, us_of, view
from projections.store import ReadModel, all_facts


class Reader:
    """Catches the read model up with the log once, then answers from it."""

    def __init__(self, app: LandLedger) -> None:
        self.app = app
        self.model = ReadModel(app)
        self.model.catch_up()

    def ledger(
        self, *, as_of: date | None = None, known_at: datetime | None = None
    ) -> list[LedgerRow]:
        """Every case, in the campaign's township order, then by ref. At a cutoff the ledger is
        folded again from the log (the statistics at a cutoff need no such replay)."""
        if as_of is None and known_at is None:
            return [view(row) for row in self.model.ledger_rows()]
        rows = replay(
            all_facts(self.app),
            as_of=as_of.isoformat() if as_of else None,
            known_us=us_of(known_at) if known_at else None,
        ).values()
        place = self.model.place
        return [view(r) for r in sorted(rows, key=lambda r: (place[r["township"]], r["ref"]))]

    def stats(
        self,
        *,
        by: str = "township",
        as_of: date | None = None,
        known_at: datetime | None = None,
    ) -> dict[str, Any]:
        return self.model.stats(by=by, as_of=as_of, known_at=known_at)
