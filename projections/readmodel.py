"""The persisted read model, in the event store's own database (a SQLite file or a PostgreSQL
schema), following the log exactly once through a tracking position.

Tables:
- rm_ledger: one row per case (its ledger row's values as JSON, plus the columns screens sort by);
- rm_stats / rm_due: the running statistics by every grouping (rm_due holds unrectified
  violations by due date, because `overdue` depends on the day it is asked);
- rm_versions: the case's statistics vector for every stretch of business dates and recorded
  times it held, so a statistics cutoff is one filtered scan, not a replay (see
  projections/versions.py).

The read model's other concerns are modules of their own, mixed into ReadModel: the version
rows (versions.py), the rebuild (rebuild.py), the alerts (alerts.py); its SQL is database.py's."""

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from datetime import date, datetime
from operator import add, sub
from pathlib import Path
from typing import Any, cast

import orjson

from domain.case import STATES
from domain.events import CampaignConfig
from domain.values import china_today
from projections import stats
from projections.alerts import AlertQueries
from projections.database import FEW, Database
from projections.facts import PAGE, facts_of
from projections.ledger import Fact, Row, fold, packed, unpacked, us_of
from projections.personal import seal, unseal
from projections.rebuild import Rebuilding, remove_stale_scratch
from projections.versions import NEVER, CaseInTransaction, VersionRows, _bits, day_number
from storage.sqlite import LedgerRecorder
from storage.store import EventStore

# The summed statistics' columns of rm_stats and rm_versions, and a placeholder for each.
SUMMED_COLUMNS = ", ".join(stats.SUMMED)
SUMMED_MARKS = ", ".join("?" * len(stats.SUMMED))

# The dashboard's ledger (projections.ledger_query): the columns rm_ledger holds for its filters
# and sorts (see projections.database: LEDGER_FILTERS, SORT_KEYS).
SUPERVISED_FLAG = "挂牌督办"
SEARCHED = 120  # characters of each searched field (see search_text)
NO_DUE = "9999-12-31"  # due_key of a case never ordered to rectify: last when sorted by due date
STAGE = {state: i for i, state in enumerate(STATES)}  # a state's place in DESIGN's order


