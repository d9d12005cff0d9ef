"""The stamp every export carries: its cutoff and the store's fingerprint.

The fingerprint `N:HASH` (storage/chain.py) is read before the data, so an export never claims
less history than it shows (the events export stops at its N-th event); an auditor checks it
later with `landledger verify --fingerprint N:HASH`, or recomputes it from the events export
alone with `tools/fingerprint.py`.
"""

from dataclasses import dataclass
from datetime import date, datetime

from domain.values import CHINA
from storage.store import EventStore


@dataclass(frozen=True)
class Stamp:
    as_of: date | None
    known_at: datetime | None
    fingerprint: str  # N:HASH, the count of events and the hash chain's head
    made_at: datetime  # China time
    head_position: int = 0  # the position of the fingerprint's last event

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

    def footer(self) -> str:
        """The printed page footer: the stamp on the left, the page on the right, in 8 pt (at
        11 pt the stamp ran into the page number)."""
        return f"&L&8{self.line()}&R&8第 &P 页，共 &N 页"

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
    position, n, link = app.chain_head()
    return Stamp(
        as_of=as_of,
        known_at=known_at,
        fingerprint=f"{n}:{link.hex()}",
        made_at=made_at,
        head_position=position,
    )
