"""Statistics measures, exactly as DESIGN defines them.

Each case contributes a fixed vector of integers (counts, and amounts in hundredths) to the
groups it belongs to; a group's measures are the sums, plus `open`, `overdue` and the rate,
which are derived at the cutoff. The same vectors feed the persisted statistics, the per-version
table behind as-of queries, and the in-memory computation.
"""

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from domain.case import CLOSED_OUT, DISMISSED, RECTIFIED
from domain.events import AlertSettings, CampaignConfig
from domain.values import VIOLATION_TYPES
from projections.ledger import LedgerRow, Row

# The measures a case adds to its groups, in this order.
SUMMED = (
    "found",
    "dismissed",
    "violations",
    "area_m2",
    "cultivated_m2",
    "basic_farmland_m2",
    "eco_redline_m2",
    "major_hazards",
    "major_hazards_rectified",
    "stopped",
    "filed",
    "decided",
    "fines_decided_yuan",
    "fines_paid_yuan",
    "demolished_m2",
    "restored_m2",
    "referred_police",
    "referred_police_persons",
    "referred_discipline",
    "referred_discipline_persons",
    "referred_other",
    "permits",
    "rectified",
    "closed_out",
    "over_crime_threshold_unreferred",
)
AMOUNTS = frozenset(m for m in SUMMED if m.endswith(("_m2", "_yuan")))
# The JSON keys of `stats --json`, in DESIGN's order.
MEASURES = (
    *SUMMED[:-3],
    "rectified",
    "closed_out",
    "open",
    "overdue",
    SUMMED[-1],
    "rectification_rate",
)
ZEROS = (0,) * len(SUMMED)


def mu_hundredths(m2_hundredths: int) -> int:
    """Hundredths of ㎡ → hundredths of 亩, rounded half-up: ㎡ × 15 / 10000 = 1/100 ㎡ × 3 / 2000.
    The same rounding as domain.values.m2_to_mu, in integers (3333.33 ㎡ → 500, i.e. 5.00 亩)."""
    return (m2_hundredths * 3 + 1000) // 2000


def over_crime_threshold(row: Row | LedgerRow, alerts: AlertSettings) -> bool:
    """基本农田 ≥ 5 亩, or other 耕地 ≥ 10 亩: the difference is taken exactly in ㎡, then each
    side is converted to 亩 and rounded half-up to two places before comparing."""
    row = row.data if isinstance(row, LedgerRow) else row
    basic = mu_hundredths(row["basic_farmland_m2"])
    other = mu_hundredths(row["cultivated_m2"] - row["basic_farmland_m2"])
    return (
        basic >= alerts.crime_basic_farmland_mu * 100
        or other >= alerts.crime_other_cultivated_mu * 100
    )


def contribution(row: Row, alerts: AlertSettings) -> tuple[int, ...]:
    """The case's vector over SUMMED; every measure but found/dismissed counts violations only."""
    current = row["state"]
    if current == DISMISSED:
        return (1, 1, *ZEROS[2:])
    referrals = row["referrals"]
    agencies = {r[0] for r in referrals} if referrals else set()
    police = "公安" in agencies
    discipline = "纪检监察" in agencies
    rectified = current in (RECTIFIED, CLOSED_OUT)
    hazard = bool(row["major_hazard"])
    return (
        1,
        0,
        1,
        row["area_m2"],
        row["cultivated_m2"],
        row["basic_farmland_m2"],
        row["eco_redline_m2"],
        int(hazard),
        int(hazard and rectified),
        int(row["stopped"]),
        int(row["filed"]),
        int(row["decided"]),
        row["fine_yuan"] + row["confiscated_income_yuan"],
        row["fine_paid_yuan"],
        row["demolished_m2"],
        row["restored_m2"],
        int(police),
        sum(r[3] for r in referrals if r[0] == "公安") if police else 0,
        int(discipline),
        sum(r[3] for r in referrals if r[0] == "纪检监察") if discipline else 0,
        int(len(agencies) > police + discipline),
        int(row["permits"] > 0),
        int(rectified),
        int(current == CLOSED_OUT),
        int(not police and over_crime_threshold(row, alerts)),
    )


