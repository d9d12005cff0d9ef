"""DESIGN's derived alerts as queries over the current ledger (rm_ledger)."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from domain.campaign import Campaign
from domain.case import CLOSED_OUT, DISMISSED, FOUND, RECTIFIED
from domain.events import CampaignConfig
from projections.database import Database


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
        late_filing = (today - timedelta(days=decision_days)).isoformat()
        open_states = f"state NOT IN ('{CLOSED_OUT}', '{DISMISSED}')"
        found: list[Alert] = [
            self._alert(
                "overdue", "整改逾期未到位", "pending_due < ?", [today.isoformat()], listed
            ),
            self._alert("crime", "达到刑事追诉标准未移送公安", "crime = 1", [], listed),
            self._alert(
                "decision",
                f"立案超过{decision_days}日未作出处罚决定",
                f"filed_on < ? AND decided = 0 AND {open_states}",
                [late_filing],
                listed,
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
                found.append(
                    self._alert(
                        f"phase:{phase.key}",
                        title + "：发现后尚未处置",
                        f"state = '{FOUND}'",
                        [],
                        listed,
                    )
                )
            elif phase.checks == "rectified":
                not_done = f"state NOT IN ('{RECTIFIED}', '{CLOSED_OUT}', '{DISMISSED}')"
                found.append(
                    self._alert(f"phase:{phase.key}", title + "：未整改到位", not_done, [], listed)
                )
        return found

    def _alert(self, kind: str, title: str, where: str, params: list[Any], listed: int) -> Alert:
        count = self.db.rows(f"SELECT count(*) FROM rm_ledger WHERE {where}", params)[0][0]
        refs = self.db.rows(
            f"SELECT ref FROM rm_ledger WHERE {where} ORDER BY place, ref LIMIT ?",
            [*params, listed],
        )
        return Alert(kind, title, int(count), [ref for (ref,) in refs])
