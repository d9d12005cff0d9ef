"""DESIGN's derived alerts as queries over the current ledger (rm_ledger), and the case alerts'
conditions the dashboard's ledger filters by (projections.ledger_query)."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain.campaign import Campaign
from domain.case import CLOSED_OUT, DISMISSED, FOUND, RECTIFIED
from domain.events import CampaignConfig
from projections.database import Database

# The case alerts as conditions over rm_ledger: the one definition ReadModel.alerts and the
# dashboard's alert filter share. "supervised" (挂牌督办) is a flag, not among alerts() yet.
CASE_ALERTS = ("overdue", "crime", "decision", "supervised", "phase:survey", "phase:rectify")
OPEN_STATES = f"state NOT IN ('{CLOSED_OUT}', '{DISMISSED}')"
NOT_RECTIFIED = f"state NOT IN ('{RECTIFIED}', '{CLOSED_OUT}', '{DISMISSED}')"
# The case condition of a phase's alert, by what the phase checks (Phase.checks); the
# dashboard's phase filters are the data file's phases of those checks.
PHASE_CHECK_WHERE = {"found": f"state = '{FOUND}'", "rectified": NOT_RECTIFIED}
PHASE_CHECKS = {"phase:survey": "found", "phase:rectify": "rectified"}


def alert_where(kind: str, today: date, decision_days: int) -> tuple[str, list[Any]]:
    """The WHERE condition (and its parameters) of a case alert on `today`."""
    if kind == "overdue":
        return "pending_due < ?", [today.isoformat()]
    if kind == "crime":
        return "crime = 1", []
    if kind == "decision":
        late_filing = (today - timedelta(days=decision_days)).isoformat()
        return f"filed_on < ? AND decided = 0 AND {OPEN_STATES}", [late_filing]
    if kind == "supervised":
        return "supervised = 1", []
    if kind in PHASE_CHECKS:
        return PHASE_CHECK_WHERE[PHASE_CHECKS[kind]], []
    raise ValueError(f"unknown alert {kind!r}")


@dataclass(frozen=True)
class Alert:
    kind: str  # overdue, crime, decision, phase:<key>
    title: str
    count: int
    first: list[str]  # the first refs (or units), in official order


class AlertQueries:
    """The alerts' part of the read model (mixed into ReadModel)."""

    config: CampaignConfig
    db: Database

    def alerts(self, today: date, campaign: Campaign, *, listed: int = 20) -> list[Alert]:
        """DESIGN's derived alerts, as queries over the current ledger: each with how many cases
        (or units) it concerns and the first refs, in official order."""
        decision_days = self.config.alerts.decision_days

        def where(kind: str) -> tuple[str, list[Any]]:
            return alert_where(kind, today, decision_days)

        found: list[Alert] = [
            self._alert("overdue", "整改逾期未到位", *where("overdue"), listed),
            self._alert("crime", "达到刑事追诉标准未移送公安", *where("crime"), listed),
            self._alert(
                "decision", f"立案超过{decision_days}日未作出处罚决定", *where("decision"), listed
            ),
        ]
        for phase in self.config.phases:
            due = campaign.deadlines.get(phase.key, phase.due_on)
            if due >= today:
                continue
            title = f"{phase.name}（{due} 到期）"
            if phase.checks == "contacts":
                missing = [u for u in self.config.units if u not in campaign.contacts]
                found.append(
                    Alert(
                        f"phase:{phase.key}",
                        title + "：未报联络人的单位",
                        len(missing),
                        missing[:listed],
                    )
                )
            elif phase.checks == "found":
                kind, condition = f"phase:{phase.key}", PHASE_CHECK_WHERE["found"]
                found.append(self._alert(kind, title + "：发现后尚未处置", condition, [], listed))
            elif phase.checks == "rectified":
                kind, condition = f"phase:{phase.key}", PHASE_CHECK_WHERE["rectified"]
                found.append(self._alert(kind, title + "：未整改到位", condition, [], listed))
        return found

    def _alert(self, kind: str, title: str, where: str, params: list[Any], listed: int) -> Alert:
        count = self.db.rows(f"SELECT count(*) FROM rm_ledger WHERE {where}", params)[0][0]
        refs = self.db.rows(
            f"SELECT ref FROM rm_ledger WHERE {where} ORDER BY place, ref LIMIT ?",
            [*params, listed],
        )
        return Alert(kind, title, int(count), [ref for (ref,) in refs])
