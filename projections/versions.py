"""The as-of and known-at version rows of the read model (rm_versions).

Per case, rows of its statistics vector, each valid from a business date and a recorded time
until both the next version's date and time are reached, or until it is closed; statistics at a
cutoff are then one filtered scan (`_at`). See `_advance` for how a new event changes them."""

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from operator import add
from typing import Any, cast

from domain.errors import DomainError
from domain.events import CampaignConfig
from domain.values import VIOLATION_TYPES
from projections import stats
from projections.database import Database
from projections.facts import facts_of
from projections.ledger import Fact, Row, fold, included
from storage.sqlite import LedgerRecorder
from storage.store import EventStore

NEVER = 2**62  # "not yet": an open end of business dates or recorded times


@lru_cache(maxsize=8192)
def day_number(iso: str) -> int:
    """'2022-02-28' → 20220228: comparable as an integer."""
    return int(iso[:4]) * 10000 + int(iso[5:7]) * 100 + int(iso[8:10])


_SPLIT = [m in stats.AMOUNTS for m in stats.SUMMED]


def _joined(values: Sequence[Any]) -> list[int]:
    """A row of `_at`'s sums on SQLite (each amount as its high and low 32 bits) → the sums."""
    figures, position = [], 0
    for split in _SPLIT:
        if split:
            high, low = values[position : position + 2]
            figures.append(int(high or 0) * 2**32 + int(low or 0))
            position += 2
        else:
            figures.append(int(values[position] or 0))
            position += 1
    figures += [int(v or 0) for v in values[position:]]  # the overdue count
    return figures


@lru_cache(maxsize=256)
def _bits(violation_types: tuple[str, ...]) -> int:
    return sum(1 << VIOLATION_TYPES.index(v) for v in set(violation_types))


class CaseInTransaction:
    """A case while a transaction works on it: its row and vector before and now, its live
    version ids, and its newest version row while that may still change (so most version rows
    are written once, and the statistics change once per case per transaction)."""

    __slots__ = ("before", "live", "pending", "row", "vector")

    def __init__(self, row: Row | None, vector: tuple[int, ...], live: list[int]) -> None:
        self.before = (row, vector) if row is not None else None
        self.row: Row = row or {}
        self.vector, self.live = vector, live
        self.pending: list[Any] | None = None


# Positions within a version row (see projections.database.Database.tables: rm_versions).
_ON_FROM, _KNOWN_FROM, _NEXT_ON, _NEXT_KNOWN, _CLOSED = 1, 2, 3, 4, 5


