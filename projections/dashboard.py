"""What the dashboard's overview reads besides the statistics: sites found per week."""

from datetime import date, timedelta
from typing import Protocol


class Rows(Protocol):
    def rows(self, text: str, params: list[object] = ...) -> list[tuple[object, ...]]: ...


def found_per_week(db: Rows, until: date | None = None) -> list[tuple[date, int]]:
    """Cases found each week (weeks start on Monday), from the first week with a case to the
    week of `until` (or of the last case), empty weeks included."""
    by_day = db.rows("SELECT found_on, count(*) FROM rm_ledger GROUP BY found_on ORDER BY found_on")
    weeks: dict[date, int] = {}
    for day_text, count in by_day:
        day = date.fromisoformat(str(day_text))
        if until is not None and day > until:
            break
        monday = day - timedelta(days=day.weekday())
        weeks[monday] = weeks.get(monday, 0) + int(str(count))
    if not weeks:
        return []
    first = min(weeks)
    last = max(weeks)
    if until is not None:
        last = max(last, until - timedelta(days=until.weekday()))
    found = []
    week = first
    while week <= last:
        found.append((week, weeks.get(week, 0)))
        week += timedelta(days=7)
    return found
