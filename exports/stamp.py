"""The stamp every export carries: its cutoff and the store's fingerprint.

The fingerprint is read before the data, so an export never claims less history than it shows;
an auditor compares it later with the first line of a fresh `landledger export events` (or
another export's stamp): the same fingerprint, the same history.
"""

from dataclasses import dataclass
from datetime import date, datetime

from domain.values import CHINA
from storage.store import EventStore


@dataclass(frozen=True)
class Stamp:
    as_of: date | None
    known_at: datetime | None
    fingerprint: str
    made_at: datetime  # China time

    @property
    def cutoff(self) -> date:
        """The business date the numbers are as of: --as-of, or the day of the export."""
        return self.as_of or self.made_at.date()

    def cutoff_text(self) -> str:
        d = self.cutoff
        return f"{d.year}年{d.month}月{d.day}日"

    def line(self) -> str:
        """One line for a sheet's subtitle or footer."""
        parts = [f"截至 {self.cutoff.isoformat()}"]
        if self.known_at is not None:
            parts.append(
                f"记录截至 {self.known_at.astimezone(CHINA).isoformat(timespec='seconds')}"
            )
        parts.append(f"数据指纹 {self.fingerprint}")
        parts.append(f"导出于 {self.made_at.strftime('%Y-%m-%d %H:%M')}")
        return "；".join(parts)

    def properties(self) -> dict[str, str]:
        """Document properties (File → Properties in Excel/WPS)."""
        found = {
            "截至日期": self.cutoff.isoformat(),
            "数据指纹": self.fingerprint,
            "导出时间": self.made_at.isoformat(timespec="seconds"),
        }
        if self.known_at is not None:
            found["记录截至"] = self.known_at.astimezone(CHINA).isoformat(timespec="seconds")
        return found


def stamp(app: EventStore, as_of: date | None, known_at: datetime | None) -> Stamp:
    made_at = datetime.now(CHINA)
    return Stamp(as_of=as_of, known_at=known_at, fingerprint=app.fingerprint(), made_at=made_at)
