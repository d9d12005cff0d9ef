"""Statistics measures, exactly as DESIGN defines them, over ledger rows at a cutoff."""

from collections.abc import Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from domain.case import CLOSED_OUT, DISMISSED, RECTIFIED
from domain.events import AlertSettings, CampaignConfig
from domain.values import VIOLATION_TYPES, m2_to_mu, two_places
from projections.ledger import LedgerRow

By = Literal["township", "unit", "violation_type", "month"]
BY_CHOICES: tuple[str, ...] = ("township", "unit", "violation_type", "month")

COUNTS = (
    "found",
    "dismissed",
    "violations",
    "major_hazards",
    "major_hazards_rectified",
    "stopped",
    "filed",
    "decided",
    "referred_police",
    "referred_police_persons",
    "referred_discipline",
    "referred_discipline_persons",
    "referred_other",
    "permits",
    "rectified",
    "closed_out",
    "open",
    "overdue",
    "over_crime_threshold_unreferred",
)
AMOUNTS = (
    "area_m2",
    "cultivated_m2",
    "basic_farmland_m2",
    "eco_redline_m2",
    "fines_decided_yuan",
    "fines_paid_yuan",
    "demolished_m2",
    "restored_m2",
)
MEASURES = (*COUNTS[:3], *AMOUNTS[:4], *COUNTS[3:], *AMOUNTS[4:], "rectification_rate")


def over_crime_threshold(row: LedgerRow, alerts: AlertSettings) -> bool:
    """基本农田 ≥ 5 亩, or other 耕地 ≥ 10 亩: the difference is taken in ㎡, then each side is
    converted to 亩 and rounded half-up to two places before comparing."""
    site = row.case.site
    basic = m2_to_mu(site.basic_farmland_m2)
    other = m2_to_mu(site.cultivated_m2 - site.basic_farmland_m2)
    return basic >= alerts.crime_basic_farmland_mu or other >= alerts.crime_other_cultivated_mu


def is_overdue(row: LedgerRow, cutoff: date) -> bool:
    return (
        row.due_on is not None and row.due_on < cutoff and row.state not in (RECTIFIED, CLOSED_OUT)
    )


def case_measures(row: LedgerRow, cutoff: date, alerts: AlertSettings) -> dict[str, Any]:
    """One case's contribution to every measure."""
    if row.state == DISMISSED:
        return {"found": 1, "dismissed": 1}
    site = row.case.site
    agencies = {r.agency for r in row.referrals}
    rectified = row.state in (RECTIFIED, CLOSED_OUT)
    return {
        "found": 1,
        "violations": 1,
        "area_m2": site.area_m2,
        "cultivated_m2": site.cultivated_m2,
        "basic_farmland_m2": site.basic_farmland_m2,
        "eco_redline_m2": site.eco_redline_m2,
        "major_hazards": int(site.major_hazard),
        "major_hazards_rectified": int(site.major_hazard and rectified),
        "stopped": int(row.case.stopped),
        "filed": int(row.case.filed),
        "decided": int(row.case.decided),
        "fines_decided_yuan": row.fine_yuan + row.confiscated_income_yuan,
        "fines_paid_yuan": row.fine_paid_yuan,
        "demolished_m2": row.demolished_m2,
        "restored_m2": row.restored_m2,
        "referred_police": int("公安" in agencies),
        "referred_police_persons": sum(r.persons for r in row.referrals if r.agency == "公安"),
        "referred_discipline": int("纪检监察" in agencies),
        "referred_discipline_persons": sum(
            r.persons for r in row.referrals if r.agency == "纪检监察"
        ),
        "referred_other": int(bool(agencies - {"公安", "纪检监察"})),
        "permits": int(row.permits > 0),
        "rectified": int(rectified),
        "closed_out": int(row.state == CLOSED_OUT),
        "overdue": int(is_overdue(row, cutoff)),
        "over_crime_threshold_unreferred": int(
            "公安" not in agencies and over_crime_threshold(row, alerts)
        ),
    }


def group_keys(row: LedgerRow, by: str) -> tuple[str, ...]:
    site = row.case.site
    if by == "township":
        return (site.township,)
    if by == "unit":
        return (site.unit,)
    if by == "violation_type":
        return tuple(dict.fromkeys(site.violation_types))
    return (row.case.found_on.strftime("%Y-%m"),)


def _months(rows: list[LedgerRow]) -> list[str]:
    if not rows:
        return []
    first = min(r.case.found_on for r in rows)
    last = max(r.case.found_on for r in rows)
    months, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def statistics(
    rows: Iterable[LedgerRow],
    *,
    by: str,
    cutoff: date,
    config: CampaignConfig,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> dict[str, Any]:
    """`stats --json`: every measure by group (official order, empty groups too) and in total."""
    rows = list(rows)
    keys = {
        "township": list(config.townships),
        "unit": list(config.units),
        "violation_type": list(VIOLATION_TYPES),
    }.get(by) or _months(rows)
    sums: dict[str, dict[str, Any]] = {key: {} for key in keys}
    total: dict[str, Any] = {}
    for row in rows:
        contribution = case_measures(row, cutoff, config.alerts)
        for key in group_keys(row, by):
            _add(sums.setdefault(key, {}), contribution)
        _add(total, contribution)
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "known_at": known_at.isoformat() if known_at else None,
        "by": by,
        "groups": [{"key": key, **_format(sums[key])} for key in sums],
        "total": _format(total),
    }


def _add(into: dict[str, Any], contribution: dict[str, Any]) -> None:
    for name, value in contribution.items():
        into[name] = into.get(name, 0) + value


def _format(sums: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in MEASURES:
        if name in AMOUNTS:
            out[name] = two_places(Decimal(sums.get(name, 0)))
        elif name == "rectification_rate":
            violations = sums.get("violations", 0)
            rate = Decimal(sums.get("rectified", 0)) / violations if violations else Decimal(0)
            out[name] = str(rate.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
        elif name == "open":
            out[name] = sums.get("violations", 0) - sums.get("closed_out", 0)
        else:
            out[name] = int(sums.get(name, 0))
    return out