def searchable(text: str) -> str:
    """Text as the ledger's search compares it: full-width letters, digits and punctuation as
    their ASCII forms (an IME in full-width mode types ＳＤ－２０２２), lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def search_text(row: Row, *, sealed: bool = False) -> str:
    """What the ledger's search box matches (`LIKE '%term%'` on `searchable` text): the ref,
    project, party and village, one a line, so a term never matches across two of them. Each
    is cut at SEARCHED characters: the sort indexes carry this text, and a PostgreSQL index
    entry must stay under 2704 bytes. In an encrypted store (`sealed`) the party's name is
    personal data kept only encrypted (projections/personal.py): it is not searchable there."""
    party = "" if sealed else row["party_name"]
    texts = (row["ref"], row["project_name"], party, row["village"])
    return searchable("\n".join((t or "")[:SEARCHED] for t in texts))


LEDGER_COLUMNS = (
    "case_id, ref, place, township, unit, state, found_on, pending_due, filed_on, decided, "
    "crime, search, vtypes, supervised, stage, area, due_key, body, live"
)
CRIME = stats.SUMMED.index("over_crime_threshold_unreferred")


class ReadModel(VersionRows, Rebuilding, AlertQueries):
    def __init__(self, app: EventStore, staging: str | None = None) -> None:
        self.app = app
        self.cipher = app.mapper.cipher  # personal data in rm_ledger is sealed with it
        self.config: CampaignConfig = app.campaign().config
        self.db = Database(app, staging)
        if staging:
            self.db.tables()
            self.db.seed()
        else:
            self.db.create()
            if not self.db.postgres:  # a rebuild killed by hand left its scratch behind
                remove_stale_scratch(Path(app.env["SQLITE_DBNAME"]))
        self.place = {name: i for i, name in enumerate(self.config.townships)}
        self.unit_place = {name: i for i, name in enumerate(self.config.units)}
        self.skipped: list[Fact] = []  # events left out of the read side (see `fold`)

    def close(self) -> None:
        self.db.close()

    # Following the log ----------------------------------------------------------

    def position(self) -> int:
        """The position of the last event folded."""
        return int(self.db.rows("SELECT position FROM rm_tracking")[0][0])

    def catch_up(self, upto: int | None = None) -> int:
        """Apply every event recorded since the tracked position (up to `upto`); returns how
        many."""
        applied = 0
        while True:
            with self.db.writing(
                first="SELECT position, next_version FROM rm_tracking"
            ) as tracking:
                position, next_id = tracking[0]
                read = cast(LedgerRecorder, self.app.recorder).log_page(position, PAGE)
                page = read if upto is None else [row for row in read if row[0] <= upto]
                if not page:
                    return applied
                facts = list(facts_of(self.app, page))
                cache = self._load(f.case_id for f in facts) if position else {}
                buckets: dict[tuple[Any, ...], list[int]] = {}
                # A few events' writes (a command's) sent together; a page's go by COPY.
                with self.db.pipelined() if len(page) < FEW else nullcontext():
                    self._apply(facts, next_id, page[-1][0], cache, buckets)
                    self._write_stats(buckets)
            applied += len(page)
            if len(page) < PAGE:  # the end of the log as it was read: no second look
                return applied

    def _apply(
        self,
        facts: Iterable[Fact],
        next_id: int,
        to: int,
        cache: dict[str, CaseInTransaction],
        buckets: dict[tuple[Any, ...], list[int]],
    ) -> int:
        """Fold facts into the read model inside the current transaction, then write it.
        `cache` holds the stored rows of the cases the facts touch (none in a rebuild). The
        statistics' changes are added to `buckets` (by group signature), for the caller to
        write once. Returns the next version id."""
        inserts: list[list[Any]] = []
        updates: list[tuple[str, int, int, int]] = []  # ("end", on, t, id) or ("close", t, 0, id)
        alerts = self.config.alerts
        for fact in facts:
            entry = cache.get(fact.case_id)
            if entry is None:
                entry = cache[fact.case_id] = CaseInTransaction(None, stats.ZEROS, [])
            old = entry.row or None
            new = fold(old, fact, self.skipped)
            if new is None or new is old:  # left out: see projections.ledger.fold
                continue
            entry.row = new
            entry.vector = stats.contribution(entry.row, alerts)
            next_id = self._advance(entry, fact, old, next_id, inserts, updates)
            if len(inserts) >= PAGE:
                self._write_versions(inserts, updates)
                inserts, updates = [], []
        for entry in cache.values():
            if entry.pending is not None:
                inserts.append(entry.pending)
        self._write_versions(inserts, updates)
        found = [entry for entry in cache.values() if entry.row]  # a case never found: no row
        self._write_ledger(found)
        for entry in found:
            if entry.before is not None:
                self._count(buckets, *entry.before, sub)
            self._count(buckets, entry.row, entry.vector, add)
        self.db.many("UPDATE rm_tracking SET position = ?, next_version = ?", [(to, next_id)])
        return next_id

    def _count(
        self, buckets: dict[Any, list[int]], row: Row, vector: tuple[int, ...], op: Any
    ) -> None:
        """Add or take away a case's vector under its group signature (expanded when written)."""
        due = stats.pending_due(row)
        key = (
            row["township"],
            row["unit"],
            row["found_on"][:7],
            tuple(row["violation_types"]),
            due,
        )
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [0] * (len(stats.SUMMED) + 1)
        bucket[:-1] = map(op, bucket[:-1], vector)
        bucket[-1] = op(bucket[-1], 1)

    def _load(self, case_ids: Iterable[str]) -> dict[str, CaseInTransaction]:
        """The stored rows of these cases, a few hundred a query."""
        wanted, found = list(dict.fromkeys(case_ids)), {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT case_id, body, live FROM rm_ledger WHERE case_id IN ({marks})"
            for case_id, body, live in self.db.rows(sql, chunk):
                row = unpacked(unseal(orjson.loads(body), self.cipher))
                vector = stats.contribution(row, self.config.alerts)
                found[case_id] = CaseInTransaction(row, vector, orjson.loads(live))
        return found

    # Writing -----------------------------------------------------------------------

    def _write_ledger(self, entries: Iterable[CaseInTransaction]) -> None:
        columns = LEDGER_COLUMNS.split(", ")
        self.db.many(
            f"INSERT INTO rm_ledger ({LEDGER_COLUMNS}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (case_id) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in columns[1:]),
            [
                (
                    r["id"],
                    r["ref"],
                    self.place[r["township"]],
                    r["township"],
                    r["unit"],
                    r["state"],
                    r["found_on"],
                    stats.pending_due(r),
                    r["filed_on"],
                    int(r["decided"]),
                    entry.vector[CRIME],
                    search_text(r, sealed=self.cipher is not None),
                    _bits(tuple(r["violation_types"])),
                    int(SUPERVISED_FLAG in r["flags"]),
                    STAGE[r["state"]],
                    r["area_m2"],
                    r["due_on"] or NO_DUE,
                    orjson.dumps(seal(packed(r), self.cipher)),
                    orjson.dumps(entry.live),
                )
                for entry in entries
                for r in [entry.row]
            ],
        )

    def _write_stats(self, buckets: dict[Any, list[int]]) -> None:
        sums: dict[tuple[str, str], list[int]] = {}
        due: dict[tuple[str, str, str], int] = {}
        for (township, unit, month, vtypes, pending), bucket in buckets.items():
            keys = [("township", township), ("unit", unit), ("month", month), ("total", "")]
            keys += [("violation_type", v) for v in dict.fromkeys(vtypes)]
            for key in keys:
                total = sums.setdefault(key, [0] * len(stats.SUMMED))
                total[:] = map(add, total, bucket[:-1])
                if pending is not None:
                    due[(*key, pending)] = due.get((*key, pending), 0) + bucket[-1]
        self._add_stats(sums)
        self.db.many(
            "INSERT INTO rm_due VALUES (?, ?, ?, ?) ON CONFLICT (grouping, key, due_on) "
            "DO UPDATE SET n = rm_due.n + excluded.n",
            [(*key, n) for key, n in due.items() if n],
        )

    def _add_stats(self, sums: dict[tuple[str, str], list[int]]) -> None:
        """Add to the persisted statistics exactly. The sums are added here, in Python's
        integers, not by SQL: SQLite silently turns an integer addition past 2^63 into an
        inexact REAL. The table has a few dozen rows: reading them all costs nothing."""
        changed = {key: values for key, values in sums.items() if any(values)}
        if not changed:
            return
        stored = {
            (g, k): [int(v) for v in values]
            for g, k, *values in self.db.rows(
                f"SELECT grouping, key, {SUMMED_COLUMNS} FROM rm_stats"
            )
        }
        rows = []
        for key, values in changed.items():
            old = stored.get(key)
            new = list(map(add, old, values)) if old else values
            rows.append((*key, *map(self._exact, new)))
        update = ", ".join(f"{m} = excluded.{m}" for m in stats.SUMMED)
        self.db.many(
            f"INSERT INTO rm_stats VALUES (?, ?, {SUMMED_MARKS}) "
            f"ON CONFLICT (grouping, key) DO UPDATE SET {update}",
            rows,
        )

    def _exact(self, value: int) -> int | str:
        """A sum as the database keeps it exactly (SQLite's integers end at 2^63)."""
        return value if self.db.postgres or -(2**63) <= value < 2**63 else str(value)

    # Reading -----------------------------------------------------------------------

    def ledger_rows(self, refs: Iterable[str] | None = None) -> Iterator[Row]:
        """The current ledger (or these cases of it), in the official township order, then by
        ref, streamed."""
        if refs is None:
            for (body,) in self.db.stream("SELECT body FROM rm_ledger ORDER BY place, ref"):
                yield unpacked(unseal(orjson.loads(body), self.cipher))
            return
        wanted = list(refs)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT body FROM rm_ledger WHERE ref IN ({marks}) ORDER BY place, ref"
            for (body,) in self.db.rows(sql, chunk):
                yield unpacked(unseal(orjson.loads(body), self.cipher))

    def ledger_count(self) -> int:
        return int(self.db.rows("SELECT count(*) FROM rm_ledger")[0][0])

    def stats(
        self, *, by: str = "township", as_of: date | None = None, known_at: datetime | None = None
    ) -> dict[str, Any]:
        cutoff = (as_of or china_today()).isoformat()
        if as_of is None and known_at is None:
            groups = self._running(by, cutoff)
            total = self._running("total", cutoff).get("", (stats.ZEROS, 0))
        else:
            groups, total = self._at(
                by,
                day_number(as_of.isoformat()) if as_of else NEVER - 1,
                us_of(known_at) if known_at else NEVER - 1,
                day_number(cutoff),
            )
        months = [k for k, (sums, _) in groups.items() if sums[0]] if by == "month" else []
        order = stats.group_order(by, self.config, months)
        return stats.document(by, order, groups, total, as_of, known_at)

    def _running(self, grouping: str, cutoff: str) -> dict[str, tuple[Sequence[int], int]]:
        """The persisted statistics: no replay, a few dozen rows."""
        overdue = dict(
            self.db.rows(
                "SELECT key, SUM(n) FROM rm_due WHERE grouping = ? AND due_on < ? GROUP BY key",
                [grouping, cutoff],
            )
        )
        rows = self.db.rows(
            f"SELECT key, {SUMMED_COLUMNS} FROM rm_stats WHERE grouping = ?", [grouping]
        )
        return {key: ([int(v) for v in values], int(overdue.get(key, 0))) for key, *values in rows}
