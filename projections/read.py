"""The read API the interfaces use: the ledger and the statistics at a cutoff."""

from datetime import date, datetime
from typing import Any

from domain.service import LandLedger
from domain.values import china_today
from projections.ledger import LedgerRow, replay
from projections.stats import statistics


class Reader:
    def __init__(self, app: LandLedger) -> None:
        self.app = app

    def ledger(
        self, *, as_of: date | None = None, known_at: datetime | None = None
    ) -> list[LedgerRow]:
        """Every case at the cutoff, in the campaign's township order, then by ref."""
        rows = replay(self.app.all_events(), as_of=as_of, known_at=known_at).values()
        order = {name: i for i, name in enumerate(self.app.campaign().config.townships)}
        return sorted(rows, key=lambda r: (order.get(r.case.site.township, len(order)), r.case.ref))

    def stats(
        self,
        *,
        by: str = "township",
        as_of: date | None = None,
        known_at: datetime | None = None,
    ) -> dict[str, Any]:
        return statistics(
            self.ledger(as_of=as_of, known_at=known_at),
            by=by,
            cutoff=as_of or china_today(),
            config=self.app.campaign().config,
            as_of=as_of,
            known_at=known_at,
        )