class VersionRows:
    """The version rows' part of the read model (mixed into ReadModel)."""

    app: EventStore
    config: CampaignConfig
    db: Database
    place: dict[str, int]
    unit_place: dict[str, int]

    def _advance(
        self,
        entry: CaseInTransaction,
        fact: Fact,
        old: Row | None,
        next_id: int,
        inserts: list[list[Any]],
        updates: list[tuple[str, int, int, int]],
    ) -> int:
        """Record the case's new version for as-of and known-at queries.

        A version row holds from business date `on_from` and recorded time `known_from` on,
        except where both the next version's date and time are reached (`next_on`,
        `next_known`), and not from `closed_at` on. An event dated on or after every earlier one
        only ends the latest version from its date on. A correction, or an event dated before
        one already recorded (a stop entered late), changes earlier dates too: then every live
        version is closed and the case's versions are derived again from its events.
        """
        t = fact.recorded_us
        if fact.kind != "SiteCorrected" and (old is None or fact.on >= old["last_on"]):
            on = day_number(fact.on)
            self._end(entry, on, t, inserts, updates)
            if entry.pending is not None:
                inserts.append(entry.pending)
            entry.pending = [
                next_id,
                on,
                t,
                NEVER,
                NEVER,
                NEVER,
                *self._signature(entry.row),
                *entry.vector,
            ]
            entry.live.append(next_id)
            return next_id + 1
        for version_id in entry.live:
            self._close(entry, version_id, t, updates)
        versions = self._derive(fact)
        entry.live = []
        for i, (on_from, row, vector) in enumerate(versions):
            if entry.pending is not None:
                inserts.append(entry.pending)
            nxt = versions[i + 1][0] if i + 1 < len(versions) else NEVER
            entry.pending = [next_id, on_from, t, nxt, t if nxt != NEVER else NEVER, NEVER]
            entry.pending += self._signature(row) + list(vector)
            entry.live.append(next_id)
            next_id += 1
        return next_id

    def _end(
        self, entry: CaseInTransaction, on: int, t: int, inserts: list[Any], updates: list[Any]
    ) -> None:
        if not entry.live:
            return
        pending = entry.pending
        if pending is not None and pending[0] == entry.live[-1]:
            if (pending[_ON_FROM], pending[_KNOWN_FROM]) == (on, t):
                # Ended at the very date and time it began (two steps of one case, same day,
                # same batch): no cutoff can ever see it, so it is not written at all.
                entry.live.pop()
            else:
                pending[_NEXT_ON], pending[_NEXT_KNOWN] = on, t
                inserts.append(pending)
            entry.pending = None
        else:
            updates.append(("end", on, t, entry.live[-1]))

    def _close(self, entry: CaseInTransaction, version_id: int, t: int, updates: list[Any]) -> None:
        if entry.pending is not None and entry.pending[0] == version_id:
            entry.pending[_CLOSED] = t
        else:
            updates.append(("close", t, 0, version_id))

    def _derive(self, fact: Fact) -> list[tuple[int, Row, tuple[int, ...]]]:
        """The case's version for each business date it has, from its events up to this one."""
        rows = cast(LedgerRecorder, self.app.recorder).case_log(fact.case_id, fact.version)
        history = list(facts_of(self.app, rows))
        days = sorted({f.on for f in history if f.kind != "SiteCorrected"})
        versions = []
        for day in days:
            row: Row | None = None
            for f in history:
                if included(f, row, day, None):
                    row = fold(row, f)
            if row is None:  # its first day is the day it was found, unless the store is damaged
                raise DomainError(
                    f"存储已损坏：案件对象 {fact.case_id} 在 {day} 有事件，却没有此前的发现事件。"
                    "请用备份恢复，或交管理员核查"
                )
            versions.append((day_number(day), row, stats.contribution(row, self.config.alerts)))
        return versions

    def _signature(self, row: Row) -> list[Any]:
        due = stats.pending_due(row)
        return [
            self.place[row["township"]],
            self.unit_place[row["unit"]],
            day_number(row["found_on"]) // 100,
            _bits(tuple(row["violation_types"])),
            day_number(due) if due else None,
        ]

    def _write_versions(self, inserts: list[list[Any]], updates: list[Any]) -> None:
        columns = 11 + len(stats.SUMMED)
        self.db.many(f"INSERT INTO rm_versions VALUES ({', '.join('?' * columns)})", inserts)
        self.db.many(
            "UPDATE rm_versions SET next_on = ?, next_known = ? WHERE id = ?",
            [(on, t, vid) for kind, on, t, vid in updates if kind == "end"],
        )
        self.db.many(
            "UPDATE rm_versions SET closed_at = ? WHERE id = ?",
            [(t, vid) for kind, t, _, vid in updates if kind == "close"],
        )

    @staticmethod
    def _at_sql(column: str, split: bool) -> str:
        halves = "SUM({0} >> 32), SUM({0} & 4294967295)"
        sums = ", ".join(
            halves.format(m) if split and m in stats.AMOUNTS else f"SUM({m})" for m in stats.SUMMED
        )
        return (
            f"SELECT {column}, {sums}, SUM(CASE WHEN due_on < ? THEN 1 ELSE 0 END) "
            "FROM rm_versions WHERE on_from <= ? AND known_from <= ? AND closed_at > ? "
            f"AND (next_on > ? OR next_known > ?) GROUP BY {column}"
        )

    def _at(
        self, by: str, on: int, known: int, cutoff: int
    ) -> tuple[dict[str, tuple[Sequence[int], int]], tuple[Sequence[int], int]]:
        """Statistics at a cutoff: one scan over the versions valid then, grouped by the
        column of `by` (violation types by their set, split into each type afterwards)."""
        column = {"violation_type": "vtypes"}.get(by, by)
        params = [cutoff, on, known, known, on, known]
        split = False
        try:
            found = self.db.rows(self._at_sql(column, split), params)
        except sqlite3.OperationalError as error:
            # SQLite's SUM stops with "integer overflow" past 2^63 (PostgreSQL's sum of BIGINT
            # is NUMERIC): then each amount is summed in two halves, joined again in Python.
            if "overflow" not in str(error):
                raise
            split = True
            found = self.db.rows(self._at_sql(column, split), params)
        names = {
            "township": dict(enumerate(self.config.townships)),
            "unit": dict(enumerate(self.config.units)),
        }.get(by, {})
        groups: dict[str, list[int]] = {}
        total = [0] * (len(stats.SUMMED) + 1)  # the sums, then the overdue count
        for key, *values in found:
            figures = _joined(values) if split else [int(v or 0) for v in values]
            total = list(map(add, total, figures))
            if by == "violation_type":
                keys = [v for i, v in enumerate(VIOLATION_TYPES) if key & (1 << i)]
            elif by == "month":
                keys = [f"{key // 100:04d}-{key % 100:02d}"]
            else:
                keys = [names[key]]
            for name in keys:
                into = groups.setdefault(name, [0] * len(figures))
                into[:] = map(add, into, figures)
        return {k: (v[:-1], v[-1]) for k, v in groups.items()}, (total[:-1], total[-1])