def is_overdue(row: Row | LedgerRow, cutoff: date) -> bool:
    """Rectification due strictly before the cutoff and not rectified (violations only)."""
    due = pending_due(row.data if isinstance(row, LedgerRow) else row)
    return due is not None and due < cutoff.isoformat()


def pending_due(row: Row) -> str | None:
    """The due date that makes the case overdue once passed: violations not yet rectified."""
    if row["due_on"] is None or row["state"] in (DISMISSED, RECTIFIED, CLOSED_OUT):
        return None
    return str(row["due_on"])


def group_keys(row: Row, by: str) -> Sequence[str]:
    if by == "violation_type":
        return list(dict.fromkeys(row["violation_types"]))
    if by == "month":
        return (row["found_on"][:7],)
    return (row[by],)


def group_order(by: str, config: CampaignConfig, months: Iterable[str]) -> list[str]:
    """Official order from the data file (or DESIGN's enum); months from first to last."""
    if by == "township":
        return list(config.townships)
    if by == "unit":
        return list(config.units)
    if by == "violation_type":
        return list(VIOLATION_TYPES)
    present = sorted(months)
    if not present:
        return []
    (year, month), last = map(int, present[0].split("-")), present[-1]
    keys = []
    while f"{year:04d}-{month:02d}" <= last:
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def add(into: list[int], vector: Sequence[int], sign: int = 1) -> None:
    for i, value in enumerate(vector):
        into[i] += sign * value


def measures(sums: Sequence[int], overdue: int) -> dict[str, Any]:
    """One group's JSON: counts as integers, amounts as two-place strings, the rate with four."""
    named = dict(zip(SUMMED, sums, strict=True))
    named["open"] = named["violations"] - named["closed_out"]
    named["overdue"] = overdue
    out: dict[str, Any] = {}
    for name in MEASURES:
        if name in AMOUNTS:
            out[name] = str(Decimal(named[name]).scaleb(-2).quantize(Decimal("0.01")))
        elif name == "rectification_rate":
            v = named["violations"]
            rate = Decimal(named["rectified"]) / v if v else Decimal(0)
            out[name] = str(rate.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))
        else:
            out[name] = int(named[name])
    return out


def document(
    by: str,
    order: list[str],
    groups: dict[str, tuple[Sequence[int], int]],
    total: tuple[Sequence[int], int],
    as_of: date | None,
    known_at: datetime | None,
) -> dict[str, Any]:
    """`stats --json`: {"as_of", "known_at", "by", "groups": [...], "total": {...}}."""
    empty = (ZEROS, 0)
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "known_at": known_at.isoformat() if known_at else None,
        "by": by,
        "groups": [{"key": key, **measures(*groups.get(key, empty))} for key in order],
        "total": measures(*total),
    }


def statistics(
    rows: Iterable[Row],
    *,
    by: str,
    cutoff: date,
    config: CampaignConfig,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> dict[str, Any]:
    """The statistics computed in memory from ledger rows (the reference the SQL must equal)."""
    day = cutoff.isoformat()
    sums: dict[str, list[int]] = {}
    overdue: dict[str, int] = {}
    total, total_overdue = list(ZEROS), 0
    for row in rows:
        vector = contribution(row, config.alerts)
        due = pending_due(row)
        late = int(due is not None and due < day)
        for key in group_keys(row, by):
            add(sums.setdefault(key, list(ZEROS)), vector)
            overdue[key] = overdue.get(key, 0) + late
        add(total, vector)
        total_overdue += late
    order = group_order(by, config, sums)
    groups: dict[str, tuple[Sequence[int], int]] = {k: (sums[k], overdue[k]) for k in sums}
    return document(by, order, groups, (total, total_overdue), as_of, known_at)
