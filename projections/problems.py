"""The problem list (问题清单): open items with the next step missing, days overdue and alerts.

Pure functions over ledger rows at a cutoff, like the statistics; the overdue and crime-threshold
rules are the statistics' own (`is_overdue`, `over_crime_threshold`), so the two never disagree.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from domain.case import (
    CLOSED_OUT,
    DECIDED,
    DISMISSED,
    FILED,
    FOUND,
    RECTIFIED,
    RECTIFYING,
    STOPPED,
)
from domain.events import CampaignConfig
from projections.ledger import LedgerRow
from projections.stats import is_overdue, over_crime_threshold

# The step a case in each state is waiting for.
NEXT_STEP = {
    FOUND: "制止或立案查处",
    STOPPED: "立案查处或下达整改要求",
    FILED: "作出处罚决定",
    DECIDED: "下达整改要求",
    RECTIFYING: "整改到位",
    RECTIFIED: "对账销号",
}


@dataclass(frozen=True, slots=True)
class Problem:
    row: LedgerRow
    next_step: str
    days_overdue: int  # 0 when not overdue
    alerts: tuple[str, ...]


def is_open(row: LedgerRow) -> bool:
    """An open item: a violation not yet closed out (dismissed cases are not violations)."""
    return row.state not in (CLOSED_OUT, DISMISSED)


def days_overdue(row: LedgerRow, cutoff: date) -> int:
    """Days past the latest rectification deadline, by the statistics' overdue rule."""
    if not is_overdue(row, cutoff) or row.due_on is None:
        return 0
    return (cutoff - row.due_on).days


def next_step(row: LedgerRow, config: CampaignConfig) -> str:
    if over_crime_threshold(row, config.alerts) and not _referred_police(row):
        return "移送公安（达到刑事立案标准）；" + NEXT_STEP.get(row.state, "")
    if row.state == RECTIFYING and row.due_on is None:
        return "明确整改期限"
    return NEXT_STEP.get(row.state, "")


def alerts(
    row: LedgerRow, cutoff: date, config: CampaignConfig, deadlines: dict[str, date]
) -> tuple[str, ...]:
    found: list[str] = []
    if over_crime_threshold(row, config.alerts) and not _referred_police(row):
        found.append("达标未移送公安")
    overdue = days_overdue(row, cutoff)
    if overdue:
        found.append(f"整改逾期{overdue}天")
    limit = config.alerts.decision_days
    if (
        row.filed_on is not None
        and not row.case.decided
        and row.filed_on + timedelta(days=limit) < cutoff
    ):
        found.append(f"立案超{limit}日未处罚")
    for phase in config.phases:
        if phase.checks != "rectified":  # the other phases' alerts are not about one case
            continue
        due = deadlines.get(phase.key, phase.due_on)
        if due < cutoff and row.state not in (RECTIFIED, CLOSED_OUT):
            short_name = phase.name.partition("：")[0]  # 集中整治：发现问题查处整改到位
            found.append(f"{short_name}期限{due.isoformat()}已过未整改到位")
    return tuple(found)


def problems(
    rows: Iterable[LedgerRow], cutoff: date, config: CampaignConfig, deadlines: dict[str, date]
) -> list[Problem]:
    """Open items in the rows' order (the ledger's: official township order, then ref)."""
    return [
        Problem(
            row=row,
            next_step=next_step(row, config),
            days_overdue=days_overdue(row, cutoff),
            alerts=alerts(row, cutoff, config, deadlines),
        )
        for row in rows
        if is_open(row)
    ]


def _referred_police(row: LedgerRow) -> bool:
    return any(r.agency == "公安" for r in row.referrals)
